use std::future::Future;

#[observe::instrumented]
fn later(x: u32) -> impl Future<Output = Result<u32, String>> + Send + 'static {
    async move { if x > 0 { Ok(x) } else { Err("zero".to_owned()) } }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(later(1)), Ok(1));
}
