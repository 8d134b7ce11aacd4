#[observe::health_check(depends_on = "gateway")]
async fn gateway() -> Result<(), String> {
    Ok(())
}

fn main() {}
