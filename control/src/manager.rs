//! The replica manager: membership, server ids, all-or-nothing `/add` and `/rm`, and publication
//! of the routing snapshot.
//!
//! Every mutation (an API call or a respawn) runs under one async lock, so two calls never
//! interleave: each is validated against the state it will change, then carried out in full or
//! rolled back. The state itself sits behind a plain mutex that is held only for short,
//! non-async sections, so listings and health checks never wait for a slow runtime call.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::seq::IndexedRandom;
use ringlb_core::{metrics as m, Backend, Directory, Health, Member, Ring, RingConfig, Routes};
use tokio::task::JoinSet;

use crate::heartbeat;
use crate::runtime::{ReplicaSpec, Runtime, RuntimeError};
use crate::{names, ControlError};

/// Health-check settings (HAProxy's vocabulary).
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// Time between two active checks of a replica.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Failed checks in a row that take a replica down.
    pub fall: u32,
    /// Passed checks in a row that bring it back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_millis(500),
            // Overlapping rounds keep detection of a hung replica at about `fall` × `interval`
            // plus one timeout: 1.5 s with these defaults.
            timeout: Duration::from_millis(500),
            fall: 2,
            rise: 2,
        }
    }
}

/// What a respawned replica is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RespawnName {
    /// The same name, so its keys come back to it (default).
    #[default]
    Same,
    /// A fresh random name, as the assignment describes.
    Random,
}

/// Respawn settings for managed runtimes.
#[derive(Clone, Debug)]
pub struct RespawnConfig {
    /// Naming of the replacement.
    pub name: RespawnName,
    /// A replica that is down but has not exited (hung, paused) is replaced after this long.
    pub after: Duration,
    /// Back-off after the first quick respawn; doubles for each crash in a row.
    pub backoff_min: Duration,
    /// Cap of the back-off.
    pub backoff_max: Duration,
    /// A replica that stays up this long has stopped crash-looping: its back-off resets.
    pub stable_after: Duration,
    /// How long a started replica may take to answer its first heartbeat.
    pub ready_timeout: Duration,
}

impl Default for RespawnConfig {
    fn default() -> Self {
        RespawnConfig {
            name: RespawnName::Same,
            after: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

/// Manager settings.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// How the ring is built.
    pub ring: RingConfig,
    /// Replicas a managed runtime starts with.
    pub replicas: usize,
    /// Most replicas ringlb runs at once (also bounded by the ring's own capacity).
    pub max_replicas: usize,
    /// Health checks.
    pub health: HealthConfig,
    /// Respawn policy.
    pub respawn: RespawnConfig,
    /// Generated names are `<prefix><id>` (`Server-1`, …).
    pub name_prefix: String,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            ring: RingConfig::default(),
            replicas: 3,
            max_replicas: 64,
            health: HealthConfig::default(),
            respawn: RespawnConfig::default(),
            name_prefix: "Server-".into(),
        }
    }
}

/// Where a replica is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Serving or checked: its `Health` says whether it is up.
    Running,
    /// Being replaced.
    Respawning,
}

/// One replica as the manager tracks it.
#[derive(Debug)]
pub(crate) struct Replica {
    pub name: String,
    pub id: u32,
    pub addr: SocketAddr,
    pub health: Arc<Health>,
    pub phase: Phase,
    pub ok_streak: u32,
    pub fail_streak: u32,
    /// What the health loop last saw, to notice transitions made by passive checks too.
    pub seen_up: bool,
    pub down_since: Option<Instant>,
    /// The runtime said the replica exited: no need to wait before replacing it.
    pub exited: bool,
    pub last_check: Option<SystemTime>,
    pub last_check_ok: bool,
    pub last_transition: Option<SystemTime>,
    pub started_at: Instant,
    pub respawns: u32,
    pub backoff: Duration,
    pub next_attempt: Instant,
}

impl Replica {
    fn new(name: String, id: u32, addr: SocketAddr, health: Arc<Health>) -> Replica {
        health.set_up(true);
        Replica {
            name,
            id,
            addr,
            health,
            phase: Phase::Running,
            ok_streak: 0,
            fail_streak: 0,
            seen_up: true,
            down_since: None,
            exited: false,
            last_check: None,
            last_check_ok: true,
            last_transition: None,
            started_at: Instant::now(),
            respawns: 0,
            backoff: Duration::ZERO,
            next_attempt: Instant::now(),
        }
    }
}

pub(crate) struct State {
    pub replicas: Vec<Replica>,
    ring: Arc<Ring>,
    generation: u64,
}

pub(crate) struct Inner {
    pub cfg: ManagerConfig,
    pub runtime: Arc<dyn Runtime>,
    pub directory: Arc<Directory>,
    pub ops: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// The replica manager; cheap to clone.
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<Inner>,
}

/// `{"N": …, "replicas": […]}`: the assignment's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Replica names, in the order they were added.
    pub replicas: Vec<String>,
}

impl Manager {
    /// A manager with no replicas yet, publishing into `directory`.
    pub fn new(cfg: ManagerConfig, runtime: Arc<dyn Runtime>, directory: Arc<Directory>) -> Self {
        let ring =
            Arc::new(Ring::build(&cfg.ring, Vec::new()).expect("an empty ring always builds"));
        Manager {
            inner: Arc::new(Inner {
                cfg,
                runtime,
                directory,
                ops: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    replicas: Vec::new(),
                    ring,
                    generation: 0,
                }),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.cfg
    }

    /// The runtime's kind (`process`, `docker`, `static`).
    pub fn runtime_kind(&self) -> &'static str {
        self.inner.runtime.kind()
    }

    /// Brings the pool up: adopts what the runtime already runs, then starts replicas until
    /// there are `cfg.replicas` (managed runtimes).
    pub async fn bootstrap(&self) -> Result<Listing, ControlError> {
        let _op = self.inner.ops.lock().await;
        let found = self.inner.runtime.existing().await?;
        {
            let mut st = self.state();
            for f in found {
                if st.replicas.iter().any(|r| r.name == f.name || r.id == f.id) {
                    continue;
                }
                tracing::info!(replica = %f.name, id = f.id, addr = %f.addr, "adopted replica");
                let health = Arc::new(Health::new(true));
                st.replicas.push(Replica::new(f.name, f.id, f.addr, health));
            }
        }
        // Adopted replicas are checked by the health loop like any other: a dead one falls.
        let missing = if self.inner.runtime.managed() {
            self.inner
                .cfg
                .replicas
                .saturating_sub(self.state().replicas.len())
        } else {
            0
        };
        if missing > 0 {
            self.add_locked(missing, &[]).await?;
        } else {
            self.publish();
        }
        Ok(self.listing())
    }

    /// The assignment's listing.
    pub fn listing(&self) -> Listing {
        Listing {
            replicas: self
                .state()
                .replicas
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        }
    }

    /// Most replicas that may run at once.
    pub fn capacity(&self) -> usize {
        let ring = Ring::capacity(&self.inner.cfg.ring).unwrap_or(usize::MAX);
        ring.min(self.inner.cfg.max_replicas)
    }

    /// `/add`: starts `n` replicas, named by `hostnames` first, the rest generated.
    /// All or nothing: on any failure the replicas already started are removed again.
    pub async fn add(&self, n: i64, hostnames: &[String]) -> Result<Listing, ControlError> {
        if n <= 0 {
            return Err(ControlError::bad(format!(
                "n must be a positive integer, got {n}"
            )));
        }
        if hostnames.len() as i64 > n {
            return Err(ControlError::bad(
                "Length of hostname list is more than newly added instances",
            ));
        }
        check_names(hostnames)?;
        if !self.inner.runtime.managed() {
            return Err(ControlError::bad(format!(
                "the {} runtime does not start replicas",
                self.inner.runtime.kind()
            )));
        }
        let _op = self.inner.ops.lock().await;
        let cap = self.capacity();
        let now = self.state().replicas.len();
        if (now as i64).saturating_add(n) > cap as i64 {
            return Err(ControlError::bad(format!(
                "Cannot add {n} replicas: {now} run and at most {cap} fit"
            )));
        }
        self.add_locked(n as usize, hostnames).await
    }

    async fn add_locked(&self, n: usize, hostnames: &[String]) -> Result<Listing, ControlError> {
        let specs = {
            let st = self.state();
            if let Some(dup) = hostnames
                .iter()
                .find(|h| st.replicas.iter().any(|r| &r.name == *h))
            {
                return Err(ControlError::bad(format!(
                    "Hostname '{dup}' already exists"
                )));
            }
            let mut taken_ids: HashSet<u32> = st.replicas.iter().map(|r| r.id).collect();
            let mut taken_names: HashSet<String> =
                st.replicas.iter().map(|r| r.name.clone()).collect();
            taken_names.extend(hostnames.iter().cloned());
            let mut specs = Vec::with_capacity(n);
            for k in 0..n {
                let id = (1..).find(|i| !taken_ids.contains(i)).unwrap_or(u32::MAX);
                taken_ids.insert(id);
                let name = match hostnames.get(k) {
                    Some(h) => h.clone(),
                    None => generated_name(&self.inner.cfg.name_prefix, id, &taken_names),
                };
                taken_names.insert(name.clone());
                specs.push(ReplicaSpec { name, id });
            }
            specs
        };
        let started = self.start_all(&specs).await?;
        {
            let mut st = self.state();
            for (spec, addr) in started {
                tracing::info!(replica = %spec.name, id = spec.id, %addr, "replica added");
                st.replicas.push(Replica::new(
                    spec.name,
                    spec.id,
                    addr,
                    Arc::new(Health::new(true)),
                ));
            }
        }
        self.publish();
        Ok(self.listing())
    }

    /// Starts every spec concurrently and confirms each with a heartbeat; if any fails, stops
    /// those that did start and reports the first error.
    async fn start_all(
        &self,
        specs: &[ReplicaSpec],
    ) -> Result<Vec<(ReplicaSpec, SocketAddr)>, ControlError> {
        let mut set = JoinSet::new();
        for spec in specs.iter().cloned() {
            let this = self.clone();
            set.spawn(async move {
                let r = this.start_one(&spec).await;
                (spec, r)
            });
        }
        let mut ok = Vec::new();
        let mut err = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((spec, Ok(addr))) => ok.push((spec, addr)),
                Ok((spec, Err(e))) => {
                    tracing::warn!(replica = %spec.name, error = %e, "replica failed to start");
                    err.get_or_insert(e);
                }
                Err(e) => {
                    err.get_or_insert(RuntimeError::Failed(format!("start task failed: {e}")));
                }
            }
        }
        if let Some(e) = err {
            let names: Vec<String> = ok.into_iter().map(|(s, _)| s.name).collect();
            self.stop_all(&names).await;
            return Err(ControlError::Runtime(e));
        }
        // Keep the order of the request.
        ok.sort_by_key(|(s, _)| specs.iter().position(|x| x.name == s.name));
        Ok(ok)
    }

    async fn start_one(&self, spec: &ReplicaSpec) -> Result<SocketAddr, RuntimeError> {
        let addr = self.inner.runtime.start(spec).await?;
        let cfg = &self.inner.cfg;
        if heartbeat::wait_ready(addr, cfg.respawn.ready_timeout, cfg.health.timeout).await {
            Ok(addr)
        } else {
            let _ = self.inner.runtime.stop(&spec.name).await;
            Err(RuntimeError::Failed(format!(
                "replica {} started but did not answer /heartbeat within {:?}",
                spec.name, cfg.respawn.ready_timeout
            )))
        }
    }

    async fn stop_all(&self, names: &[String]) {
        let mut set = JoinSet::new();
        for name in names {
            let name = name.clone();
            let rt = self.inner.runtime.clone();
            set.spawn(async move {
                if let Err(e) = rt.stop(&name).await {
                    tracing::warn!(replica = %name, error = %e, "could not stop replica");
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// `/rm`: removes `n` replicas, those named first, the rest chosen at random.
    pub async fn remove(&self, n: i64, hostnames: &[String]) -> Result<Listing, ControlError> {
        if n <= 0 {
            return Err(ControlError::bad(format!(
                "n must be a positive integer, got {n}"
            )));
        }
        if hostnames.len() as i64 > n {
            return Err(ControlError::bad(
                "Length of hostname list is more than removable instances",
            ));
        }
        check_names(hostnames)?;
        if !self.inner.runtime.managed() {
            return Err(ControlError::bad(format!(
                "the {} runtime does not stop replicas",
                self.inner.runtime.kind()
            )));
        }
        let _op = self.inner.ops.lock().await;
        let victims: Vec<String> = {
            let st = self.state();
            let have = st.replicas.len();
            if n as u64 > have as u64 {
                return Err(ControlError::bad(format!(
                    "Cannot remove {n} replicas: only {have} exist"
                )));
            }
            if let Some(unknown) = hostnames
                .iter()
                .find(|h| !st.replicas.iter().any(|r| &r.name == *h))
            {
                return Err(ControlError::bad(format!(
                    "Hostname '{unknown}' is not a replica"
                )));
            }
            let rest: Vec<&String> = st
                .replicas
                .iter()
                .map(|r| &r.name)
                .filter(|name| !hostnames.contains(name))
                .collect();
            let extra = n as usize - hostnames.len();
            let mut victims = hostnames.to_vec();
            victims.extend(
                rest.choose_multiple(&mut rand::rng(), extra)
                    .map(|s| (*s).clone()),
            );
            victims
        };
        // Out of the ring first, so no new connection goes there, then stop them.
        {
            let mut st = self.state();
            st.replicas.retain(|r| !victims.contains(&r.name));
        }
        self.publish();
        for v in &victims {
            tracing::info!(replica = %v, "replica removed");
            ::metrics::gauge!(m::REPLICA_UP, "replica" => v.clone()).set(0.0);
            ::metrics::gauge!(m::RING_SHARE, "replica" => v.clone()).set(0.0);
        }
        self.stop_all(&victims).await;
        Ok(self.listing())
    }

    /// Builds and publishes the routing snapshot; the ring is rebuilt only when the membership
    /// changed.
    pub(crate) fn publish(&self) {
        let mut st = self.state();
        let members: Vec<Member> = st
            .replicas
            .iter()
            .map(|r| Member {
                name: r.name.clone(),
                id: r.id,
            })
            .collect();
        let mut sorted = members.clone();
        sorted.sort();
        if st.ring.members() != sorted.as_slice() {
            match Ring::build(&self.inner.cfg.ring, members) {
                Ok(ring) => {
                    st.ring = Arc::new(ring);
                    ::metrics::counter!(m::RING_REBUILDS).increment(1);
                    for (member, share) in st.ring.members().iter().zip(st.ring.shares()) {
                        ::metrics::gauge!(m::RING_SHARE, "replica" => member.name.clone())
                            .set(share);
                    }
                }
                Err(e) => {
                    // Capacity is checked before any change, so this is a bug, not input.
                    tracing::error!(error = %e, "ring rebuild failed; keeping the previous ring");
                    return;
                }
            }
        }
        let backends = st
            .ring
            .members()
            .iter()
            .map(|member| {
                let r = st.replicas.iter().find(|r| r.name == member.name);
                Arc::new(Backend {
                    name: member.name.clone(),
                    id: member.id,
                    addr: r
                        .map(|r| r.addr)
                        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                    health: r
                        .map(|r| r.health.clone())
                        .unwrap_or_else(|| Arc::new(Health::new(false))),
                    metrics: m::ReplicaMetrics::new(&member.name),
                })
            })
            .collect();
        st.generation += 1;
        self.inner.directory.publish(Routes {
            ring: st.ring.clone(),
            backends,
            generation: st.generation,
        });
    }

    /// Stops every replica (unless `keep`) when ringlb exits.
    pub async fn shutdown(&self, keep: bool) {
        self.inner.runtime.shutdown(keep).await;
    }
}

fn check_names(hostnames: &[String]) -> Result<(), ControlError> {
    let mut seen = HashSet::new();
    for h in hostnames {
        names::check(h).map_err(ControlError::bad)?;
        if !seen.insert(h) {
            return Err(ControlError::bad(format!(
                "Hostname '{h}' appears twice in the list"
            )));
        }
    }
    Ok(())
}

/// A name for a replica the caller did not name: `<prefix><id>` (`Server-3`), or with a random
/// suffix when that name is taken.
pub(crate) fn generated_name(prefix: &str, id: u32, taken: &HashSet<String>) -> String {
    let plain = format!("{prefix}{id}");
    if !taken.contains(&plain) {
        return plain;
    }
    loop {
        let name = format!("{prefix}{id}-{:04x}", rand::random::<u16>());
        if !taken.contains(&name) {
            return name;
        }
    }
}
