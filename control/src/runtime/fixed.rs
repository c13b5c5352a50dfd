//! `--runtime static`: a fixed list of servers that ringlb fronts but does not manage.
//!
//! Ids are given in list order from 1. Health checks still take a dead server out of the ring
//! and bring it back, but nothing is started or stopped, and `/add` and `/rm` are refused.

use std::net::SocketAddr;

use async_trait::async_trait;

use super::{Found, ReplicaSpec, Runtime, RuntimeError};

/// The static runtime.
#[derive(Debug, Clone)]
pub struct FixedRuntime {
    servers: Vec<(String, SocketAddr)>,
}

impl FixedRuntime {
    /// Fronts `servers` (name, address), in this order.
    pub fn new(servers: Vec<(String, SocketAddr)>) -> Self {
        FixedRuntime { servers }
    }
}

#[async_trait]
impl Runtime for FixedRuntime {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn managed(&self) -> bool {
        false
    }

    async fn start(&self, _spec: &ReplicaSpec) -> Result<SocketAddr, RuntimeError> {
        Err(RuntimeError::Unsupported("static"))
    }

    async fn stop(&self, _name: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported("static"))
    }

    async fn existing(&self) -> Result<Vec<Found>, RuntimeError> {
        Ok(self
            .servers
            .iter()
            .enumerate()
            .map(|(k, (name, addr))| Found {
                name: name.clone(),
                id: k as u32 + 1,
                addr: *addr,
            })
            .collect())
    }

    async fn shutdown(&self, _keep: bool) {}
}
