//! Replica runtimes: how replicas are started, found again and stopped.
//!
//! - [`process`]: child processes on loopback ports (the default; no Docker needed).
//! - [`docker`]: containers driven through the `docker` CLI.
//! - [`fixed`]: a fixed list of servers that ringlb does not manage (`--runtime static`).
//!
//! The [`crate::Manager`] is the only caller. It validates every name before a runtime sees it,
//! and serialises mutations, so a runtime never has to defend against bad input or races.

use std::net::SocketAddr;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub mod docker;
pub mod fixed;
pub mod process;

/// What to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// Stable name; also the container name and network alias under Docker.
    pub name: String,
    /// Server id, passed to the replica as `SERVER_ID`.
    pub id: u32,
}

/// A replica that a runtime found already running (adoption after a restart, or a static server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its name.
    pub name: String,
    /// Its server id.
    pub id: u32,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Why a runtime call failed. Messages tell the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime itself cannot be reached (no docker CLI, engine down).
    #[error("replica runtime unavailable: {0}")]
    Unavailable(String),
    /// The replica image is not there.
    #[error("image {image} not found: run `make images` first")]
    ImageMissing {
        /// The image reference.
        image: String,
    },
    /// A call took longer than allowed.
    #[error("{0} timed out")]
    Timeout(String),
    /// The replica could not be started or stopped.
    #[error("{0}")]
    Failed(String),
    /// This runtime does not start or stop replicas.
    #[error("the {0} runtime does not start or stop replicas")]
    Unsupported(&'static str),
}

/// A replica runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `process`, `docker` or `static`.
    fn kind(&self) -> &'static str;

    /// Whether ringlb starts and stops the replicas (false for `static`).
    fn managed(&self) -> bool {
        true
    }

    /// Starts a replica and returns the address it serves on once it is accepting connections
    /// (or about to: the health checker confirms).
    async fn start(&self, spec: &ReplicaSpec) -> Result<SocketAddr, RuntimeError>;

    /// Stops and removes a replica. Removing one that is already gone is not an error.
    async fn stop(&self, name: &str) -> Result<(), RuntimeError>;

    /// Replicas that already run and belong to this ringlb (adopted at start), or the fixed list.
    async fn existing(&self) -> Result<Vec<Found>, RuntimeError>;

    /// Names of replicas that exited, as soon as the runtime learns of it (child exit, `docker
    /// events`). Taken once by the manager; `None` if the runtime cannot tell (health checks will).
    fn exits(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        None
    }

    /// The operating-system process id of a replica, where the runtime knows it (process
    /// runtime), so operators and experiments can signal it directly.
    fn pid(&self, _name: &str) -> Option<u32> {
        None
    }

    /// Called once when ringlb stops: remove every replica this runtime runs, unless `keep`.
    async fn shutdown(&self, keep: bool);
}
