//! ringlb's shared core: what the data plane and the control plane both need to agree on.
//!
//! # Layout
//!
//! - [`ring`]: the consistent-hash families (`maglev`, `ring`, `rendezvous`, `jump`, `assignment`).
//!   A [`Ring`] is a pure, immutable value: built from a replica list, asked `owner(key)` and
//!   `walk(key)`, never mutated and never doing I/O.
//! - [`routes`]: the routing snapshot the data plane reads on every connection (a ring plus the
//!   address and health of every replica on it) and the [`Directory`] through which the control
//!   plane publishes a new snapshot with one atomic swap. The data plane never waits on a lock.
//! - [`metrics`]: every metric name and its help text, in one place.
//!
//! Dependencies point one way: `proxy` (data plane) and `control` (control plane) both depend on
//! this crate, never on each other.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod metrics;
pub mod ring;
pub mod routes;

pub use ring::{Family, Key, Member, Poly, Probe, Ring, RingConfig, RingError};
pub use routes::{Backend, Directory, Health, Routes};
