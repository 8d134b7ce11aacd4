//! CPU profiles in Go's `net/http/pprof` interface (feature `pprof`):
//! `/debug/pprof/profile?seconds=N&frequency=HZ` answers a gzipped `profile.proto` that
//! `go tool pprof` reads; `/debug/pprof/flamegraph?seconds=N` the same sampling as an SVG.
//!
//! Safe by default: behind the admin access policy; one profile at a time (there is one
//! process-wide CPU timer), a second request gets 429 with `Retry-After`; `seconds` is
//! bounded; samples interrupted inside libc, libgcc, pthread or the vDSO are skipped, as
//! pprof-rs advises, to avoid deadlocks while sampling; a client that goes away stops
//! sampling within [`PEER_CHECK`] (the admin server keeps each connection's socket), and
//! the sample buffer ([`super::sampler`]) is freed with it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

/// Default profile length, as in Go.
pub const DEFAULT_SECONDS: u64 = 30;
/// Default sampling frequency (Hz): not a divisor of common timer frequencies.
pub const DEFAULT_FREQUENCY: i32 = 99;
/// Highest sampling frequency accepted.
pub const MAX_FREQUENCY: i32 = 1000;

static RUNNING: AtomicBool = AtomicBool::new(false);
/// When the running profile ends (seconds since the epoch), for `Retry-After`.
static RUNNING_UNTIL: AtomicU64 = AtomicU64::new(0);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Holds the single profiling slot; released on drop, whatever happens.
pub(super) struct Slot;

impl Slot {
    pub(super) fn take(seconds: u64) -> Option<Slot> {
        if RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        RUNNING_UNTIL.store(now_secs() + seconds, Ordering::Relaxed);
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// How often a running profile looks whether its client is still there.
const PEER_CHECK: Duration = Duration::from_millis(250);

/// The socket of the admin connection a request came on (set by the admin server's
/// `on_connect`), to notice a client that went away while its profile runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerSocket(pub(crate) std::os::fd::RawFd);

impl PeerSocket {
    /// The peer closed or reset the connection: a peek reads end-of-stream or fails
    /// with anything but "nothing yet".
    fn gone(self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: a non-blocking peek into a one-byte buffer on a socket the connection
        // still owns (the connection outlives the request that reads it).
        let n = unsafe {
            libc::recv(
                self.0,
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => true,
            n if n > 0 => false,
            _ => {
                let e = std::io::Error::last_os_error();
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                )
            }
        }
    }
}

struct Params {
    seconds: u64,
    frequency: i32,
}

fn bad(message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(message + "\n")
}

fn params(req: &HttpRequest, max_seconds: u64) -> Result<Params, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| format!("unreadable query string: {e}"))?;
    let mut p = Params {
        seconds: DEFAULT_SECONDS.min(max_seconds),
        frequency: DEFAULT_FREQUENCY,
    };
    for (key, value) in pairs.into_inner() {
        match key.as_str() {
            "seconds" => {
                p.seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=max_seconds).contains(s))
                    .ok_or_else(|| {
                        format!("seconds={value:?} is not allowed: give a whole number from 1 to {max_seconds}")
                    })?;
            }
            "frequency" => {
                p.frequency = value
                    .parse::<i32>()
                    .ok()
                    .filter(|f| (1..=MAX_FREQUENCY).contains(f))
                    .ok_or_else(|| {
                        format!("frequency={value:?} is not allowed: give a whole number of Hz from 1 to {MAX_FREQUENCY}")
                    })?;
            }
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`: expected seconds, frequency"
                ));
            }
        }
    }
    Ok(p)
}

pub(crate) fn busy() -> HttpResponse {
    let retry = RUNNING_UNTIL
        .load(Ordering::Relaxed)
        .saturating_sub(now_secs())
        .max(1);
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, retry.to_string()))
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "a profile is already being taken (one at a time, CPU and heap alike); retry in {retry} s\n"
        ))
}

fn failed(what: &str, e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{what}: {e}\n"))
}

/// Parses the request, takes the single profiling slot for the whole sampling, and
/// samples; every way this can fail is already the response to send.
async fn sample(
    req: &HttpRequest,
    max_seconds: u64,
) -> Result<(Params, pprof::Report), HttpResponse> {
    let p = params(req, max_seconds).map_err(bad)?;
    let _slot = Slot::take(p.seconds).ok_or_else(busy)?;
    #[cfg(not(target_os = "linux"))]
    return Err(failed(
        "could not start the CPU profiler",
        "CPU profiles are taken on Linux only",
    ));
    #[cfg(target_os = "linux")]
    let sampler = super::sampler::Sampler::start(p.frequency, p.seconds)
        .map_err(|e| failed("could not start the CPU profiler", e))?;
    // The client going away stops sampling: actix drops this future (and the sampler)
    // only when it notices, so the admin server's peer socket is watched as well.
    let peer = req.conn_data::<PeerSocket>().copied();
    let until = tokio::time::Instant::now() + Duration::from_secs(p.seconds);
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            break;
        }
        tokio::time::sleep((until - now).min(PEER_CHECK)).await;
        if peer.is_some_and(|peer| peer.gone()) {
            drop(sampler);
            tracing::info!(target: "observe::pprof", "CPU profile abandoned: the client went away");
            return Err(HttpResponse::BadRequest().finish());
        }
    }
    let report = sampler.finish();
    super::release_memory();
    Ok((p, report))
}

/// The profiler's own frames (its signal handler and the unwinder it calls), stripped
/// from the leaf end of every sample.
fn is_profiler_frame(name: &str) -> bool {
    name.starts_with("pprof::")
        || name.starts_with("observe_runtime::pprof::sampler::")
        || name.starts_with("backtrace::")
        || name.contains("perf_signal_handler")
        || name == "__restore_rt"
}

pub(crate) async fn profile(req: HttpRequest, max_seconds: u64) -> HttpResponse {
    let (_, report) = match sample(&req, max_seconds).await {
        Ok(sampled) => sampled,
        Err(response) => return response,
    };
    let mut profile = match report.pprof() {
        Ok(p) => p,
        Err(e) => return failed("could not encode the CPU profile", e),
    };
    strip_profiler_frames(&mut profile);
    use pprof::protos::Message;
    let mut raw = Vec::new();
    if let Err(e) = profile.encode(&mut raw) {
        return failed("could not encode the CPU profile", e);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let body = gz.write_all(&raw).and_then(|()| gz.finish());
    match body {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile.pb.gz\"",
            ))
            .body(body),
        Err(e) => failed("could not compress the CPU profile", e),
    }
}

/// Removes samples' leading frames that belong to the profiler itself.
fn strip_profiler_frames(profile: &mut pprof::protos::Profile) {
    let name_of = |id: u64| -> Option<&str> {
        let function = profile.function.iter().find(|f| f.id == id)?;
        profile
            .string_table
            .get(usize::try_from(function.name).ok()?)
            .map(String::as_str)
    };
    let profiler_locations: std::collections::HashSet<u64> = profile
        .location
        .iter()
        .filter(|l| {
            !l.line.is_empty()
                && l.line
                    .iter()
                    .all(|line| name_of(line.function_id).is_some_and(is_profiler_frame))
        })
        .map(|l| l.id)
        .collect();
    for sample in &mut profile.sample {
        // Leaf first: drop profiler frames at the leaf end.
        let keep = sample
            .location_id
            .iter()
            .position(|id| !profiler_locations.contains(id))
            .unwrap_or(sample.location_id.len());
        sample.location_id.drain(..keep);
    }
    profile.sample.retain(|s| !s.location_id.is_empty());
}

pub(crate) async fn flamegraph(req: HttpRequest, max_seconds: u64) -> HttpResponse {
    let (p, report) = match sample(&req, max_seconds).await {
        Ok(sampled) => sampled,
        Err(response) => return response,
    };
    if report.data.is_empty() {
        return HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "no samples in {} s at {} Hz: the process used no CPU while it was profiled\n",
                p.seconds, p.frequency
            ));
    }
    let mut svg = Vec::new();
    match report.flamegraph(&mut svg) {
        Ok(()) => HttpResponse::Ok().content_type("image/svg+xml").body(svg),
        Err(e) => failed("could not render the flame graph", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_at_a_time() {
        let first = Slot::take(5).expect("free");
        assert!(Slot::take(5).is_none());
        drop(first);
        assert!(Slot::take(5).is_some());
    }
}
