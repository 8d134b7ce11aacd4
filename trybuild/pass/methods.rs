struct Account(u64);

trait Describe {
    fn describe(&self) -> String;

    /// A default method with a body can be instrumented too.
    #[observe::instrumented]
    fn shout(&self) -> String {
        self.describe().to_uppercase()
    }
}

impl Account {
    #[observe::instrumented]
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.0 += amount;
        self.0
    }

    #[observe::instrumented]
    fn consume(self) -> u64 {
        self.0
    }
}

impl Describe for Account {
    #[observe::instrumented]
    fn describe(&self) -> String {
        format!("account with {}", self.0)
    }
}

fn main() {
    let mut account = Account(1);
    account.deposit(2);
    assert_eq!(account.shout(), "ACCOUNT WITH 3");
    assert_eq!(account.consume(), 3);
}
