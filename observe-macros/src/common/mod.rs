//! Pieces shared by the macros.

pub mod duration;
pub mod errors;
pub mod fallback;
pub mod names;
pub mod options;
pub mod types;
