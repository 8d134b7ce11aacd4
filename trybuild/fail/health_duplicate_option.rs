#[observe::health_check(critical, timeout = "1s", critical)]
async fn gateway() -> Result<(), String> {
    Ok(())
}

fn main() {}
