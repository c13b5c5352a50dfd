//! ringlb's data plane: a layer-4 proxy that reads only the first HTTP request line of each
//! connection, hashes a request ID onto the ring, and splices bytes both ways.
//!
//! # Layout
//!
//! The modules follow a connection's path:
//!
//! 0. [`workers`]: one thread per core, each with its own runtime and its own listener.
//! 1. [`listener`]: the accept loop, with a connection cap and back-off on accept errors.
//! 2. [`sniff`]: read the request line (and headers, when the key needs them) under a deadline
//!    and a size cap; parse it with `httparse`.
//! 3. [`key`]: take the request key from it (`query:rid`, `path`, `header:NAME`, …).
//! 4. [`conn`]: pick the replica on the current ring snapshot, connect with a timeout, fail over
//!    to the next replica, replay the bytes already read, then hand over to …
//! 5. [`splice`]: zero-copy forwarding with `splice(2)` through pipes, half-close passed through,
//!    idle timeout.
//!
//! [`reject`] holds the answers for bad input (400, 408, 414, 431, 503), [`config`] the settings,
//! [`handover`] the passing of the data listeners from a ringlb to the one that replaces it.
//!
//! The data plane reads the routing snapshot from a [`ringlb_core::Directory`] with one atomic
//! load per connection and never waits on the control plane.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod busy;
pub mod config;
pub mod conn;
pub mod handover;
pub mod key;
pub mod listener;
pub mod reject;
pub mod sniff;
pub mod splice;
pub mod workers;

pub use config::{KeySpec, ProxyConfig};
pub use workers::{start, DataPlane};
