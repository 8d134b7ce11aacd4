#[observe::health_check(critcal)]
async fn gateway() -> Result<(), String> {
    Ok(())
}

fn main() {}
