//! `#[instrumented]` on every kind of function, and what a scrape then shows.

mod common;

use std::fmt::Display;
use std::future::Future;
use std::num::ParseIntError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{calls, count, value};

// ---- the shapes the attribute must accept ----

const FREE_LINE: u32 = line!() + 2;
#[observe::instrumented]
fn free(x: u32) -> u32 {
    x + 1
}

struct Account {
    balance: u64,
}

impl Account {
    /// Docs and other attributes survive.
    #[observe::instrumented]
    #[inline]
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    #[observe::instrumented]
    async fn balance_later(&self) -> u64 {
        self.balance
    }
}

trait Greeter {
    fn greet(&self, who: &str) -> String;
}

impl Greeter for Account {
    #[observe::instrumented]
    fn greet(&self, who: &str) -> String {
        format!("hello {who}, you have {}", self.balance)
    }
}

#[observe::instrumented]
async fn async_double(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x * 2
}

#[observe::instrumented]
fn future_triple(x: u32) -> impl Future<Output = u32> + Send {
    async move { x * 3 }
}

#[observe::instrumented]
fn generic_show<T: Display>(value: T) -> String {
    value.to_string()
}

#[observe::instrumented]
fn first_char(s: &str) -> &str {
    &s[..1]
}

/// `?` and early `return` inside the body.
#[observe::instrumented]
fn parse_sum(a: &str, b: &str) -> Result<u32, ParseIntError> {
    let a: u32 = a.parse()?;
    if a == 0 {
        return Ok(0);
    }
    Ok(a + b.parse::<u32>()?)
}

#[observe::instrumented]
async fn async_parse(a: String) -> Result<u32, ParseIntError> {
    let value: u32 = a.parse()?;
    if value > 100 {
        return Ok(100);
    }
    Ok(value)
}

/// An error that `?` converts into (`From`), for the early-exit tests below.
#[derive(Debug, PartialEq)]
struct Rejected(String);

impl From<ParseIntError> for Rejected {
    fn from(e: ParseIntError) -> Self {
        Rejected(e.to_string())
    }
}

/// `?` converting its error, `return` from a loop and a match arm, a user label: the
/// body runs in place, its `return`s breaking out of a labelled block, its `?` leaving
/// the function as written (the call's drop counts the error).
#[observe::instrumented(span = false)]
fn early_sum(items: &[&str], stop: u32) -> Result<u32, Rejected> {
    let mut sum = 0;
    'items: for item in items {
        let n: u32 = item.parse()?;
        match n {
            0 => continue 'items,
            n if n == stop => return Ok(sum),
            _ => {}
        }
        let mut tries = 0;
        while tries < 2 {
            if sum > 1000 {
                return Err(Rejected("too large".into()));
            }
            tries += 1;
        }
        sum += n;
    }
    Ok(sum)
}

/// `?` on a `Poll<Result<…>>` (a `Poll` continues), and `?` twice in a row.
#[observe::instrumented]
fn early_poll(p: std::task::Poll<Result<u32, ParseIntError>>) -> Result<bool, Rejected> {
    let ready = p?.is_ready();
    let nested: Result<Result<u32, ParseIntError>, ParseIntError> = Ok("7".parse());
    Ok(ready && nested?? == 7)
}

struct Parser {
    base: u32,
}

impl Parser {
    /// `Self` and `self` in a body that leaves early.
    #[observe::instrumented(span = false)]
    fn make(base: &str) -> Result<Self, Rejected> {
        Ok(Self {
            base: base.parse()?,
        })
    }

    #[observe::instrumented]
    fn add<T: AsRef<str>>(&self, more: T) -> Result<u32, Rejected> {
        Ok(self.base + more.as_ref().parse::<u32>()?)
    }
}

#[test]
fn question_marks_and_returns_keep_their_meaning_in_place() {
    assert_eq!(early_sum(&["1", "0", "2"], 99), Ok(3));
    assert_eq!(early_sum(&["1", "5", "2"], 5), Ok(1));
    assert_eq!(
        early_sum(&["1", "x"], 99),
        Err(Rejected("invalid digit found in string".into()))
    );
    assert_eq!(
        early_sum(&["999", "999", "1"], 99),
        Err(Rejected("too large".into()))
    );
    assert_eq!(early_poll(std::task::Poll::Ready(Ok(1))), Ok(true));
    assert_eq!(early_poll(std::task::Poll::Pending), Ok(false));
    assert!(early_poll(std::task::Poll::Ready("x".parse())).is_err());
    let parser = Parser::make("10").unwrap();
    assert!(Parser::make("ten").is_err());
    assert_eq!(parser.add("5"), Ok(15));
    assert_eq!(parser.add(String::from("6")), Ok(16));
    assert!(parser.add("six").is_err());
    for (function, ok, error) in [
        ("early_sum", 2.0, 2.0),
        ("early_poll", 2.0, 1.0),
        ("make", 1.0, 1.0),
        ("add", 2.0, 1.0),
    ] {
        assert_calls(function, ok, error);
    }
}

/// `function` has counted `ok` successful calls and `error` failed ones.
fn assert_calls(function: &str, ok: f64, error: f64) {
    assert_eq!(calls(function, "ok"), ok, "{function} ok");
    assert_eq!(calls(function, "error"), error, "{function} error");
}

#[test]
fn every_shape_counts_its_calls() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(free(1), 2);
    let mut account = Account { balance: 1 };
    assert_eq!(account.deposit(2), 3);
    assert_eq!(rt.block_on(account.balance_later()), 3);
    assert_eq!(account.greet("ann"), "hello ann, you have 3");
    assert_eq!(rt.block_on(async_double(4)), 8);
    assert_eq!(rt.block_on(future_triple(5)), 15);
    assert_eq!(generic_show(6), "6");
    assert_eq!(generic_show("seven"), "seven");
    assert_eq!(first_char("xyz"), "x");
    assert_eq!(parse_sum("0", "nope"), Ok(0));
    assert_eq!(parse_sum("1", "2"), Ok(3));
    assert!(parse_sum("x", "2").is_err());
    assert!(parse_sum("1", "y").is_err());
    assert_eq!(rt.block_on(async_parse("500".into())), Ok(100));
    assert!(rt.block_on(async_parse("bad".into())).is_err());

    for (function, ok, error) in [
        ("free", 1.0, 0.0),
        ("deposit", 1.0, 0.0),
        ("balance_later", 1.0, 0.0),
        ("greet", 1.0, 0.0),
        ("async_double", 1.0, 0.0),
        ("future_triple", 1.0, 0.0),
        // Both instantiations share one call site: one series.
        ("generic_show", 2.0, 0.0),
        ("first_char", 1.0, 0.0),
        ("parse_sum", 2.0, 2.0),
        ("async_parse", 1.0, 1.0),
    ] {
        assert_calls(function, ok, error);
        let text = observe::metrics::render();
        assert_eq!(
            value(
                &text,
                "function_calls_duration_seconds_count",
                &[("function", function)]
            ),
            ok + error,
            "{function}: histogram count equals calls"
        );
    }
}

#[test]
fn registry_lists_functions_with_their_location() {
    let all = observe::registry::functions();
    let free = all
        .iter()
        .find(|f| f.function == "free")
        .expect("free is listed");
    assert_eq!(free.module, "instrumented");
    assert!(free.file.ends_with("instrumented.rs"), "{}", free.file);
    assert_eq!(free.line, FREE_LINE);
    assert!(!free.is_async);
    let double = all.iter().find(|f| f.function == "async_double").unwrap();
    assert!(double.is_async);
    assert!(observe::registry::validate().is_ok());
}

// ---- exact counts under concurrency ----

#[observe::instrumented]
fn hot(i: u64) -> Result<u64, u64> {
    if i.is_multiple_of(10) { Err(i) } else { Ok(i) }
}

#[test]
fn counts_are_exact_under_concurrency() {
    const THREADS: u64 = 8;
    const CALLS: u64 = 20_000;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..CALLS {
                    let _ = std::hint::black_box(hot(std::hint::black_box(i)));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let text = observe::metrics::render();
    let labels = [("function", "hot")];
    let ok = value(
        &text,
        "function_calls_total",
        &[("function", "hot"), ("result", "ok")],
    );
    let err = value(
        &text,
        "function_calls_total",
        &[("function", "hot"), ("result", "error")],
    );
    assert_eq!(err, (THREADS * CALLS / 10) as f64);
    assert_eq!(ok + err, (THREADS * CALLS) as f64);
    assert_eq!(
        value(&text, "function_calls_duration_seconds_count", &labels),
        (THREADS * CALLS) as f64
    );
    assert_eq!(
        value(
            &text,
            "function_calls_duration_seconds_bucket",
            &[("function", "hot"), ("le", "+Inf")]
        ),
        (THREADS * CALLS) as f64
    );
    assert_eq!(value(&text, "function_calls_concurrent", &labels), 0.0);
    // Registered once, however many threads called it: one series per result.
    assert_eq!(count(&text, "function_calls_total", &labels), 2);
}

// ---- series exist before the first call ----

#[observe::instrumented]
fn never_called() -> Result<(), String> {
    Ok(())
}

#[test]
fn series_exist_at_zero_before_any_call() {
    let text = observe::metrics::render();
    let f = [("function", "never_called")];
    assert_eq!(
        value(
            &text,
            "function_calls_total",
            &[("function", "never_called"), ("result", "ok")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "function_calls_total",
            &[("function", "never_called"), ("result", "error")]
        ),
        0.0
    );
    // A sync function cannot be cancelled, so it has no such series.
    assert_eq!(
        count(
            &text,
            "function_calls_total",
            &[("function", "never_called"), ("result", "cancelled")]
        ),
        0
    );
    assert_eq!(
        count(&text, "function_calls_duration_seconds_bucket", &f),
        observe::__private::DEFAULT_BUCKETS.len() + 1
    );
    assert_eq!(
        value(&text, "function_calls_duration_seconds_count", &f),
        0.0
    );
    assert_eq!(value(&text, "function_calls_concurrent", &f), 0.0);
}

// ---- panics ----

#[observe::instrumented]
fn panics(really: bool) -> u32 {
    if really {
        panic!("boom");
    }
    1
}

#[test]
fn a_panic_is_an_error_and_is_re_raised() {
    let caught = std::panic::catch_unwind(|| panics(true));
    let payload = caught.expect_err("the panic propagates");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(panics(false), 1);
    assert_eq!(calls("panics", "error"), 1.0);
    assert_eq!(calls("panics", "ok"), 1.0);
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "function_calls_concurrent",
            &[("function", "panics")]
        ),
        0.0
    );
}

#[observe::instrumented]
async fn panics_async() -> u32 {
    tokio::task::yield_now().await;
    panic!("async boom");
}

#[test]
fn a_panicking_future_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let joined = rt.block_on(async { tokio::spawn(panics_async()).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(calls("panics_async", "error"), 1.0);
    assert_eq!(calls("panics_async", "cancelled"), 0.0);
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "function_calls_concurrent",
            &[("function", "panics_async")]
        ),
        0.0
    );
}

// ---- cancellation ----

/// Spawns the future `call` makes, waits until it has set `started` and is pending, reads
/// `function`'s in-flight gauge, then aborts the task (which must end cancelled).
fn in_flight_then_aborted<F>(
    rt: &tokio::runtime::Runtime,
    started: &AtomicBool,
    function: &str,
    call: impl FnOnce() -> F,
) -> f64
where
    F: Future + Send + 'static,
    F::Output: Send + std::fmt::Debug + 'static,
{
    rt.block_on(async {
        let task = tokio::spawn(call());
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        let text = observe::metrics::render();
        let in_flight = value(
            &text,
            "function_calls_concurrent",
            &[("function", function)],
        );
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        in_flight
    })
}

#[observe::instrumented]
async fn waits_forever(started: Arc<AtomicBool>) -> Result<(), String> {
    started.store(true, Ordering::SeqCst);
    std::future::pending::<()>().await;
    Ok(())
}

#[test]
fn a_dropped_future_is_cancelled_not_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let in_flight = in_flight_then_aborted(&rt, &started, "waits_forever", || {
        waits_forever(started.clone())
    });
    assert_eq!(in_flight, 1.0, "in flight while pending");
    assert_eq!(calls("waits_forever", "cancelled"), 1.0);
    assert_eq!(calls("waits_forever", "error"), 0.0);
    assert_eq!(calls("waits_forever", "ok"), 0.0);
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "function_calls_concurrent",
            &[("function", "waits_forever")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "function_calls_duration_seconds_count",
            &[("function", "waits_forever")]
        ),
        1.0
    );
}

// ---- durations land in the right bucket ----

#[observe::instrumented(buckets = [0.01, 60.0])]
fn sleeps_20ms() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn durations_are_measured_in_seconds() {
    sleeps_20ms();
    let text = observe::metrics::render();
    let f = ("function", "sleeps_20ms");
    assert_eq!(
        value(
            &text,
            "function_calls_duration_seconds_bucket",
            &[f, ("le", "0.01")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "function_calls_duration_seconds_bucket",
            &[f, ("le", "60")]
        ),
        1.0
    );
    let sum = value(&text, "function_calls_duration_seconds_sum", &[f]);
    assert!((0.02..60.0).contains(&sum), "sum {sum}");
}

// ---- options ----

fn is_teapot(code: &u16) -> bool {
    *code == 418
}

fn is_success(code: &u16) -> bool {
    *code < 400
}

#[observe::instrumented(error_if = is_teapot)]
fn brew(code: u16) -> u16 {
    code
}

#[observe::instrumented(ok_if = is_success)]
fn status(code: u16) -> u16 {
    code
}

#[derive(Debug)]
enum Lookup {
    Absent,
    Broken,
}

fn probe(key: u8) -> Result<u8, Lookup> {
    match key {
        0 => Err(Lookup::Absent),
        1 => Err(Lookup::Broken),
        key => Ok(key),
    }
}

fn absent_is_fine(found: &Result<u8, Lookup>) -> bool {
    !matches!(found, Err(Lookup::Broken))
}

/// A `?` under a classifier of its own: the classifier sees the error it returns.
#[observe::instrumented(ok_if = absent_is_fine)]
fn lookup(key: u8) -> Result<u8, Lookup> {
    let value = probe(key)?;
    Ok(value)
}

#[observe::instrumented(name = "Ledger::post", labels(tier = "gold", region = "eu"))]
fn post() {}

#[test]
fn custom_classification_and_labels() {
    brew(418);
    brew(200);
    brew(201);
    status(500);
    status(204);
    assert_eq!(calls("brew", "error"), 1.0);
    assert_eq!(calls("brew", "ok"), 2.0);
    assert_eq!(calls("status", "error"), 1.0);
    assert_eq!(calls("status", "ok"), 1.0);
    assert!(lookup(0).is_err() && lookup(1).is_err());
    assert_eq!(lookup(2).ok(), Some(2));
    assert_calls("lookup", 2.0, 1.0);
    post();
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "function_calls_total",
            &[
                ("function", "Ledger::post"),
                ("tier", "gold"),
                ("region", "eu"),
                ("result", "ok")
            ]
        ),
        1.0
    );
}

// Regression: `prometheus` 0.14 hashes label values concatenated without a separator,
// so {a="ab",b="c"} and {a="a",b="bc"} collapse into one series there. Ours must not.
#[observe::instrumented(name = "concat", labels(a = "ab", b = "c"))]
fn concat_one() {}

#[observe::instrumented(name = "concat", labels(a = "a", b = "bc"))]
fn concat_two() {}

#[test]
fn label_values_are_never_concatenated_into_one_identity() {
    concat_one();
    concat_two();
    concat_two();
    let text = observe::metrics::render();
    let ok = |a, b| {
        value(
            &text,
            "function_calls_total",
            &[("function", "concat"), ("a", a), ("b", b), ("result", "ok")],
        )
    };
    assert_eq!(ok("ab", "c"), 1.0);
    assert_eq!(ok("a", "bc"), 2.0);
}

// ---- the user's own prometheus metrics ----

#[test]
fn users_prometheus_metrics_share_the_endpoint_without_duplicates() {
    let jobs = prometheus::IntCounter::new("test_jobs_done_total", "Jobs done.").unwrap();
    prometheus::register(Box::new(jobs.clone())).unwrap();
    jobs.inc_by(3);
    // A family name observe already writes: it must not appear twice.
    let clash = prometheus::Registry::new();
    let build = prometheus::IntGauge::new("build_info", "Someone else's build info.").unwrap();
    clash.register(Box::new(build)).unwrap();
    observe::metrics::register_registry(clash);

    let text = observe::metrics::render();
    assert_eq!(value(&text, "test_jobs_done_total", &[]), 3.0);
    let mut helps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# HELP "))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    let before = helps.len();
    helps.sort_unstable();
    helps.dedup();
    assert_eq!(before, helps.len(), "a family is written twice");
    assert_eq!(count(&text, "build_info", &[]), 1);
    assert_eq!(
        count(&text, "build_info", &[("observe_version", "0.1.0")]),
        1
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "process_virtual_memory_bytes",
    ] {
        assert!(value(&text, name, &[]) > 0.0, "{name}");
    }
    let (ok, out) = common::promtool_check(&text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}

// ---- boxed futures, as `#[async_trait]` writes them ----

trait Store {
    fn load(
        &self,
        key: u32,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send + '_>>;
}

struct MemStore;

/// The lookup both stores time: 15 ms, then `key`, or an error for 0.
async fn load_slowly(key: u32) -> Result<u32, String> {
    tokio::time::sleep(Duration::from_millis(15)).await;
    if key == 0 {
        Err("no key".to_owned())
    } else {
        Ok(key)
    }
}

impl Store for MemStore {
    // What `#[async_trait]` turns `async fn load(&self, key: u32) -> Result<u32, String>`
    // into: the returned future, not its creation, is what gets timed.
    #[observe::instrumented]
    fn load(
        &self,
        key: u32,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send + '_>> {
        Box::pin(load_slowly(key))
    }
}

/// The same without a span (`TimedUntraced`), and an `impl Future` one.
struct QuietStore;

impl Store for QuietStore {
    #[observe::instrumented(span = false, name = "quiet_load")]
    fn load(
        &self,
        key: u32,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send + '_>> {
        Box::pin(load_slowly(key))
    }
}

#[observe::instrumented(span = false)]
fn quiet_wait(ms: u64) -> impl Future<Output = Result<u64, String>> + Send {
    async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }
}

#[test]
fn futures_without_a_span_are_timed_classified_and_cancelled() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let pending = QuietStore.load(1);
    assert_eq!(
        calls("quiet_load", "ok"),
        0.0,
        "not a call before its first poll"
    );
    assert_eq!(rt.block_on(pending), Ok(1));
    assert!(rt.block_on(QuietStore.load(0)).is_err());
    assert_eq!(
        (calls("quiet_load", "ok"), calls("quiet_load", "error")),
        (1.0, 1.0)
    );
    assert_both_awaits_timed("quiet_load");

    assert_eq!(rt.block_on(quiet_wait(1)), Ok(1));
    // Polled once (the sleep pending), then dropped: cancelled, no longer in flight.
    let timed_out = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(5), quiet_wait(10_000)).await
    });
    assert!(timed_out.is_err());
    assert_eq!(
        (calls("quiet_wait", "ok"), calls("quiet_wait", "cancelled")),
        (1.0, 1.0)
    );
    let text = observe::metrics::render();
    let f = [("function", "quiet_wait")];
    assert_eq!(value(&text, "function_calls_concurrent", &f), 0.0);
}

/// The two calls of `function` so far, each awaiting 15 ms, are both in its duration sum.
fn assert_both_awaits_timed(function: &str) {
    let text = observe::metrics::render();
    let sum = value(
        &text,
        "function_calls_duration_seconds_sum",
        &[("function", function)],
    );
    assert!(sum >= 0.03, "both awaits of 15 ms are timed, got {sum}");
}

#[test]
fn boxed_futures_are_timed_and_classified_when_awaited() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = MemStore;
    let pending = store.load(1);
    // Created but not yet polled: not a call yet.
    assert_eq!(calls("load", "ok"), 0.0);
    assert_eq!(rt.block_on(pending), Ok(1));
    assert!(rt.block_on(store.load(0)).is_err());
    assert_eq!(calls("load", "ok"), 1.0);
    assert_eq!(calls("load", "error"), 1.0);
    assert_both_awaits_timed("load");
    let info = observe::registry::functions()
        .into_iter()
        .find(|f| f.function == "load")
        .unwrap();
    assert!(info.is_async);
}

// ---- an `async fn`'s parameters and its span, when the future is dropped ----

/// Records, when dropped, that it was and which span was current then.
struct DropProbe(Arc<std::sync::Mutex<Vec<Option<String>>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let current = tracing::Span::current()
            .metadata()
            .map(|m| m.name().to_owned());
        self.0.lock().unwrap().push(current);
    }
}

#[observe::instrumented]
async fn holds_its_parameters(_unused: DropProbe, _: DropProbe, (_a, _b): (u8, DropProbe)) {
    std::future::pending::<()>().await;
}

#[test]
fn parameters_live_as_long_as_the_future_and_a_cancelled_body_drops_inside_its_span() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let drops = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe = || DropProbe(drops.clone());
    // Never polled: nothing has started, nothing is dropped until the future is.
    let future = holds_its_parameters(probe(), probe(), (1, probe()));
    assert!(
        drops.lock().unwrap().is_empty(),
        "unused parameters live in the future"
    );
    drop(future);
    assert_eq!(*drops.lock().unwrap(), vec![None, None, None]);
    drops.lock().unwrap().clear();

    // Polled once, then cancelled: the body (with the parameters) is dropped inside the
    // call's span, as `tracing::Instrument` does.
    let mut future = Box::pin(holds_its_parameters(probe(), probe(), (2, probe())));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert!(drops.lock().unwrap().is_empty());
    drop(future);
    let name = Some("holds_its_parameters".to_owned());
    assert_eq!(
        *drops.lock().unwrap(),
        vec![name.clone(), name.clone(), name]
    );
    assert_eq!(calls("holds_its_parameters", "cancelled"), 1.0);
    assert_eq!(
        tracing::Span::current().metadata(),
        None,
        "the span was left"
    );
}

// ---- bodies that cannot leave early run in place (no closure); same accounting ----

#[observe::instrumented]
fn indexes(values: &[u32], at: usize) -> u32 {
    values[at] + 1
}

#[observe::instrumented(span = false)]
fn indexes_untraced(values: &[u32], at: usize) -> Result<u32, String> {
    if at > 10 {
        Err(format_error(at))
    } else {
        Ok(values[at])
    }
}

fn format_error(at: usize) -> String {
    format!("{at} is too far")
}

#[test]
fn a_body_run_in_place_counts_its_panics_and_errors() {
    let values = [1, 2, 3];
    assert_eq!(indexes(&values, 1), 3);
    assert!(std::panic::catch_unwind(|| indexes(&values, 7)).is_err());
    assert_eq!(calls("indexes", "ok"), 1.0);
    assert_eq!(calls("indexes", "error"), 1.0);
    assert_eq!(indexes_untraced(&values, 0), Ok(1));
    assert_eq!(
        indexes_untraced(&values, 11),
        Err("11 is too far".to_owned())
    );
    assert!(std::panic::catch_unwind(|| indexes_untraced(&values, 5)).is_err());
    assert_eq!(calls("indexes_untraced", "ok"), 1.0);
    assert_eq!(calls("indexes_untraced", "error"), 2.0);
    let text = observe::metrics::render();
    for function in ["indexes", "indexes_untraced"] {
        assert_eq!(
            value(
                &text,
                "function_calls_concurrent",
                &[("function", function)]
            ),
            0.0
        );
    }
}

/// The declared return type still reaches the body's last expression: coercions and
/// inference work as in the function itself.
#[observe::instrumented]
fn shown(x: u32) -> Result<Box<dyn Display + Send>, String> {
    if x == 0 {
        Err("zero".into())
    } else {
        Ok(Box::new(x))
    }
}

#[observe::instrumented(span = false)]
fn collected(values: &[u32]) -> Vec<u64> {
    values.iter().map(|v| u64::from(*v)).collect()
}

#[observe::instrumented(span = false)]
async fn collected_later(values: Vec<u32>) -> Vec<u64> {
    values.into_iter().map(u64::from).collect()
}

#[test]
fn a_body_run_in_place_is_typed_by_the_declared_return_type() {
    assert_eq!(shown(4).unwrap().to_string(), "4");
    assert_eq!(shown(0).err().as_deref(), Some("zero"));
    assert_eq!(collected(&[1, 2]), vec![1, 2]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(collected_later(vec![3])), vec![3]);
    assert_eq!(calls("shown", "ok"), 1.0);
    assert_eq!(calls("shown", "error"), 1.0);
    assert_eq!(calls("collected", "ok"), 1.0);
    assert_eq!(calls("collected_later", "ok"), 1.0);
}

/// `span = false` on an `async fn` that awaits (so polled inside `TimedUntraced`, see
/// below for bodies that never await): the call starts on the first poll, and a dropped
/// or panicking future is still counted.
#[observe::instrumented(span = false)]
async fn untraced_waits(started: Arc<AtomicBool>, values: Vec<u32>, at: usize) -> u32 {
    started.store(true, Ordering::SeqCst);
    tokio::task::yield_now().await;
    if at == usize::MAX {
        std::future::pending::<()>().await;
    }
    values[at]
}

#[test]
fn an_untraced_async_fn_that_awaits_is_timed_cancelled_and_panics_as_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = Arc::new(AtomicBool::new(false));
    // Created, never polled: not a call.
    drop(untraced_waits(started.clone(), vec![1], 0));
    assert!(!started.load(Ordering::SeqCst));
    let total = |result| calls("untraced_waits", result);
    assert_eq!(total("cancelled") + total("ok") + total("error"), 0.0);

    assert_eq!(rt.block_on(untraced_waits(started.clone(), vec![5], 0)), 5);
    let joined =
        rt.block_on(async { tokio::spawn(untraced_waits(started.clone(), vec![5], 3)).await });
    assert!(joined.unwrap_err().is_panic());
    started.store(false, Ordering::SeqCst);
    let in_flight = in_flight_then_aborted(&rt, &started, "untraced_waits", || {
        untraced_waits(started.clone(), vec![], usize::MAX)
    });
    assert_eq!(in_flight, 1.0, "in flight while pending");
    assert_eq!(total("ok"), 1.0);
    assert_eq!(total("error"), 1.0);
    assert_eq!(total("cancelled"), 1.0);
    let text = observe::metrics::render();
    let f = [("function", "untraced_waits")];
    assert_eq!(value(&text, "function_calls_concurrent", &f), 0.0);
    assert_eq!(
        value(&text, "function_calls_duration_seconds_count", &f),
        3.0
    );
}

// ---- a traced `async fn` that never awaits runs in place too, inside its span ----

/// Every span opened, with its parent's name.
type Opened = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

struct Parents(Opened);

impl<S> tracing_subscriber::Layer<S> for Parents
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("a new span is in the registry");
        let parent = span.parent().map(|p| p.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), parent));
    }
}

fn current_span_name() -> Option<&'static str> {
    tracing::Span::current().metadata().map(|m| m.name())
}

type Seen = Arc<std::sync::Mutex<Vec<Option<&'static str>>>>;

/// Notes the current span, then: the value at `at`; `Err` just past the end; a panic
/// further on.
fn pick(seen: &Seen, values: &[u32], at: usize) -> Result<u32, String> {
    seen.lock().unwrap().push(current_span_name());
    if at > values.len() {
        Ok(values[at])
    } else {
        values.get(at).copied().ok_or_else(String::new)
    }
}

/// No `.await`, no `?`, no `return`, no macro: it finishes in its first poll, so the
/// macro runs it in place (no `Timed` around it) and enters its span around the body.
#[observe::instrumented]
async fn traced_in_place(seen: Seen, values: Vec<u32>, at: usize) -> Result<u32, String> {
    pick(&seen, &values, at)
}

/// The same body without a span: in place too.
#[observe::instrumented(span = false)]
async fn untraced_in_place(seen: Seen, values: Vec<u32>, at: usize) -> Result<u32, String> {
    pick(&seen, &values, at)
}

/// The same through an early `return` and a `?`, still without `.await` or macro: in
/// place too, the body a closure called once.
#[observe::instrumented]
async fn traced_leaving_early(seen: Seen, values: Vec<u32>, at: usize) -> Result<u32, String> {
    if values.len() == 1 {
        return pick(&seen, &values, at);
    }
    let value = pick(&seen, &values, at)?;
    Ok(value)
}

/// The same without a span.
#[observe::instrumented(span = false)]
async fn untraced_leaving_early(seen: Seen, values: Vec<u32>, at: usize) -> Result<u32, String> {
    if values.len() == 1 {
        return pick(&seen, &values, at);
    }
    let value = pick(&seen, &values, at)?;
    Ok(value)
}

#[test]
fn a_traced_async_body_that_never_awaits_runs_in_place_inside_its_span() {
    runs_in_place(
        ("traced_in_place", traced_in_place),
        ("untraced_in_place", untraced_in_place),
    );
}

#[test]
fn an_async_body_that_leaves_early_runs_in_place_inside_its_span() {
    runs_in_place(
        ("traced_leaving_early", traced_leaving_early),
        ("untraced_leaving_early", untraced_leaving_early),
    );
}

/// `traced` (a function named `name` with the default span) and `untraced` (`span =
/// false`), both behaving like [`pick`]: a call and its span start at the first poll,
/// the span is current in the body and left after it, on unwinding too; `Ok`, `Err`
/// and a panic are counted as for `Timed`.
fn runs_in_place<T, TF, U, UF>(traced: (&'static str, T), untraced: (&'static str, U))
where
    T: Fn(Seen, Vec<u32>, usize) -> TF,
    TF: Future<Output = Result<u32, String>> + Send + 'static,
    U: Fn(Seen, Vec<u32>, usize) -> UF,
    UF: Future<Output = Result<u32, String>> + Send + 'static,
{
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let opened = Opened::default();
    let subscriber = tracing_subscriber::registry().with(Parents(opened.clone()));
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = Seen::default();
    let (name, traced) = traced;
    let total = |result| calls(name, result);

    // Created, never polled: no call and no span.
    drop(traced(seen.clone(), vec![1], 0));
    assert!(opened.lock().unwrap().is_empty());
    assert_eq!(total("ok") + total("error") + total("cancelled"), 0.0);

    // Created outside, polled inside the caller's span: the function's span is a child
    // of the span current at the first poll, as with `Timed`, and current in the body.
    let future = traced(seen.clone(), vec![7], 0);
    let caller = tracing::info_span!("caller");
    assert_eq!(rt.block_on(future.instrument(caller)), Ok(7));
    assert_eq!(
        *opened.lock().unwrap(),
        vec![
            ("caller".to_owned(), None),
            (name.to_owned(), Some("caller".to_owned()))
        ]
    );
    assert_eq!(*seen.lock().unwrap(), vec![Some(name)]);
    assert_eq!(current_span_name(), None, "the span was left");

    // An `Err`, and a panic (in a task, which catches it): both errors, the span left.
    assert_eq!(
        rt.block_on(traced(seen.clone(), vec![], 0)),
        Err(String::new())
    );
    let joined = rt.block_on(async { tokio::spawn(traced(seen.clone(), vec![], 5)).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(current_span_name(), None, "the span was left on unwinding");
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert!(seen.lock().unwrap().iter().all(|s| *s == Some(name)));
    assert_eq!(
        (total("ok"), total("error"), total("cancelled")),
        (1.0, 2.0, 0.0)
    );
    let text = observe::metrics::render();
    let f = [("function", name)];
    assert_eq!(value(&text, "function_calls_concurrent", &f), 0.0);
    assert_eq!(
        value(&text, "function_calls_duration_seconds_count", &f),
        3.0
    );

    // Without a span: no span opened, the same accounting.
    let before = opened.lock().unwrap().len();
    let (untraced_name, untraced) = untraced;
    let untraced = |values: Vec<u32>, at| untraced(seen.clone(), values, at);
    assert_eq!(rt.block_on(untraced(vec![7], 0)), Ok(7));
    assert_eq!(rt.block_on(untraced(vec![], 0)), Err(String::new()));
    let fut = untraced(vec![], 5);
    assert!(
        rt.block_on(async { tokio::spawn(fut).await })
            .unwrap_err()
            .is_panic()
    );
    assert_eq!(opened.lock().unwrap().len(), before, "no span without one");
    assert_eq!(seen.lock().unwrap()[3..], [None, None, None]);
    let untraced_calls = |result| calls(untraced_name, result);
    assert_eq!((untraced_calls("ok"), untraced_calls("error")), (1.0, 2.0));
}
