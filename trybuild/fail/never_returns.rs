#[observe::instrumented]
fn serve() -> ! {
    loop {}
}

fn main() {}
