//! The `vaia` command-line tool as a library: the local stack (`vaia up`), its HTTP API,
//! gates as commands, the client and the demo. `main.rs` only parses arguments.

pub mod api;
pub mod cli_registry;
pub mod cli_runs;
pub mod client;
pub mod collect;
pub mod ct_cmd;
pub mod ct_loop;
pub mod dashboard;
pub mod demo;
pub mod gate_cmd;
pub mod live;
pub mod loadgen;
pub mod metrics;
pub mod monitoring;
pub mod serve;
pub mod stack;
pub mod telemetry;
