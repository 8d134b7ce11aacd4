#[observe::health_check]
async fn gateway() -> u32 {
    200
}

fn main() {}
