use actix_web::{get, web, App, Responder};

// The documented order: the route macro outside, `#[instrumented]` next to the function.
#[get("/items/{id}")]
#[observe::instrumented]
async fn item(id: web::Path<u32>) -> impl Responder {
    format!("item {id}")
}

fn main() {
    let _app = App::new().service(item);
}
