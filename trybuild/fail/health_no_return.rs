#[observe::health_check]
async fn gateway() {}

fn main() {}
