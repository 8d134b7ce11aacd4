//! The `?` of a body that `#[instrumented]` runs as a labelled block: what `Try::branch`
//! and `FromResidual::from_residual` (unstable) do for the operands that a function
//! returning `Result` accepts.

use std::task::Poll;

/// Splits the operand of a rewritten `?` into the value it continues with and the value
/// the function returns when it leaves (`R`, the function's `Result`, its error converted
/// with `From::from` as `?` converts it).
///
/// The macro rewrites `expr?` in a body that returns a declared `Result<…>` and leaves
/// early only by `?` and `return` into
/// `match Branch::branch(expr) { Ok(v) => v, Err(r) => break 'body r }`, so that the body
/// runs in place instead of as a closure. Implemented for the operands `?` accepts in
/// such a function: `Result`, `Poll<Result<…>>` and `Poll<Option<Result<…>>>`.
///
/// ```
/// use observe_runtime::__private::Branch;
/// use std::task::Poll;
///
/// let leaves: Result<u8, Result<u8, String>> = Branch::branch(Err::<u8, &str>("no"));
/// assert_eq!(leaves, Err(Err("no".to_string())));
/// let goes_on: Result<u8, Result<(), String>> = Branch::branch(Ok::<u8, &str>(1));
/// assert_eq!(goes_on, Ok(1));
/// let pending: Result<Poll<u8>, Result<(), ()>> = Branch::branch(Poll::<Result<u8, ()>>::Pending);
/// assert_eq!(pending, Ok(Poll::Pending));
/// ```
#[diagnostic::on_unimplemented(
    message = "the `?` operator can only be used on `Result`s in a function that returns `Result`",
    label = "this `?` is applied to `{Self}`, which is not a `Result`",
    note = "on an `Option`, use `.ok_or(…)?` to provide an error compatible with the function's `Result`"
)]
pub trait Branch<R> {
    /// The value of `expr?` when it continues.
    type Output;
    /// `Ok(output)` to continue, `Err(returned)` to leave.
    fn branch(self) -> Result<Self::Output, R>;
}

impl<T, F, U, E: From<F>> Branch<Result<U, E>> for Result<T, F> {
    type Output = T;
    #[inline]
    fn branch(self) -> Result<T, Result<U, E>> {
        match self {
            Ok(value) => Ok(value),
            Err(error) => Err(Err(From::from(error))),
        }
    }
}

impl<T, F, U, E: From<F>> Branch<Result<U, E>> for Poll<Result<T, F>> {
    type Output = Poll<T>;
    #[inline]
    fn branch(self) -> Result<Poll<T>, Result<U, E>> {
        match self {
            Poll::Ready(Ok(value)) => Ok(Poll::Ready(value)),
            Poll::Ready(Err(error)) => Err(Err(From::from(error))),
            Poll::Pending => Ok(Poll::Pending),
        }
    }
}

impl<T, F, U, E: From<F>> Branch<Result<U, E>> for Poll<Option<Result<T, F>>> {
    type Output = Poll<Option<T>>;
    #[inline]
    fn branch(self) -> Result<Poll<Option<T>>, Result<U, E>> {
        match self {
            Poll::Ready(Some(Ok(value))) => Ok(Poll::Ready(Some(value))),
            Poll::Ready(Some(Err(error))) => Err(Err(From::from(error))),
            Poll::Ready(None) => Ok(Poll::Ready(None)),
            Poll::Pending => Ok(Poll::Pending),
        }
    }
}
