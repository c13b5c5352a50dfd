//! A bounded load run: N requests at a concurrency, each carrying its own `rid`, with every
//! request's outcome and timing kept for the experiments (timelines, keys moved).
//!
//! A run is bounded twice: by its request count and by an optional time limit. Requests that the
//! limit stopped from starting are counted as `not_sent`, so that per-replica counts + failures +
//! not_sent always equal the requests planned.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::{self, Conn, ErrorKind, Outcome};
use crate::progress::{self, Counters, Reporter};

/// The assignment's request IDs: random 6-digit numbers.
pub const RID_RANGE: std::ops::RangeInclusive<u32> = 100_000..=999_999;

/// `n` random 6-digit request IDs from `seed` (the same seed gives the same IDs, which is how
/// A-4 sends one fixed set of keys before and after a membership change).
pub fn rids(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(RID_RANGE)).collect()
}

/// What to send and how.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The data port.
    pub target: SocketAddr,
    /// Request path; `?rid=<id>` (or `&rid=`) is appended per request.
    pub path: String,
    /// One request ID per request; its length is the request count.
    pub rids: Vec<u32>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Reuse connections (then only a connection's first `rid` picks the replica).
    pub keep_alive: bool,
    /// End-to-end limit of one request.
    pub timeout: Duration,
    /// Stop starting requests after this long.
    pub time_limit: Option<Duration>,
    /// Start at most this many requests per second (request i starts no earlier than i / rate
    /// after the run's start); `None`: as fast as the concurrency allows.
    pub rate: Option<f64>,
    /// Progress output.
    pub progress: progress::Mode,
    /// Label of the progress output.
    pub label: String,
}

impl Plan {
    /// A plan with the defaults of `loadtest run`: `/home`, one connection per request, 5 s
    /// timeout, no time limit, progress on.
    pub fn new(target: SocketAddr, rids: Vec<u32>, concurrency: usize) -> Plan {
        Plan {
            target,
            path: "/home".into(),
            rids,
            concurrency,
            keep_alive: false,
            timeout: Duration::from_secs(5),
            time_limit: None,
            rate: None,
            progress: progress::Mode::Auto,
            label: "run".into(),
        }
    }
}

/// One finished request.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// Its request ID.
    pub rid: u32,
    /// When it started, from the run's epoch.
    pub start: Duration,
    /// How long it took.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, 0 when no response came.
    pub status: u16,
}

/// Requests answered by one replica.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaCount {
    /// Server id from "Hello from Server: <id>".
    pub id: u32,
    /// Its name, when the control port told us.
    pub name: Option<String>,
    /// Requests it answered.
    pub requests: usize,
    /// Its fraction of the successful requests.
    pub share: f64,
}

/// Latency percentiles of the successful requests, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub target: String,
    pub path: String,
    pub requests: usize,
    pub concurrency: usize,
    pub keep_alive: bool,
    pub sent: usize,
    pub ok: usize,
    pub failed: usize,
    pub not_sent: usize,
    pub errors: BTreeMap<ErrorKind, usize>,
    /// Status codes of the `status` errors (503: no healthy replica, ...).
    pub error_statuses: BTreeMap<u16, usize>,
    pub per_replica: Vec<ReplicaCount>,
    pub elapsed_s: f64,
    pub throughput_rps: f64,
    pub latency_ms: Latency,
    pub time_limit_hit: bool,
    /// Every request, in completion order per worker (not serialized: 10000 lines of noise).
    #[serde(skip)]
    pub records: Vec<Record>,
}

/// Runs `plan` with request times measured from now.
pub async fn execute(plan: &Plan) -> Result<RunReport> {
    execute_from(plan, Instant::now()).await
}

/// Runs `plan`; record start times are measured from `epoch`, so a caller can line them up with
/// its own events (A-3 kills a replica during the run).
pub async fn execute_from(plan: &Plan, epoch: Instant) -> Result<RunReport> {
    let total = plan.rids.len();
    let counters = Counters::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = plan.time_limit.map(|d| started + d);
    let host = Arc::new(plan.target.to_string());
    let rids = Arc::new(plan.rids.clone());
    let reporter = Reporter::start(plan.progress, &plan.label, total, &counters);
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.clamp(1, total.max(1)) {
        let (next, rids, host, c) = (next.clone(), rids.clone(), host.clone(), counters.clone());
        let plan = plan.clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= rids.len() || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if let Some(rate) = plan.rate.filter(|r| *r > 0.0) {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let rid = rids[i];
                let sep = if plan.path.contains('?') { '&' } else { '?' };
                let path = format!("{}{sep}rid={rid}", plan.path);
                let t0 = Instant::now();
                let (outcome, status) = if plan.keep_alive {
                    keep_alive_get(&mut conn, &plan, &host, &path).await
                } else {
                    client::get_once(plan.target, &host, &path, plan.timeout).await
                };
                out.push(Record {
                    rid,
                    start: t0.saturating_duration_since(epoch),
                    latency: t0.elapsed(),
                    outcome,
                    status,
                });
                c.done.fetch_add(1, Ordering::Relaxed);
                if matches!(outcome, Outcome::Err(_)) {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            out
        });
    }
    let mut records = Vec::with_capacity(total);
    while let Some(r) = workers.join_next().await {
        records.extend(r?);
    }
    let elapsed = started.elapsed();
    reporter.finish();
    Ok(RunReport::from_records(plan, records, elapsed))
}

/// A request on the worker's kept-alive connection, opening a new one when there is none or the
/// old one was closed.
async fn keep_alive_get(
    conn: &mut Option<Conn>,
    plan: &Plan,
    host: &str,
    path: &str,
) -> (Outcome, u16) {
    let once = async {
        if !conn.as_ref().is_some_and(Conn::is_ready) {
            *conn = Some(Conn::open(plan.target).await?);
        }
        match conn.as_mut() {
            Some(c) => Ok(c.get(host, path, false).await),
            None => Err(ErrorKind::Connect),
        }
    };
    let reply = match tokio::time::timeout(plan.timeout, once).await {
        Ok(Ok(r)) => r,
        Ok(Err(kind)) => (Outcome::Err(kind), 0),
        Err(_) => (Outcome::Err(ErrorKind::Timeout), 0),
    };
    if matches!(reply.0, Outcome::Err(_)) {
        *conn = None;
    }
    reply
}

impl RunReport {
    fn from_records(plan: &Plan, records: Vec<Record>, elapsed: Duration) -> RunReport {
        let mut errors = BTreeMap::new();
        let mut error_statuses = BTreeMap::new();
        let mut by_id: BTreeMap<u32, usize> = BTreeMap::new();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        for r in &records {
            match r.outcome {
                Outcome::Ok(id) => {
                    *by_id.entry(id).or_default() += 1;
                    let _ = hist.record((r.latency.as_micros() as u64).max(1));
                }
                Outcome::Err(kind) => {
                    *errors.entry(kind).or_default() += 1;
                    if kind == ErrorKind::Status {
                        *error_statuses.entry(r.status).or_default() += 1;
                    }
                }
            }
        }
        let ok: usize = by_id.values().sum();
        let failed: usize = errors.values().sum();
        let per_replica = by_id
            .into_iter()
            .map(|(id, requests)| ReplicaCount {
                id,
                name: None,
                requests,
                share: requests as f64 / ok.max(1) as f64,
            })
            .collect();
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = if hist.is_empty() {
            Latency::default()
        } else {
            Latency {
                min: ms(hist.min()),
                mean: hist.mean() / 1000.0,
                p50: ms(hist.value_at_quantile(0.50)),
                p90: ms(hist.value_at_quantile(0.90)),
                p99: ms(hist.value_at_quantile(0.99)),
                p999: ms(hist.value_at_quantile(0.999)),
                max: ms(hist.max()),
            }
        };
        let sent = records.len();
        RunReport {
            target: plan.target.to_string(),
            path: plan.path.clone(),
            requests: plan.rids.len(),
            concurrency: plan.concurrency,
            keep_alive: plan.keep_alive,
            sent,
            ok,
            failed,
            not_sent: plan.rids.len() - sent,
            errors,
            error_statuses,
            per_replica,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_rps: sent as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms,
            time_limit_hit: sent < plan.rids.len(),
            records,
        }
    }

    /// Fills in replica names from an id → name map (the control port's `/replicas`).
    pub fn name_replicas(&mut self, names: &HashMap<u32, String>) {
        for r in &mut self.per_replica {
            r.name = names.get(&r.id).cloned();
        }
    }

    /// Requests answered per replica id.
    pub fn count_of(&self, id: u32) -> usize {
        self.per_replica
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.requests)
    }

    /// rid → replica id for every successful request (for keys-moved comparisons).
    pub fn placement(&self) -> HashMap<u32, u32> {
        self.records
            .iter()
            .filter_map(|r| match r.outcome {
                Outcome::Ok(id) => Some((r.rid, id)),
                Outcome::Err(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.keep_alive {
            "keep-alive connections"
        } else {
            "one connection per request"
        };
        writeln!(
            f,
            "target {}  path {}  {} requests, concurrency {}, {mode}",
            self.target, self.path, self.requests, self.concurrency
        )?;
        writeln!(
            f,
            "sent {}, ok {}, failed {}, not sent {}{}",
            self.sent,
            self.ok,
            self.failed,
            self.not_sent,
            if self.time_limit_hit {
                " (time limit reached)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "elapsed {:.2} s, {:.0} req/s",
            self.elapsed_s, self.throughput_rps
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "latency ms (ok): min {:.2}  mean {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.min, l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        writeln!(
            f,
            "{:<16} {:>4} {:>9} {:>8}",
            "replica", "id", "requests", "share"
        )?;
        for r in &self.per_replica {
            writeln!(
                f,
                "{:<16} {:>4} {:>9} {:>7.2}%",
                r.name.as_deref().unwrap_or("?"),
                r.id,
                r.requests,
                100.0 * r.share
            )?;
        }
        if self.errors.is_empty() {
            write!(f, "errors: none")
        } else {
            let parts: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let codes: Vec<String> = self
                .error_statuses
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            write!(f, "errors: {}", parts.join(", "))?;
            if !codes.is_empty() {
                write!(f, " (status codes {})", codes.join(", "))?;
            }
            Ok(())
        }
    }
}
