//! ringlb's control plane: the replica pool and the HTTP API that changes it.
//!
//! # Layout
//!
//! - [`manager`]: membership, server ids, all-or-nothing `/add` and `/rm`, and publication of the
//!   routing snapshot into the [`ringlb_core::Directory`] the data plane reads.
//! - [`health`]: active `/heartbeat` checks, up/down transitions, respawn with back-off.
//! - [`api`]: the HTTP API (`/rep`, `/add`, `/rm`, `/healthz`, `/readyz`, `/metrics`, `/status`).
//! - [`runtime`]: how replicas run: child processes, Docker containers, or a fixed list.
//! - [`names`]: the hostname rule every name passes before a runtime sees it.
//!
//! The control plane never sits on the data path: it publishes snapshots, and the data plane
//! reads whichever one is current.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod health;
mod heartbeat;
pub mod manager;
pub mod names;
pub mod runtime;
mod status;

pub use api::{serve, ApiConfig};
pub use manager::{HealthConfig, Listing, Manager, ManagerConfig, RespawnConfig, RespawnName};

/// Why a control-plane request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request is wrong; the text says how (answered with 400).
    #[error("{0}")]
    BadRequest(String),
    /// The runtime could not carry it out (answered with 503); nothing was changed.
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
}

impl ControlError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        ControlError::BadRequest(msg.into())
    }
}
