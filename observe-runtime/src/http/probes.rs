//! The Kubernetes probe endpoints (feature `actix`), in the apiserver's format:
//!
//! ```text
//! [+]database ok
//! [-]payment_gateway failed: reason withheld
//! [+]cache excluded: ok
//! readyz check failed
//! ```
//!
//! `?verbose` lists every check even when all pass; `?exclude=name` (repeatable) leaves a
//! check out; `/readyz/{name}` runs one; `Accept: application/json` or `?format=json`
//! answers in JSON. Failure details are shown only to callers the admin
//! [`AccessPolicy`](crate::http::AccessPolicy) allows; others read `reason withheld`.
//! Status codes never depend on who asks.

use std::fmt::Write;
use std::time::UNIX_EPOCH;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::access::{AccessPolicy, Decision};
use crate::exposition::json::write_string as json_string;
use crate::health::liveness;
use crate::health::{CheckReport, CheckState, Health, Overall, Probe};

#[derive(Clone)]
struct Ctx {
    health: Option<Health>,
    policy: AccessPolicy,
}

/// Mounts `/livez`, `/healthz`, and (with an engine) `/readyz`, `/readyz/{name}` and
/// `/startupz` on an application.
///
/// ```
/// use actix_web::App;
/// use observe_runtime::{health, http};
/// let engine = health::Health::builder().checks(vec![]).build().unwrap();
/// let probes = http::configure_probes(Some(engine), http::AccessPolicy::loopback_only());
/// let app = App::new().configure(probes);
/// # drop(app);
/// ```
pub fn configure(
    health: Option<Health>,
    policy: AccessPolicy,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        liveness::register_worker();
        crate::metrics::workers::watch_current_runtime(None);
        let ctx = web::Data::new(Ctx { health, policy });
        cfg.app_data(ctx)
            .route("/livez", web::get().to(live))
            .route("/livez", web::head().to(live))
            .route("/healthz", web::get().to(live))
            .route("/healthz", web::head().to(live))
            .route("/readyz", web::get().to(ready))
            .route("/readyz", web::head().to(ready))
            .route("/readyz/{name}", web::get().to(ready_one))
            .route("/startupz", web::get().to(startup))
            .route("/startupz", web::head().to(startup));
    }
}

/// Query parameters, as given (repeatable).
#[derive(Default)]
struct Params {
    verbose: bool,
    json: bool,
    exclude: Vec<String>,
    group: Option<String>,
}

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(message + "\n")
}

/// The query parameters, or the 400 to answer (a message, not a response: small `Err`).
fn params(req: &HttpRequest, allowed: &[&str]) -> Result<Params, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| format!("unreadable query string: {e}"))?;
    let mut p = Params {
        json: req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json")),
        ..Params::default()
    };
    for (key, value) in pairs.into_inner() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unknown query parameter `{key}`: expected {}",
                allowed.join(", ")
            ));
        }
        match key.as_str() {
            "verbose" => p.verbose = true,
            "exclude" => p.exclude.push(value),
            "group" if p.group.is_some() => {
                return Err("`group` given more than once: probe one group at a time".into());
            }
            "group" => p.group = Some(value),
            "format" => match value.as_str() {
                "json" => p.json = true,
                "text" => p.json = false,
                other => {
                    return Err(format!(
                        "unknown format `{other}`: expected `json` or `text`"
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(p)
}

fn authorized(req: &HttpRequest, policy: &AccessPolicy) -> bool {
    let joined = |name| super::access::joined_header(req.headers(), name);
    policy.check(
        req.peer_addr().map(|a| a.ip()),
        joined(header::X_FORWARDED_FOR).as_deref(),
        joined(header::AUTHORIZATION).as_deref(),
    ) == Decision::Allowed
}

fn text_response(ok: bool, body: String) -> HttpResponse {
    let mut r = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    r.content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn live(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let p = match params(&req, &["verbose"]) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let _ = &ctx;
    let stale = liveness::stale_workers(liveness::stale_after());
    let mut body = String::new();
    if p.verbose || !stale.is_empty() {
        if stale.is_empty() {
            let _ = writeln!(
                body,
                "[+]heartbeats ok ({} workers)",
                liveness::watched_workers()
            );
        }
        for (worker, age) in &stale {
            let _ = writeln!(
                body,
                "[-]worker {worker} failed: no heartbeat for {:.1}s",
                age.as_secs_f64()
            );
        }
        body.push_str(if stale.is_empty() {
            "livez check passed\n"
        } else {
            "livez check failed\n"
        });
    } else {
        body.push_str("ok\n");
    }
    text_response(stale.is_empty(), body)
}

async fn ready(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let p = match params(&req, &["verbose", "exclude", "format", "group"]) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let Some(health) = &ctx.health else {
        return no_engine();
    };
    let probe = match &p.group {
        Some(group) if !health.groups().contains(&group.as_str()) => {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body(format!(
                    "no health check is in group `{group}`; groups: {}\n",
                    health.groups().join(", ")
                ));
        }
        Some(group) => health.group_readiness(group, &p.exclude).await,
        None => health.readiness(&p.exclude, None).await,
    };
    let unknown: Vec<&String> = p
        .exclude
        .iter()
        .filter(|e| !health.check_names().contains(&e.as_str()))
        .collect();
    render(&req, &ctx, "readyz", &p, &probe, &unknown)
}

async fn ready_one(ctx: web::Data<Ctx>, req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let p = match params(&req, &["verbose", "format"]) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let Some(health) = &ctx.health else {
        return no_engine();
    };
    if !health.check_names().contains(&name.as_str()) {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "no health check named `{name}`; checks: {}\n",
                health.check_names().join(", ")
            ));
    }
    let probe = health.readiness(&[], Some(name.as_str())).await;
    let p = Params { verbose: true, ..p };
    render(&req, &ctx, "readyz", &p, &probe, &[])
}

async fn startup(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let p = match params(&req, &["verbose", "format"]) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let Some(health) = &ctx.health else {
        return no_engine();
    };
    let probe = health.startup().await;
    render(&req, &ctx, "startupz", &p, &probe, &[])
}

fn no_engine() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no health engine configured: build one with observe::health::Health::builder()\n")
}

fn render(
    req: &HttpRequest,
    ctx: &Ctx,
    probe_name: &str,
    p: &Params,
    probe: &Probe,
    unknown_excludes: &[&String],
) -> HttpResponse {
    let show_details = authorized(req, &ctx.policy);
    let ok = probe.overall != Overall::Failed;
    if p.json {
        return json(ok, probe, show_details);
    }
    let mut body = String::new();
    for name in unknown_excludes {
        let _ = writeln!(
            body,
            "warn: some health checks cannot be excluded: no matches for \"{name}\""
        );
    }
    let list = p.verbose || probe.overall != Overall::Ok;
    if list {
        // Every start-up check gates start-up: criticality means nothing there.
        let tag_non_critical = probe_name == "readyz";
        for c in &probe.checks {
            body.push_str(&line(c, show_details, tag_non_critical));
        }
        if let Some(reason) = probe.process {
            let which = if reason == "shutting down" {
                "shutdown"
            } else {
                "startup"
            };
            let _ = writeln!(body, "[-]{which} failed: {reason}");
        }
        let _ = writeln!(
            body,
            "{probe_name} check {}",
            match probe.overall {
                Overall::Ok => "passed",
                Overall::Degraded => "passed, degraded",
                Overall::Failed => "failed",
            }
        );
    } else {
        body.push_str("ok\n");
    }
    text_response(ok, body)
}

fn line(c: &CheckReport, show_details: bool, tag_non_critical: bool) -> String {
    let detail = |m: &Option<String>| match (m, show_details) {
        (Some(m), true) => m.clone(),
        (Some(_), false) => "reason withheld".to_owned(),
        (None, _) => String::new(),
    };
    let tag = if c.critical || !tag_non_critical {
        ""
    } else {
        " (non-critical)"
    };
    match c.state {
        CheckState::Pass => format!("[+]{} ok\n", c.name),
        CheckState::Degraded => format!("[+]{} degraded: {}\n", c.name, detail(&c.message)),
        CheckState::Excluded => format!(
            "[+]{} excluded: {}\n",
            c.name,
            c.excluded_state.map_or("unknown", |s| s.word())
        ),
        CheckState::Skipped => format!("[-]{} skipped{tag}: {}\n", c.name, detail(&c.message)),
        CheckState::Fail | CheckState::Timeout => format!(
            "[-]{} {}{tag}: {}\n",
            c.name,
            c.state.word(),
            detail(&c.message)
        ),
    }
}

fn json(ok: bool, probe: &Probe, show_details: bool) -> HttpResponse {
    let mut out = String::from("{\"status\":");
    json_string(
        &mut out,
        match probe.overall {
            Overall::Ok => "ok",
            Overall::Degraded => "degraded",
            Overall::Failed => "failed",
        },
    );
    out.push_str(",\"process\":");
    match probe.process {
        Some(reason) => json_string(&mut out, reason),
        None => out.push_str("null"),
    }
    out.push_str(",\"checks\":[");
    for (i, c) in probe.checks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_string(&mut out, c.name);
        let _ = write!(out, ",\"critical\":{},\"status\":", c.critical);
        json_string(&mut out, c.state.word());
        out.push_str(",\"duration_ms\":");
        match c.duration {
            Some(d) => {
                let _ = write!(out, "{:.3}", d.as_secs_f64() * 1e3);
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"last_success\":");
        match c
            .last_success
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        {
            Some(t) => {
                let _ = write!(out, "{:.3}", t.as_secs_f64());
            }
            None => out.push_str("null"),
        }
        let _ = write!(
            out,
            ",\"consecutive_failures\":{},\"error\":",
            c.consecutive_failures
        );
        match (&c.message, show_details) {
            (Some(m), true) => json_string(&mut out, m),
            (Some(_), false) => json_string(&mut out, "reason withheld"),
            (None, _) => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str("]}\n");
    let mut r = if ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    r.content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(out)
}
