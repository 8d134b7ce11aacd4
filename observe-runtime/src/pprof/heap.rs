//! Heap profiles from jemalloc (feature `heap`): a binary that invokes
//! `observe::heap_profiling!()` makes jemalloc its global allocator with sampling on (one
//! sample per 512 KiB allocated on average; a library never picks the allocator), and
//! `/debug/pprof/heap` answers jemalloc's profile as gzipped `profile.proto`, with
//! function names, for `go tool pprof -symbolize=none`. Dumps share the CPU profiler's
//! one-at-a-time slot: the two together have deadlocked and crashed other projects.

use actix_web::HttpResponse;

/// The jemalloc allocator `observe::heap_profiling!()` declares global.
pub use tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options that `observe::heap_profiling!()` exports as
/// `_rjem_malloc_conf`: profiling active, sampling every 2^19 bytes on average (what
/// jemalloc_pprof recommends for production).
pub const MALLOC_CONF: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

/// What to do when the binary has not opted in.
const HOW: &str = "heap profiles need jemalloc as this binary's allocator: add \
                   `observe::heap_profiling!();` to main.rs (at the top level, once)\n";

pub(crate) async fn heap() -> HttpResponse {
    let Some(_slot) = super::cpu::Slot::take(1) else {
        return super::cpu::busy();
    };
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return HttpResponse::NotImplemented()
            .content_type("text/plain; charset=utf-8")
            .body(HOW);
    };
    let mut ctl = ctl.lock().await;
    if !ctl.activated() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("jemalloc profiling is compiled in but not active (malloc_conf prof_active)\n");
    }
    match ctl.dump_pprof() {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"heap.pb.gz\"",
            ))
            .body(body),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("could not dump the heap profile: {e}\n")),
    }
}
