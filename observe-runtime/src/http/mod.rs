//! The HTTP layer (feature `actix`): the request middleware and its metrics.

pub mod metrics;
mod middleware;

pub use middleware::{Middleware, MiddlewareFuture, MiddlewareService, TimedBody};
