fn is_bad(v: &Result<u32, String>) -> bool {
    v.is_err()
}

#[observe::instrumented(
    name = "Billing::charge",
    buckets = [0.001, 0.01, 0.1, 1, 10],
    labels(tier = "gold", "region" = "eu"),
    level = "debug",
    skip(card),
    fields(user, amount_cents = amount * 100, note = %"display", dbg = ?Some(1)),
    err,
    error_if = is_bad,
)]
fn charge(user: u64, amount: u64, card: &str) -> Result<u32, String> {
    let _ = (user, card);
    u32::try_from(amount).map_err(|e| e.to_string())
}

#[observe::instrumented(skip_all, span = true, metrics = true)]
fn secret(password: &str) -> usize {
    password.len()
}

#[observe::instrumented(metrics = false)]
fn span_only() {}

#[observe::instrumented(span = false, ok_if = Option::is_some)]
fn maybe(x: u8) -> Option<u8> {
    (x > 0).then_some(x)
}

fn main() {
    charge(1, 2, "4111").unwrap();
    secret("hunter2");
    span_only();
    maybe(1);
}
