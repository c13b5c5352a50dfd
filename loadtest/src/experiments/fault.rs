//! One replica failure injected under load, and what followed, measured from outside.
//!
//! While a load run is going, the replica with the smallest id is either killed (`kill -9 <pid>`,
//! `docker kill`) or hung (`kill -STOP <pid>`, `docker pause`), and `/replicas` is polled every few
//! milliseconds. From the polls and the requests' own outcomes come: when ringlb noticed
//! (detection), when the replacement was up, when a request was first answered by that replica id
//! again, and how many requests failed in between. A kill is noticed when the process exits; a
//! hang only through failed health checks, and it is replaced only after `--respawn-after`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{seed_for, summary, Ctx, Killer};
use crate::client::{ErrorKind, Outcome};
use crate::control::Replica;
use crate::run::{self, Plan, Record};

/// What is done to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// It dies at once (SIGKILL / `docker kill`).
    Kill,
    /// It stops answering but its socket stays open (SIGSTOP / `docker pause`).
    Hang,
}

/// Timing of one fault run.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Length of the load run.
    pub duration: Duration,
    /// When, into the run, the fault is injected.
    pub inject_at: Duration,
    /// Interval of `/replicas` polls.
    pub poll: Duration,
    /// Per-request time limit (a hung replica's requests end here).
    pub timeout: Duration,
}

/// One observation of the victim in `/replicas`.
#[derive(Clone, Debug, Serialize)]
pub struct Poll {
    /// When the answer arrived, ms from the run's start.
    pub t_ms: f64,
    pub state: String,
    pub respawns: u32,
    pub pid: Option<u32>,
    /// ringlb's time of the victim's last state change, Unix seconds.
    pub last_transition: Option<f64>,
}

/// What one fault run measured. Times are ms from the start of the load run.
#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    pub fault: Fault,
    /// The command that injected it.
    pub how: String,
    pub victim: String,
    pub victim_id: u32,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    pub injected_ms: f64,
    pub inject_returned_ms: f64,
    /// First poll that showed the victim down, respawning or replaced.
    pub detected_ms: Option<f64>,
    /// ringlb's own time of the victim's down transition, when a poll caught it while down.
    pub down_by_ringlb_clock_ms: Option<f64>,
    /// First poll that showed the replacement up.
    pub replaced_ms: Option<f64>,
    /// ringlb's own time of the replacement's up transition (`last_transition`): finer than
    /// the polls.
    pub replaced_by_ringlb_clock_ms: Option<f64>,
    /// Start of the first request after the fault that the victim's id answered.
    pub first_success_ms: Option<f64>,
    /// Requests that failed among those still running at the fault or started between the fault
    /// and the first success.
    pub failed_in_window: usize,
    pub errors_in_window: BTreeMap<ErrorKind, usize>,
    /// Mean interval between polls as they happened (they slow down under load).
    pub poll_interval_ms: f64,
    pub polls: usize,
    pub run: serde_json::Value,
    /// Every request (start ms, latency ms, victim?, ok?), for the timelines.
    #[serde(skip)]
    pub records: Vec<Record>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs load, injects `fault` into the replica with the smallest id, and measures.
pub async fn run(ctx: &Ctx, fault: Fault, t: &Timing) -> Result<Recovery> {
    let replicas = ctx.control.replicas().await?;
    let Some(victim) = replicas.iter().min_by_key(|r| r.id).cloned() else {
        bail!("ringlb has no replica to fail");
    };
    if ctx.killer == Killer::Process && victim.pid.is_none() {
        bail!(
            "/replicas gives no pid for {} (not the process runtime? pass --runtime docker)",
            victim.name
        );
    }
    let label = format!("A-3 {fault:?}").to_lowercase();
    let expected = (t.duration.as_secs_f64() * ctx.fault_rate) as usize;
    crate::conntrack::wait_for_room(crate::conntrack::needed(expected), super::ROOM_WAIT).await;
    let epoch = Instant::now();
    // More IDs than the run can send at any throughput this machine reaches; the time limit ends it.
    let count = (t.duration.as_secs_f64() * 40_000.0) as usize;
    let mut plan = Plan::new(
        ctx.target,
        run::rids(count, seed_for(ctx.seed, &label)),
        ctx.concurrency,
    );
    plan.time_limit = Some(t.duration);
    plan.rate = Some(ctx.fault_rate);
    plan.progress = ctx.progress;
    plan.label = label;
    plan.timeout = t.timeout;
    let load = tokio::spawn(async move { run::execute_from(&plan, epoch).await });

    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (control, stop, id, every) = (ctx.control.clone(), stop.clone(), victim.id, t.poll);
        tokio::spawn(async move {
            let mut polls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = control.replicas().await {
                    if let Some(r) = list.into_iter().find(|r| r.id == id) {
                        polls.push(Poll {
                            t_ms: ms(epoch.elapsed()),
                            state: r.state,
                            respawns: r.respawns,
                            pid: r.pid,
                            last_transition: r.last_transition,
                        });
                    }
                }
                tokio::time::sleep(every).await;
            }
            polls
        })
    };

    tokio::time::sleep_until((epoch + t.inject_at).into()).await;
    let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let injected_ms = ms(epoch.elapsed());
    let how = inject(&ctx.killer, fault, &victim)?;
    let inject_returned_ms = ms(epoch.elapsed());

    let load_result = load.await.context("the load run panicked");
    stop.store(true, Ordering::Relaxed);
    let polls = poller.await.context("the poller panicked")?;
    let mut report = load_result??;
    report.name_replicas(&ctx.control.names().await?);

    let clock = |unix: f64| (unix - wall) * 1000.0 + injected_ms;
    let after: Vec<&Poll> = polls.iter().filter(|p| p.t_ms >= injected_ms).collect();
    let detected = after
        .iter()
        .find(|p| p.state != "up" || p.respawns > victim.respawns || p.pid != victim.pid);
    // A passive failure (the data plane's failed connects) marks a replica down at once, but
    // ringlb notes the time only on its next health round, so a poll can show "down" with an
    // older transition time: only a time after the fault counts.
    let down = after
        .iter()
        .find(|p| p.state != "up" && p.last_transition.is_some_and(|t| t >= wall));
    let replaced = after
        .iter()
        .find(|p| p.respawns > victim.respawns && p.state == "up");
    if fault == Fault::Hang && replaced.is_none() {
        // Not replaced within the run: let the stopped replica go on. (A replaced one was
        // stopped by ringlb; its pid may already belong to another process.)
        undo_hang(&ctx.killer, &victim);
    }
    let first_success_ms = report
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Ok(victim.id) && ms(r.start) >= inject_returned_ms)
        .map(|r| ms(r.start))
        .reduce(f64::min);
    let window_end = first_success_ms.unwrap_or(f64::INFINITY);
    let mut errors_in_window = BTreeMap::new();
    for r in &report.records {
        let (start, end) = (ms(r.start), ms(r.start + r.latency));
        if let Outcome::Err(k) = r.outcome {
            if end >= injected_ms && start <= window_end {
                *errors_in_window.entry(k).or_insert(0usize) += 1;
            }
        }
    }
    let span = polls.last().map_or(0.0, |p| p.t_ms) - polls.first().map_or(0.0, |p| p.t_ms);
    Ok(Recovery {
        fault,
        how,
        victim: victim.name.clone(),
        victim_id: victim.id,
        old_pid: victim.pid,
        new_pid: replaced.and_then(|p| p.pid),
        injected_ms,
        inject_returned_ms,
        detected_ms: detected.map(|p| p.t_ms),
        down_by_ringlb_clock_ms: down.and_then(|p| p.last_transition).map(clock),
        replaced_ms: replaced.map(|p| p.t_ms),
        replaced_by_ringlb_clock_ms: replaced.and_then(|p| p.last_transition).map(clock),
        first_success_ms,
        failed_in_window: errors_in_window.values().sum(),
        errors_in_window,
        poll_interval_ms: span / (polls.len().max(2) - 1) as f64,
        polls: polls.len(),
        run: summary(&report),
        records: std::mem::take(&mut report.records),
    })
}

/// Injects the fault the way the runtime allows; returns the command, for the report.
fn inject(killer: &Killer, fault: Fault, v: &Replica) -> Result<String> {
    let pid = v.pid.unwrap_or(0);
    match (killer, fault) {
        (Killer::Process, Fault::Kill) => {
            crate::ringlb::signal(pid, "KILL")?;
            Ok(format!("kill -9 {pid}"))
        }
        (Killer::Process, Fault::Hang) => {
            crate::ringlb::signal(pid, "STOP")?;
            Ok(format!("kill -STOP {pid}"))
        }
        (Killer::Docker, Fault::Kill) => docker(&["kill", "--", &v.name]),
        (Killer::Docker, Fault::Hang) => docker(&["pause", "--", &v.name]),
    }
}

/// Lets a hung replica go on if ringlb has not replaced it (best effort).
fn undo_hang(killer: &Killer, v: &Replica) {
    match killer {
        Killer::Process => {
            let _ = crate::ringlb::signal(v.pid.unwrap_or(0), "CONT");
        }
        Killer::Docker => {
            let _ = docker(&["unpause", "--", &v.name]);
        }
    }
}

fn docker(args: &[&str]) -> Result<String> {
    let st = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run docker")?;
    let shown = format!("docker {}", args.join(" ").replace(" -- ", " "));
    if !st.success() {
        bail!("{shown} failed");
    }
    Ok(shown)
}

/// Requests per bucket of start time in `[from, to)` ms: succeeded, failed, answered by `victim`.
pub fn buckets(records: &[Record], victim: u32, from: f64, to: f64, width: f64) -> Vec<[f64; 4]> {
    let n = ((to - from) / width).ceil().max(1.0) as usize;
    let mut out: Vec<[f64; 4]> = (0..n)
        .map(|i| [from + i as f64 * width, 0.0, 0.0, 0.0])
        .collect();
    for r in records {
        let t = ms(r.start);
        if t < from || t >= to {
            continue;
        }
        let b = &mut out[((t - from) / width) as usize];
        match r.outcome {
            Outcome::Ok(id) => {
                b[1] += 1.0;
                if id == victim {
                    b[3] += 1.0;
                }
            }
            Outcome::Err(_) => b[2] += 1.0,
        }
    }
    out
}
