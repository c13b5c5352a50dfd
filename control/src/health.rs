//! Active health checks, state transitions and respawn of managed replicas.
//!
//! Every `interval` each replica gets a `GET /heartbeat` (rounds overlap when checks are slow).
//! `fall` failures in a row take it down,
//! `rise` successes bring it back; the data plane's connect failures take it down too
//! ([`ringlb_core::Health::connect_failed`]). A managed replica that is down is replaced:
//! at once when its runtime reports that it exited, after `respawn.after` when it merely hangs
//! (a paused replica that comes back in time keeps its place). Replacements that crash again soon
//! wait an exponentially growing back-off, capped, so a crash loop cannot spin.

use std::time::{Instant, SystemTime};

use ringlb_core::metrics as m;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::heartbeat;
use crate::manager::{Manager, Phase, RespawnName};
use crate::runtime::ReplicaSpec;

impl Manager {
    /// Runs health checks and respawns until `shutdown` is cancelled.
    pub async fn run_health(&self, shutdown: CancellationToken) {
        if let Some(mut exits) = self.inner.runtime.exits() {
            let this = self.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        name = exits.recv() => match name {
                            Some(name) => this.on_exit(&name),
                            None => break,
                        },
                    }
                }
            });
        }
        let mut tick = tokio::time::interval(self.inner.cfg.health.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Rounds overlap: a check that waits for its timeout does not delay the next
            // round, so a hung replica still falls after `fall` intervals, not `fall` timeouts.
            let this = self.clone();
            tokio::spawn(async move { this.check_round().await });
            self.respawn_due();
        }
    }

    /// The runtime says a replica exited: take it down now and replace it.
    fn on_exit(&self, name: &str) {
        let mut st = self.state();
        if let Some(r) = st.replicas.iter_mut().find(|r| r.name == name) {
            if r.phase == Phase::Respawning {
                return;
            }
            r.exited = true;
            r.health.set_up(false);
            note_transition(r, false);
        }
        drop(st);
        self.respawn_due();
    }

    /// One round of active checks, all replicas at once.
    async fn check_round(&self) {
        let targets: Vec<(String, std::net::SocketAddr)> = self
            .state()
            .replicas
            .iter()
            .filter(|r| r.phase == Phase::Running)
            .map(|r| (r.name.clone(), r.addr))
            .collect();
        let timeout = self.inner.cfg.health.timeout;
        let mut set = JoinSet::new();
        for (name, addr) in targets {
            set.spawn(async move { (name, heartbeat::verdict(addr, timeout).await) });
        }
        let mut results = Vec::new();
        while let Some(Ok((name, verdict))) = set.join_next().await {
            // No verdict (this host is out of descriptors): the replica's state stands.
            if let Some(ok) = verdict {
                results.push((name, ok));
            }
        }
        let (fall, rise) = (self.inner.cfg.health.fall, self.inner.cfg.health.rise);
        let mut st = self.state();
        for (name, ok) in results {
            let Some(r) = st.replicas.iter_mut().find(|r| r.name == name) else {
                continue;
            };
            if r.phase != Phase::Running {
                continue;
            }
            r.last_check = Some(SystemTime::now());
            r.last_check_ok = ok;
            // A passive check (connect failure) may have taken it down since the last round.
            if r.seen_up && !r.health.is_up() {
                note_transition(r, false);
            }
            if ok {
                r.ok_streak += 1;
                r.fail_streak = 0;
                if !r.health.is_up() && r.ok_streak >= rise {
                    r.health.set_up(true);
                    note_transition(r, true);
                }
            } else {
                r.fail_streak += 1;
                r.ok_streak = 0;
                if r.health.is_up() && r.fail_streak >= fall {
                    r.health.set_up(false);
                    note_transition(r, false);
                }
            }
            if r.health.is_up() && r.started_at.elapsed() >= self.inner.cfg.respawn.stable_after {
                r.backoff = std::time::Duration::ZERO;
            }
        }
    }

    /// Starts a respawn for every managed replica that is due one.
    fn respawn_due(&self) {
        if !self.inner.runtime.managed() {
            return;
        }
        let cfg = &self.inner.cfg.respawn;
        let now = Instant::now();
        let due: Vec<String> = {
            let mut st = self.state();
            st.replicas
                .iter_mut()
                .filter(|r| r.phase == Phase::Running && !r.health.is_up())
                .filter(|r| {
                    let hung_long = r.down_since.is_some_and(|t| now - t >= cfg.after);
                    (r.exited || hung_long) && now >= r.next_attempt
                })
                .map(|r| {
                    r.phase = Phase::Respawning;
                    r.name.clone()
                })
                .collect()
        };
        for name in due {
            let this = self.clone();
            tokio::spawn(async move { this.respawn(name).await });
        }
    }

    /// Replaces one replica: stop what is left of it, start a new one (same id; same name
    /// unless `--respawn-name random`), publish.
    async fn respawn(&self, name: String) {
        let _op = self.inner.ops.lock().await;
        let cfg = self.inner.cfg.respawn.clone();
        let Some((id, new_name)) = ({
            let st = self.state();
            st.replicas.iter().find(|r| r.name == name).map(|r| {
                let new_name = match cfg.name {
                    RespawnName::Same => r.name.clone(),
                    RespawnName::Random => random_name(
                        &self.inner.cfg.name_prefix,
                        &st.replicas.iter().map(|r| r.name.clone()).collect(),
                    ),
                };
                (r.id, new_name)
            })
        }) else {
            return; // removed by /rm meanwhile
        };
        let started = Instant::now();
        let _ = self.inner.runtime.stop(&name).await;
        let spec = ReplicaSpec {
            name: new_name.clone(),
            id,
        };
        let result = self.inner.runtime.start(&spec).await;
        let ready = match result {
            Ok(addr) => {
                if heartbeat::wait_ready(addr, cfg.ready_timeout, self.inner.cfg.health.timeout)
                    .await
                {
                    Ok(addr)
                } else {
                    let _ = self.inner.runtime.stop(&new_name).await;
                    Err("did not answer /heartbeat".to_string())
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let renamed = new_name != name;
        {
            let mut st = self.state();
            let Some(r) = st.replicas.iter_mut().find(|r| r.name == name) else {
                return;
            };
            r.phase = Phase::Running;
            // Each respawn that comes soon after the previous one doubles the wait.
            r.backoff = if r.backoff.is_zero() {
                cfg.backoff_min
            } else {
                (r.backoff * 2).min(cfg.backoff_max)
            };
            r.next_attempt = Instant::now() + r.backoff;
            match ready {
                Ok(addr) => {
                    r.addr = addr;
                    r.name = new_name.clone();
                    r.exited = false;
                    r.ok_streak = 0;
                    r.fail_streak = 0;
                    r.respawns += 1;
                    r.started_at = Instant::now();
                    r.health.set_up(true);
                    note_transition(r, true);
                    ::metrics::counter!(m::RESPAWNS, "replica" => new_name.clone()).increment(1);
                    tracing::info!(replica = %name, new_name = %new_name, %addr,
                        took_ms = started.elapsed().as_millis() as u64, "replica respawned");
                }
                Err(e) => {
                    r.exited = true;
                    tracing::warn!(replica = %name, error = %e,
                        retry_in_ms = r.backoff.as_millis() as u64, "respawn failed");
                }
            }
        }
        if renamed {
            ::metrics::gauge!(m::REPLICA_UP, "replica" => name.clone()).set(0.0);
        }
        self.publish();
    }
}

/// Records a state change: the time, the metric and one log line.
fn note_transition(r: &mut crate::manager::Replica, up: bool) {
    if r.seen_up == up {
        return;
    }
    r.seen_up = up;
    r.last_transition = Some(SystemTime::now());
    r.down_since = if up { None } else { Some(Instant::now()) };
    let to = if up { "up" } else { "down" };
    ::metrics::counter!(m::TRANSITIONS, "replica" => r.name.clone(), "to" => to).increment(1);
    ::metrics::gauge!(m::REPLICA_UP, "replica" => r.name.clone()).set(if up { 1.0 } else { 0.0 });
    if up {
        tracing::info!(replica = %r.name, "replica is up");
    } else {
        tracing::warn!(replica = %r.name, "replica is down");
    }
}

fn random_name(prefix: &str, taken: &std::collections::HashSet<String>) -> String {
    loop {
        let name = format!("{prefix}{:06x}", rand::random::<u32>() & 0xff_ffff);
        if !taken.contains(&name) {
            return name;
        }
    }
}
