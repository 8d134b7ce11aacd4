#[observe::health_check(interval = "5d")]
async fn gateway() -> Result<(), String> {
    Ok(())
}

fn main() {}
