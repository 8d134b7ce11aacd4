//! Pieces shared by the macros.

pub mod fallback;
pub mod names;
