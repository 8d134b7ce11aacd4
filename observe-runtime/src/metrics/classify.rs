//! Outcome classification of a return value, by autoref specialisation.

use super::meta::Outcome;

/// Classification of a return value by autoref specialisation: `Result` values are
/// classified by `is_ok`; anything else is a success.
///
/// Generated code calls `(&Classifier(&value)).__observe_outcome()` with both traits in
/// scope; method resolution picks [`ClassifyResult`] when the value is a `Result`.
pub struct Classifier<'a, T>(pub &'a T);

/// See [`Classifier`].
pub trait ClassifyResult {
    /// The outcome of a `Result`.
    fn __observe_outcome(&self) -> Outcome;
}

impl<T, E> ClassifyResult for Classifier<'_, Result<T, E>> {
    #[inline]
    fn __observe_outcome(&self) -> Outcome {
        if self.0.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }
}

/// See [`Classifier`].
pub trait ClassifyOther {
    /// Any other value is a success.
    fn __observe_outcome(&self) -> Outcome;
}

impl<T> ClassifyOther for &Classifier<'_, T> {
    #[inline]
    fn __observe_outcome(&self) -> Outcome {
        Outcome::Ok
    }
}

/// Maps a user predicate (`ok_if` / `error_if`) to an outcome.
#[inline]
pub fn outcome_from(is_ok: bool) -> Outcome {
    if is_ok { Outcome::Ok } else { Outcome::Error }
}

/// A `std::result::Result`: what a return type spelled `…Result<…>` must be for
/// [`result_outcome`].
#[diagnostic::on_unimplemented(
    message = "`#[instrumented]` takes a return type named `Result` for `std::result::Result`, and `{Self}` is not one",
    label = "not `std::result::Result` (or an alias of it)",
    note = "classify your own type with `ok_if = path` or `error_if = path`"
)]
pub trait IsResult {
    /// `is_ok()`.
    fn is_ok_result(&self) -> bool;
}

impl<T, E> IsResult for Result<T, E> {
    #[inline]
    fn is_ok_result(&self) -> bool {
        self.is_ok()
    }
}

/// The outcome of a `Result`, for functions whose declared return type is one (the
/// macro sees it in the signature): one generic function shared by every function with
/// the same `Result` type, instead of the autoref dispatch per function.
#[inline]
pub fn result_outcome<R: IsResult>(value: &R) -> Outcome {
    outcome_from(value.is_ok_result())
}
