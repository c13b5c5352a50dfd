//! The assignment's experiments, each against a running ringlb reached through its data and
//! control ports:
//!
//! - [`a1`]: 10000 requests on N = 3, requests per replica (bar chart).
//! - [`a2`]: N = 2..6 through `/add` and `/rm`, 10000 requests each, load per replica (lines).
//! - [`a3`]: every endpoint checked ([`checks`]), then a replica killed, and one hung, under
//!   load ([`fault`]): detection, replacement and first success timed (timelines).
//! - [`a4`]: again for every hash family, each on a ringlb of its own, plus the keys
//!   that move when N goes 3 → 4 → 3, measured live.
//!
//! Each experiment measures first and writes its chart, table and `results.json` entry after, so
//! A-4 can reuse A-1's and A-2's measurements without their files.

pub mod a1;
pub mod a2;
pub mod a3;
pub mod a4;
pub mod checks;
pub mod comparison;
pub mod fault;
pub mod structure;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::control::{Control, Replica};
use crate::progress;
use crate::report::Out;
use crate::run::{self, Plan, RunReport};

/// The longest wait for room in the conntrack table: a little over the 120 s an entry lingers.
pub const ROOM_WAIT: Duration = Duration::from_secs(150);

/// How a replica is killed in A-3, which follows from where replicas run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Killer {
    /// `kill -9 <pid>` with the pid from `/replicas`.
    Process,
    /// `docker kill <name>`.
    Docker,
}

/// What every experiment needs.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The data port.
    pub target: SocketAddr,
    /// The control port.
    pub control: Control,
    /// Where results go.
    pub out: Out,
    /// Requests per measurement (the assignment's 10000).
    pub requests: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Seed of the request IDs; each measurement derives its own from it and its label.
    pub seed: u64,
    /// Progress output.
    pub progress: progress::Mode,
    /// How A-3 kills a replica.
    pub killer: Killer,
    /// A name for the runtime in reports ("process", "docker").
    pub runtime: String,
    /// Prefix of every file written (e.g. `docker-` for the Docker runtime's results).
    pub prefix: String,
    /// Requests per second of the measurements (`None`: as fast as the concurrency allows).
    pub rate: Option<f64>,
    /// Requests per second of A-3's fault runs, which run for seconds.
    pub fault_rate: f64,
}

impl Ctx {
    /// The file name `name` with this context's prefix.
    pub fn file(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Sends `requests` random request IDs (seeded from `label`) and names the replicas.
    pub async fn measure(&self, label: &str) -> Result<RunReport> {
        self.measure_rids(label, run::rids(self.requests, seed_for(self.seed, label)))
            .await
    }

    /// Sends exactly these request IDs.
    pub async fn measure_rids(&self, label: &str, rids: Vec<u32>) -> Result<RunReport> {
        crate::conntrack::wait_for_room(crate::conntrack::needed(rids.len()), ROOM_WAIT).await;
        let mut plan = Plan::new(self.target, rids, self.concurrency);
        plan.rate = self.rate;
        plan.progress = self.progress;
        plan.label = label.to_owned();
        plan.time_limit = Some(Duration::from_secs(300));
        let mut report = run::execute(&plan).await?;
        report.name_replicas(&self.control.names().await?);
        Ok(report)
    }
}

/// Requests served by one replica, zeros included.
#[derive(Clone, Debug, Serialize)]
pub struct Served {
    pub name: String,
    pub id: u32,
    pub requests: usize,
    /// Key-space share ringlb reports for it (`/replicas`).
    pub ring_share: f64,
}

/// Joins a run's counts with the replica list, so replicas that got nothing appear as 0, in id
/// order. Answers from ids no longer listed are kept under `id-<n>`.
pub fn served(report: &RunReport, replicas: &[Replica]) -> Vec<Served> {
    let mut out: Vec<Served> = replicas
        .iter()
        .map(|r| Served {
            name: r.name.clone(),
            id: r.id,
            requests: report.count_of(r.id),
            ring_share: r.share,
        })
        .collect();
    let listed: HashMap<u32, ()> = replicas.iter().map(|r| (r.id, ())).collect();
    for c in &report.per_replica {
        if !listed.contains_key(&c.id) {
            out.push(Served {
                name: format!("id-{}", c.id),
                id: c.id,
                requests: c.requests,
                ring_share: 0.0,
            });
        }
    }
    out.sort_by_key(|s| s.id);
    out
}

/// A run's summary without its per-request records, for `results.json`.
pub fn summary(report: &RunReport) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_default()
}

/// A per-measurement seed: the run's seed mixed with the label (FNV-1a), so that A-2's N = 4
/// and N = 5 draw different IDs while a rerun with the same `--seed` draws the same.
pub fn seed_for(seed: u64, label: &str) -> u64 {
    label.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
