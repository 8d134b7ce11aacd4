trait Gateway {
    #[observe::instrumented]
    fn charge(&self) -> u8;
}

fn main() {}
