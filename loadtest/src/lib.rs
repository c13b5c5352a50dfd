//! loadtest: a load generator for ringlb and the assignment's experiments A-1..A-4.
//!
//! # Layout
//!
//! - [`client`]: one HTTP/1.1 exchange with the data port, classified (ok with the replica's
//!   id, or an error kind).
//! - [`run`]: a bounded run of N requests at a concurrency, with every request's outcome kept;
//!   [`progress`] shows it while it runs.
//! - [`conntrack`]: the kernel table a connection-per-request load fills; experiments wait for
//!   room in it before each measurement.
//! - [`control`]: the control-port client (`/rep`, `/replicas`, `/add`, `/rm`).
//! - [`ringlb`]: starting and stopping a ringlb of our own (A-4, `--spawn`, the tests).
//! - [`experiments`]: A-1..A-4, each measuring first and then writing its chart, table and
//!   `results.json` entry; [`chart`], [`report`] and [`stats`] are what they write with.
//! - [`cli`] and [`app`]: the flags and what each subcommand does; `main.rs` only parses and
//!   calls [`app::main`].
//!
//! Everything talks to ringlb over its ports, as any client would; `ringlb-core` is used only for
//! exact offline figures that explain the live ones.

pub mod app;
pub mod chart;
pub mod cli;
pub mod client;
pub mod conntrack;
pub mod control;
pub mod experiments;
pub mod progress;
pub mod report;
pub mod ringlb;
pub mod run;
pub mod stats;
