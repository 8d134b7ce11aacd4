//! `/debug/pprof/inflight` (feature `inflight`): every `#[instrumented]` call in progress,
//! oldest first, with its elapsed time and trace id; finished, failed and cancelled calls
//! leave the list.
#![cfg(feature = "inflight")]

mod common;

use std::time::Duration;

#[observe::instrumented]
async fn stuck_on_the_gateway(release: tokio::sync::oneshot::Receiver<()>) {
    let _ = release.await;
}

#[observe::instrumented]
async fn stuck_on_the_ledger(release: tokio::sync::oneshot::Receiver<()>) {
    let _ = release.await;
}

#[observe::instrumented]
fn quick() -> u8 {
    1
}

fn listed(body: &str, function: &str) -> Option<usize> {
    body.lines()
        .position(|l| l.contains(&format!("::{function} ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_progress_are_listed_oldest_first_and_leave_when_done() {
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let (release_gateway, gateway) = tokio::sync::oneshot::channel();
    let (release_ledger, ledger) = tokio::sync::oneshot::channel();
    let first = tokio::spawn(stuck_on_the_gateway(gateway));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = tokio::spawn(stuck_on_the_ledger(ledger));
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let third = tokio::spawn(stuck_on_the_ledger(cancelled));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(quick(), 1);

    let body =
        tokio::task::spawn_blocking(move || common::http_get(addr, "/debug/pprof/inflight", "").2)
            .await
            .unwrap();
    let gateway_line = listed(&body, "stuck_on_the_gateway").unwrap_or_else(|| panic!("{body}"));
    let ledger_line = listed(&body, "stuck_on_the_ledger").unwrap_or_else(|| panic!("{body}"));
    assert!(gateway_line < ledger_line, "oldest first:\n{body}");
    assert_eq!(body.matches("::stuck_on_the_ledger ").count(), 2, "{body}");
    assert!(
        listed(&body, "quick").is_none(),
        "finished calls are gone:\n{body}"
    );
    assert!(
        body.contains("inflight.rs:"),
        "the definition's location:\n{body}"
    );
    let elapsed = body.lines().nth(gateway_line).unwrap().trim_start();
    assert!(elapsed.contains("ms") || elapsed.contains('s'), "{elapsed}");

    release_gateway.send(()).unwrap();
    first.await.unwrap();
    third.abort(); // cancelled: its guard is dropped
    let _ = third.await;
    drop(cancel);
    let body =
        tokio::task::spawn_blocking(move || common::http_get(addr, "/debug/pprof/inflight", "").2)
            .await
            .unwrap();
    assert!(listed(&body, "stuck_on_the_gateway").is_none(), "{body}");
    assert_eq!(body.matches("::stuck_on_the_ledger ").count(), 1, "{body}");
    release_ledger.send(()).unwrap();
    second.await.unwrap();
    admin.stop();
}
