//! One instrumented call, as generated code drives it: [`enter`] and [`Call::exit`] around
//! a synchronous body, [`Timed`] (or, without a span, [`TimedUntraced`]) around a future.
//! Both are compiled here, once, not in every annotated function: the code the macro
//! emits per function is a `static`, one call on entry and one on exit (or one generic
//! future type per `async` function).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;
use tracing::span::{Entered, EnteredSpan, Id};

use super::callsite::close_entered;
use super::classify::{IsResult, result_outcome};
use super::meta::Outcome;
use super::site::{Guard, Site, Started};

/// A synchronous call in progress: its start and its span, entered (opened through the
/// dispatcher directly: not a `Span`). Dropped without [`Call::exit`], the body left by
/// `?` or panicked: the call counts as an error (offered as its bucket's exemplar unless
/// panicking) and the span closes.
///
/// Generated code keeps it where it was returned (`let call = &mut enter(…)`) and ends
/// it through `&mut`: a body that can leave by `?` keeps the call where its drop finds
/// it, and moving it by value into `exit` copied it through memory first (a
/// store-forwarding stall: an `async fn` with a `?` and a span, `calls.rs`, 29 → 36 ns).
#[must_use = "a call is recorded by `exit`"]
pub struct Call {
    started: Started,
    /// The span opened and entered by [`Site::open_entered`], if any.
    span: Option<Id>,
    /// Not recorded yet.
    live: bool,
}

impl Drop for Call {
    /// Out of line: inlined, the check made a release build of the compile-time
    /// benchmark execute a quarter more instructions.
    #[inline(never)]
    fn drop(&mut self) {
        if self.live {
            self.left();
        }
    }
}

/// Starts a synchronous call of `site`, a site with a span: counts it as started, starts
/// its clock and opens and enters its span.
#[inline(never)]
pub fn enter(site: &'static Site) -> Call {
    Call {
        started: site.begin(),
        span: site.open_entered(),
        live: true,
    }
}

impl Call {
    /// Records the call with `outcome`, inside its span (where the call may become its
    /// bucket's exemplar), then leaves and closes the span.
    #[inline(never)]
    pub fn exit(&mut self, outcome: Outcome) {
        self.live = false;
        self.started.finish(outcome, true);
        self.close_span();
    }

    /// The body left without `exit`: recorded before the span closes, so that an
    /// error's exemplar carries the span's trace.
    #[cold]
    #[inline(never)]
    fn left(&mut self) {
        self.live = false;
        self.started.finish_left(true);
        self.close_span();
    }

    /// Leaves and closes the span, if any (after the call was recorded inside it).
    #[inline(always)]
    fn close_span(&mut self) {
        if let Some(id) = self.span.take() {
            close_entered(id);
        }
    }
}

/// A synchronous call in a span the function built itself (`fields(…)`), entered; as
/// [`Call`] otherwise, ended through `&mut` too (moved into `exit` by value, a function
/// with a field and a `?` took 65–68 ns a call instead of 46–48, `calls.rs`).
#[must_use = "a call is recorded by `exit`"]
pub struct CallIn {
    /// `None` once recorded.
    guard: Option<Guard>,
    /// Left when the call is dropped, after the guard recorded it.
    _span: EnteredSpan,
}

impl Drop for CallIn {
    /// Before the span is left (see [`Call`]).
    #[inline]
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.into_started().finish_left(true);
        }
    }
}

/// A synchronous call without a span (`span = false`) in progress: its start. Dropped
/// without [`exit_untraced`], the body left by `?` or panicked: the call counts as an
/// error.
#[must_use = "a call is recorded by `exit_untraced`"]
pub struct UntracedCall(Started);

impl Drop for UntracedCall {
    /// Out of line (inlined, the call to record it took LLVM's constraint elimination
    /// a fifth of a release build of the compile-time benchmark).
    #[cold]
    #[inline(never)]
    fn drop(&mut self) {
        self.0.finish_left(false);
    }
}

/// Starts a synchronous call of `site` without a span (`span = false`): only its start.
#[inline(never)]
pub fn enter_untraced(site: &'static Site) -> UntracedCall {
    UntracedCall(site.begin())
}

/// Records a synchronous call of a site without a span (see [`enter_untraced`]) with
/// `outcome`. The outcome comes first: computed before the call is moved into the
/// arguments, it needs no path that drops a moved call should it unwind (the other way
/// round, a debug build of the compile-time benchmark executed 5 % more instructions).
#[inline(never)]
pub fn exit_untraced(outcome: Outcome, call: UntracedCall) {
    let started = call.0;
    std::mem::forget(call);
    started.finish(outcome, false);
}

/// Records a synchronous call of a site without a span whose function declares a
/// `Result` classified by default: [`exit_untraced`] with [`result_outcome`]'s outcome,
/// one instance per `Result` type instead of a second call in every function.
#[inline]
pub fn exit_untraced_result<R: IsResult>(out: &R, call: UntracedCall) {
    exit_untraced(result_outcome(out), call);
}

/// Records a synchronous call of a site with a span whose function declares a `Result`
/// classified by default: [`Call::exit`] with [`result_outcome`]'s outcome, one instance
/// per `Result` type instead of a second call in every function.
#[inline]
pub fn exit_result<R: IsResult>(out: &R, call: &mut Call) {
    call.exit(result_outcome(out));
}

/// Starts a synchronous call of `site` inside `span`, a span the function built itself
/// (`fields(…)`).
#[inline(never)]
pub fn enter_with_span(site: &'static Site, span: Span) -> CallIn {
    CallIn {
        guard: Some(site.start()),
        _span: span.entered(),
    }
}

impl CallIn {
    /// Records the call with `outcome`, inside its span; the call's drop then leaves the
    /// span (it closes when its last handle goes).
    #[inline(never)]
    pub fn exit(&mut self, outcome: Outcome) {
        if let Some(guard) = self.guard.take() {
            guard.finish_traced(outcome);
        }
    }
}

/// An instrumented function's future: polls the body inside the call's span and, when the
/// body is ready, records the call with the outcome `classify` gives, still inside the
/// span (so it may become the bucket's exemplar). Dropped before that, the call counts as
/// cancelled (or, while panicking, as an error), and the body is dropped inside the span.
///
/// The call starts on the first poll, as an `async fn`'s body does. Everything but the
/// body's own polling and the construction of the state is out of line and not generic,
/// and the type has no `Drop` of its own (its fields' drops do the work, in declaration
/// order): one `async` function instantiates only `poll` and the drop glue. A site
/// without a span gets [`TimedUntraced`] instead.
pub struct Timed<F: Future> {
    /// Dropped first: enters the span of a call still in flight.
    head: Head,
    future: F,
    /// Dropped last: records a call still in flight as cancelled, and leaves its span.
    progress: Progress,
    classify: fn(&F::Output) -> Outcome,
}

/// The span of a [`Timed`] call (opened on the first poll, at the call, or by the
/// function itself with `fields(…)`), and whether the call is in flight.
struct Head {
    span: Span,
    in_flight: bool,
}

/// The rest of a [`Timed`] call's state.
struct Progress {
    site: &'static Site,
    guard: Option<Guard>,
    span_pending: bool,
    started: bool,
    traced: bool,
    in_flight: bool,
}

thread_local! {
    /// Spans entered while the body of a cancelled call is dropped (nested cancellations
    /// stack): pushed by `Head`'s drop, popped by `Progress`'s, on this thread, in one
    /// drop of one `Timed`.
    static DROPPING: std::cell::RefCell<Vec<EnteredSpan>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Head {
    fn drop(&mut self) {
        if self.in_flight {
            let span = std::mem::replace(&mut self.span, Span::none()).entered();
            DROPPING.with(|stack| stack.borrow_mut().push(span));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.in_flight {
            // Leaves the span the head entered (after the body, before the guard records
            // the cancelled call).
            let span = DROPPING.with(|stack| stack.borrow_mut().pop());
            drop(span);
        }
    }
}

/// A call not started yet: its span given, or opened on the first poll (`None`). Inline:
/// built out of line and copied into the future, it cost an `async fn` with a span 18 ns
/// a call (`calls.rs`, `async_await_instrumented_metrics_span`: 57 → 39 ns).
#[inline]
fn pending(site: &'static Site, span: Option<Span>) -> (Head, Progress) {
    let span_pending = span.is_none();
    (
        Head {
            span: span.unwrap_or_else(Span::none),
            in_flight: false,
        },
        Progress {
            site,
            guard: None,
            span_pending,
            started: false,
            traced: site.traced(),
            in_flight: false,
        },
    )
}

/// Before each poll of the body: on the first, starts the call (and opens its span, if
/// that waits for the first poll too); then enters the span. One call out of line.
#[inline(never)]
fn enter_poll<'a>(head: &'a mut Head, progress: &mut Progress) -> Entered<'a> {
    if !progress.started {
        progress.started = true;
        if progress.span_pending {
            head.span = progress.site.new_span();
        }
        progress.guard = Some(progress.site.start());
        progress.in_flight = true;
        head.in_flight = true;
    }
    head.span.enter()
}

/// When the body is ready: records the call inside its span (it may become the bucket's
/// exemplar), then leaves the span. One call out of line.
#[inline(never)]
fn exit_poll(entered: Entered<'_>, progress: &mut Progress, outcome: Outcome) {
    progress.in_flight = false;
    if let Some(guard) = progress.guard.take() {
        if progress.traced {
            guard.finish_traced(outcome);
        } else {
            guard.finish(outcome);
        }
    }
    drop(entered);
}

/// The future of an `async fn` of `site`: its span opens on the first poll, as it would
/// in the body of the `async fn`. `R` names the output so that `?` in the body infers its
/// conversion from the declared return type.
#[inline]
pub fn timed<R, F: Future<Output = R>>(
    site: &'static Site,
    classify: fn(&R) -> Outcome,
    future: F,
) -> Timed<F> {
    let (head, progress) = pending(site, None);
    Timed {
        head,
        future,
        progress,
        classify,
    }
}

/// The future returned by a function of `site` that returns a future: its span opens now,
/// when the function is called (a child of the caller's span), and the call starts on
/// the first poll.
#[inline]
pub fn timed_now<R, F: Future<Output = R>>(
    site: &'static Site,
    classify: fn(&R) -> Outcome,
    future: F,
) -> Timed<F> {
    timed_in_span(site, classify, site.new_span(), site.traced(), future)
}

/// The future of a function of `site` whose span the function builds itself
/// (`fields(…)`).
#[inline]
pub fn timed_in<R, F: Future<Output = R>>(
    site: &'static Site,
    classify: fn(&R) -> Outcome,
    span: Span,
    future: F,
) -> Timed<F> {
    timed_in_span(site, classify, span, true, future)
}

/// A future whose span is already open (`timed` keeps its own literal: an `async fn`
/// instantiates one generic constructor, not two).
#[inline]
fn timed_in_span<R, F: Future<Output = R>>(
    site: &'static Site,
    classify: fn(&R) -> Outcome,
    span: Span,
    traced: bool,
    future: F,
) -> Timed<F> {
    let (head, mut progress) = pending(site, Some(span));
    progress.traced = traced;
    Timed {
        head,
        future,
        progress,
        classify,
    }
}

/// The future of an `async fn` without a span (`span = false`): [`Timed`] without the
/// span's machinery. The call starts on the first poll and is recorded when the body is
/// ready; dropped before that, the body is dropped first (fields drop in declaration
/// order) and then the guard's own drop records the call as cancelled (or, while
/// panicking, as an error).
pub struct TimedUntraced<F: Future> {
    future: F,
    guard: Option<Guard>,
    site: &'static Site,
    started: bool,
    classify: fn(&F::Output) -> Outcome,
}

/// Starts a call of a [`TimedUntraced`] future: out of line, not generic (inlined into
/// every future's `poll`, the start and the record made a release build of the 500
/// awaiting functions of the compile-time benchmark execute 3.7 times the instructions
/// of the unannotated one).
#[inline(never)]
fn start_untraced(site: &'static Site) -> Guard {
    site.start()
}

/// Records a call of a [`TimedUntraced`] future (see [`start_untraced`]).
#[inline(never)]
fn finish_untraced(guard: Guard, outcome: Outcome) {
    guard.finish(outcome);
}

/// The future of an `async fn` of `site` without a span: see [`TimedUntraced`].
#[inline]
pub fn timed_untraced<R, F: Future<Output = R>>(
    site: &'static Site,
    classify: fn(&R) -> Outcome,
    future: F,
) -> TimedUntraced<F> {
    TimedUntraced {
        future,
        guard: None,
        site,
        started: false,
        classify,
    }
}

impl<F: Future> Future for TimedUntraced<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of `self`, dropped in
        // place with it; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if !this.started {
            this.started = true;
            // Never a guard to drop here: no drop code in every future's `poll`.
            std::mem::forget(this.guard.replace(start_untraced(this.site)));
        }
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let out = std::task::ready!(future.poll(cx));
        // The outcome first: no path that drops a guard moved into the arguments.
        let outcome = (this.classify)(&out);
        if let Some(guard) = this.guard.take() {
            finish_untraced(guard, outcome);
        }
        Poll::Ready(out)
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of `self`, dropped in
        // place with it; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let entered = enter_poll(&mut this.head, &mut this.progress);
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let out = std::task::ready!(future.poll(cx));
        // The outcome first, as in `TimedUntraced`.
        let outcome = (this.classify)(&out);
        exit_poll(entered, &mut this.progress, outcome);
        this.head.in_flight = false;
        Poll::Ready(out)
    }
}
