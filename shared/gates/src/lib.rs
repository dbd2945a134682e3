//! vaia's gate evaluators: pure functions from evidence bytes to a [`vaia_core::Verdict`].
//! The pipeline functions and the `vaia gate` command both call these; I/O stays outside.

pub mod eval;
pub mod http;
pub mod latency;
pub mod limits;
pub mod prompt;
pub mod schema;
pub mod security;
