//! `/debug/pprof/*` on the admin server: the index, `cmdline`, and the profiles of
//! [`crate::pprof`] (feature `pprof`), each answered with a 501 that says how to turn it
//! on when its feature is off.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{DEFAULT_MAX_PROFILE_SECONDS, read_only};

/// Mounts every `/debug/pprof` route (inside the scope).
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(read_only("/", pprof_index))
        .service(read_only("", pprof_index))
        .service(read_only("/cmdline", pprof_cmdline))
        .service(read_only("/profile", cpu_profile))
        .service(read_only("/flamegraph", cpu_flamegraph))
        .service(read_only("/heap", heap_profile))
        .service(read_only("/threads", thread_stacks))
        .service(read_only("/inflight", inflight_calls))
        .default_service(web::to(pprof_unknown));
}

/// Mounts `/debug/observe` (inside the scope): the status page and the generated rules
/// and dashboard of [`crate::slo`].
pub(super) fn observe_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(read_only("/", status_page))
        .service(read_only("", status_redirect))
        .service(read_only("/rules.yml", rules_file))
        .service(read_only("/dashboard.json", dashboard_file))
        .default_service(web::to(observe_unknown));
}

async fn status_page() -> HttpResponse {
    // Reads every source, as a scrape does: off the admin worker.
    match web::block(crate::slo::status_html).await {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            // Nothing to load from anywhere: say so to the browser too.
            .insert_header((
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'",
            ))
            .body(html),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the status page failed: {e}\n")),
    }
}

/// `/debug/observe` without its slash: relative links on the page need it.
async fn status_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/debug/observe/"))
        .finish()
}

async fn rules_file() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml; charset=utf-8")
        .body(crate::slo::rules_yaml())
}

async fn dashboard_file() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::slo::dashboard_json())
}

async fn observe_unknown(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "no such page: {}; /debug/observe/ serves the status page, rules.yml and dashboard.json\n",
            req.path()
        ))
}

/// The profiles this build serves, one line each.
const PROFILES: &[(&str, &str)] = &[
    (
        "cmdline",
        "The command line of this process, arguments separated by NUL bytes.",
    ),
    #[cfg(feature = "pprof")]
    (
        "profile",
        "CPU profile (gzipped profile.proto for go tool pprof). ?seconds=N (default 30), ?frequency=Hz (default 99).",
    ),
    #[cfg(feature = "heap")]
    (
        "heap",
        "Sampled live heap from jemalloc (gzipped profile.proto; read with go tool pprof -symbolize=none).",
    ),
    #[cfg(feature = "pprof")]
    (
        "threads",
        "The stack of every thread of the process, as text (each thread answers a signal).",
    ),
    #[cfg(feature = "inflight")]
    (
        "inflight",
        "Every #[instrumented] call in progress, oldest first, with its elapsed time and trace id.",
    ),
    #[cfg(feature = "pprof")]
    (
        "flamegraph",
        "The same CPU sampling as an SVG flame graph, for a browser. ?seconds=N, ?frequency=Hz.",
    ),
];

/// The longest CPU profile allowed, given to the handlers.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProfileLimit(pub(super) u64);

fn limit(req: &HttpRequest) -> u64 {
    req.app_data::<web::Data<ProfileLimit>>()
        .map_or(DEFAULT_MAX_PROFILE_SECONDS, |l| l.0)
}

#[cfg(feature = "pprof")]
async fn cpu_profile(req: HttpRequest) -> HttpResponse {
    let max = limit(&req);
    crate::pprof::profile(req, max).await
}

#[cfg(feature = "pprof")]
async fn cpu_flamegraph(req: HttpRequest) -> HttpResponse {
    let max = limit(&req);
    crate::pprof::flamegraph(req, max).await
}

#[cfg(not(feature = "pprof"))]
async fn cpu_profile(req: HttpRequest) -> HttpResponse {
    let _ = limit(&req);
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body("CPU profiling is not in this build: enable the `pprof` feature of observe\n")
}

#[cfg(feature = "heap")]
async fn heap_profile() -> HttpResponse {
    crate::pprof::heap().await
}

#[cfg(not(feature = "heap"))]
async fn heap_profile() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "heap profiles are not in this build: enable the `heap` feature of observe (its \
             build takes a few minutes) and add `observe::heap_profiling!();` to main.rs, which \
             makes jemalloc the allocator with sampling on\n",
        )
}

#[cfg(all(feature = "pprof", target_os = "linux"))]
async fn thread_stacks() -> HttpResponse {
    // Up to 200 ms per thread that does not answer: off the admin worker.
    match web::block(crate::pprof::thread_dump).await {
        Ok(Some(text)) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text),
        Ok(None) => crate::pprof::busy(),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the thread dump failed: {e}\n")),
    }
}

#[cfg(not(all(feature = "pprof", target_os = "linux")))]
async fn thread_stacks() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "thread stacks are not in this build: enable the `pprof` feature of observe (Linux)\n",
        )
}

#[cfg(feature = "inflight")]
async fn inflight_calls() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(crate::metrics::inflight::render())
}

#[cfg(not(feature = "inflight"))]
async fn inflight_calls() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "in-flight calls are not tracked in this build: enable the `inflight` feature of \
             observe (each #[instrumented] call then claims and releases a slot, about 2 atomic \
             operations)\n",
        )
}

#[cfg(not(feature = "pprof"))]
async fn cpu_flamegraph(req: HttpRequest) -> HttpResponse {
    cpu_profile(req).await
}

async fn pprof_index() -> HttpResponse {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><title>/debug/pprof/</title></head><body>\n\
         <h1>/debug/pprof/</h1>\n<table>\n",
    );
    for (name, about) in PROFILES {
        page.push_str(&format!(
            "<tr><td><a href=\"{name}\">{name}</a></td><td>{about}</td></tr>\n"
        ));
    }
    page.push_str("</table>\n</body></html>\n");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// Go's `/debug/pprof/cmdline`: the arguments joined by NUL bytes.
async fn pprof_cmdline() -> HttpResponse {
    let args: Vec<String> = std::env::args().collect();
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(args.join("\0"))
}

async fn pprof_unknown(req: HttpRequest) -> HttpResponse {
    let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "unknown profile {:?}; this build serves: {}\n",
            req.path(),
            known.join(", ")
        ))
}
