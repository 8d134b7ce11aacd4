//! Pieces shared by the macros.

pub mod duration;
pub mod fallback;
pub mod names;
pub mod options;
pub mod types;
