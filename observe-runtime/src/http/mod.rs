//! The HTTP layer (feature `actix`): the request middleware, its metrics, and trace
//! context across hops.

pub mod metrics;
mod middleware;
mod propagation;

pub use middleware::{
    DEFAULT_SKIP_PATHS, Middleware, MiddlewareFuture, MiddlewareService, TimedBody,
};
pub use propagation::{Propagate, outgoing_headers, trace_id};
