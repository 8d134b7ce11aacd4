//! A hello-world service for load tests: `MODE=bare|observe`, one worker, on `ADDR`;
//! with `ADMIN_ADDR`, also the admin server (for profiling under load). Used by
//! `benches/wrk`.

use actix_web::{App, HttpServer, web};

async fn hello(name: web::Path<String>) -> String {
    format!("hello {name}")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mode = std::env::var("MODE").unwrap_or_else(|_| "bare".to_owned());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:18181".to_owned());
    let observe = match mode.as_str() {
        "bare" => false,
        "observe" => true,
        other => {
            eprintln!("MODE must be `bare` or `observe`, not {other:?}");
            std::process::exit(2);
        }
    };
    let admin = match std::env::var("ADMIN_ADDR") {
        Ok(addr) => Some(observe::admin::AdminServer::new().addr(addr).start()?),
        Err(_) => None,
    };
    let served = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                observe,
                observe::Middleware::new(),
            ))
            .route("/hello/{name}", web::get().to(hello))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await;
    drop(admin);
    served
}
