#[derive(Debug)]
struct Oops;

#[observe::instrumented]
async fn fetch(id: u32) -> Result<u32, Oops> {
    if id == 0 {
        return Err(Oops);
    }
    let doubled = double(id).await?;
    Ok(doubled)
}

async fn double(id: u32) -> Result<u32, Oops> {
    Ok(id * 2)
}

struct Client;

impl Client {
    #[observe::instrumented]
    async fn get<'a>(&'a self, key: &'a str) -> &'a str {
        key
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(fetch(2)).unwrap(), 4);
    assert_eq!(rt.block_on(Client.get("k")), "k");
}
