use actix_web::{post, App, HttpResponse};

// The other order also works: actix-web keeps other attributes on the function.
#[observe::instrumented]
#[post("/items")]
async fn create(body: String) -> Result<HttpResponse, actix_web::Error> {
    Ok(HttpResponse::Created().body(body))
}

fn main() {
    let _app = App::new().service(create);
}
