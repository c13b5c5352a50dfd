//! The routing snapshot: what the data plane reads for every connection.
//!
//! A [`Routes`] value pairs an immutable [`Ring`] with the replicas placed on it (their current
//! address and their shared [`Health`]). The control plane builds a new `Routes` whenever the
//! membership or an address changes and publishes it through [`Directory::publish`]; the data
//! plane calls [`Directory::load`], which is one atomic load, and never waits on the control plane.
//!
//! Health is not part of the ring: a replica that goes down keeps its place, and the data plane
//! walks past it to the next replica on the ring. Only the keys it owned move, and they come back
//! when it is up again (or when a respawned replica with the same name takes its place).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::metrics::ReplicaMetrics;
use crate::ring::{Key, Ring, RingConfig};

/// Live health and counters of one replica, shared by the data plane, the health checker and
/// the status page. Outlives address changes: a respawned replica keeps its `Health`.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    connect_failures: AtomicU32,
    /// Connections currently spliced to this replica.
    pub active: AtomicU64,
    /// Connections routed to this replica since ringlb started.
    pub total: AtomicU64,
    /// Bytes from clients to this replica.
    pub bytes_to_replica: AtomicU64,
    /// Bytes from this replica to clients.
    pub bytes_to_client: AtomicU64,
}

impl Health {
    /// A replica starts up: it is only published once its runtime reported it started.
    pub fn new(up: bool) -> Self {
        Health {
            up: AtomicBool::new(up),
            connect_failures: AtomicU32::new(0),
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            bytes_to_replica: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
        }
    }

    /// Whether new connections may be sent here.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Sets the state; returns the previous one.
    pub fn set_up(&self, up: bool) -> bool {
        if up {
            self.connect_failures.store(0, Ordering::Relaxed);
        }
        self.up.swap(up, Ordering::AcqRel)
    }

    /// Passive check: the data plane could not connect. After `fall` failures in a row the
    /// replica is marked down at once, without waiting for the next active check.
    /// Returns true when this call took it down.
    pub fn connect_failed(&self, fall: u32) -> bool {
        let n = self.connect_failures.fetch_add(1, Ordering::AcqRel) + 1;
        n >= fall.max(1) && self.up.swap(false, Ordering::AcqRel)
    }

    /// Passive check: a connect succeeded, so the failure streak ends.
    pub fn connect_succeeded(&self) {
        if self.connect_failures.load(Ordering::Relaxed) != 0 {
            self.connect_failures.store(0, Ordering::Relaxed);
        }
    }
}

/// One replica on the ring, as the data plane sees it.
#[derive(Debug)]
pub struct Backend {
    /// Stable name (`Server-1`).
    pub name: String,
    /// Server id (the `i` of `Hello from Server: i`).
    pub id: u32,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Shared health and counters.
    pub health: Arc<Health>,
    /// Metric handles labelled with this replica's name.
    pub metrics: ReplicaMetrics,
}

/// An immutable routing snapshot: a ring and its backends, `backends[k]` being `ring.members()[k]`.
#[derive(Debug)]
pub struct Routes {
    /// The ring.
    pub ring: Arc<Ring>,
    /// Backends in ring member order.
    pub backends: Vec<Arc<Backend>>,
    /// Increases with every publication.
    pub generation: u64,
}

impl Routes {
    /// A snapshot with no replicas: every lookup gives nothing.
    pub fn empty(cfg: &RingConfig) -> Routes {
        Routes {
            ring: Arc::new(Ring::build(cfg, Vec::new()).expect("an empty ring always builds")),
            backends: Vec::new(),
            generation: 0,
        }
    }

    /// Healthy backends for `key`, in ring order: the owner first, then the next distinct
    /// replicas. Replicas that are down are skipped, so only their keys move.
    pub fn candidates<'a>(&'a self, key: Key<'a>) -> impl Iterator<Item = &'a Arc<Backend>> + 'a {
        self.ring
            .walk(key)
            .filter_map(move |k| self.backends.get(k))
            .filter(|b| b.health.is_up())
    }

    /// Whether at least one replica is up.
    pub fn any_up(&self) -> bool {
        self.backends.iter().any(|b| b.health.is_up())
    }

    /// The backend with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// Where the current [`Routes`] is published.
#[derive(Debug)]
pub struct Directory {
    current: ArcSwap<Routes>,
}

impl Directory {
    /// A directory holding `routes`.
    pub fn new(routes: Routes) -> Self {
        Directory {
            current: ArcSwap::from_pointee(routes),
        }
    }

    /// The current snapshot (an atomic load; never blocks).
    pub fn load(&self) -> Arc<Routes> {
        self.current.load_full()
    }

    /// Publishes a new snapshot.
    pub fn publish(&self, routes: Routes) {
        self.current.store(Arc::new(routes));
    }
}
