//! The in-process HTTP benchmark's request loop, for instruction counts: `MODE=bare` or
//! `observe`, `N` requests (default 20000) through actix-web's test harness. Run under
//! `valgrind --tool=callgrind` twice with different `N`; the difference divided by the
//! difference in `N` is instructions per request, free of start-up and of timing noise.

use actix_web::{App, test, web};

async fn hello() -> &'static str {
    "hello"
}

#[actix_web::main]
async fn main() {
    let observe = std::env::var("MODE").as_deref() == Ok("observe");
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let service = test::init_service(
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                observe,
                observe::Middleware::new(),
            ))
            .route("/hello/{name}", web::get().to(hello)),
    )
    .await;
    for _ in 0..n {
        let req = observe_benches::hello_request();
        let response = test::call_service(&service, req).await;
        std::hint::black_box(test::read_body(response).await);
    }
}
