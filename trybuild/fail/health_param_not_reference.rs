struct Client;

#[observe::health_check]
async fn gateway(client: Client) -> Result<(), String> {
    let _ = client;
    Ok(())
}

fn main() {}
