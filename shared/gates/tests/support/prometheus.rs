//! Test harness: a real Prometheus server scraping a test exporter with a known histogram;
//! the harness lives in `vaia-testkit` (shared with the CLI's monitoring tests).

#![allow(unused_imports)]

pub use vaia_testkit::prometheus::*;
