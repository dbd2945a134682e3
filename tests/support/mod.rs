//! Shared helpers for the cross-crate tests.

pub mod aws;
pub mod cost;
