//! every endpoint checked ([`super::checks`]), then a replica killed under load, and
//! (unless turned off) a replica hung under load ([`super::fault`]).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::checks::{self, Check};
use super::fault::{self, Fault, Recovery, Timing};
use super::{Ctx, Killer};
use crate::chart::{self, Line, Lines, Marker};
use crate::report::{f, preamble, Table};

/// Timing of A-3.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The kill run.
    pub kill: Timing,
    /// How many times the kill is repeated (each on the replica with the smallest id, after
    /// all replicas are up again); the first is charted, all are tabled.
    pub kills: usize,
    /// The hang run; `None` skips it.
    pub hang: Option<Timing>,
    /// Bucket width of the full timelines, ms.
    pub bucket_ms: f64,
}

impl Default for Settings {
    fn default() -> Self {
        let poll = Duration::from_millis(5);
        Settings {
            kill: Timing {
                duration: Duration::from_secs(6),
                inject_at: Duration::from_secs(2),
                poll,
                timeout: Duration::from_secs(2),
            },
            kills: 3,
            // ringlb replaces a hung replica after --respawn-after (default 10 s), so the run
            // must outlast that by a few seconds.
            hang: Some(Timing {
                duration: Duration::from_secs(20),
                inject_at: Duration::from_secs(2),
                poll,
                timeout: Duration::from_secs(2),
            }),
            bucket_ms: 50.0,
        }
    }
}

/// What A-3 measured.
#[derive(Clone, Debug, Serialize)]
pub struct A3 {
    pub checks: Vec<Check>,
    pub kill: Recovery,
    /// The repetitions after the first kill.
    pub more_kills: Vec<Recovery>,
    pub hang: Option<Recovery>,
}

/// Runs the checks, the kill and the hang.
pub async fn measure(ctx: &Ctx, s: &Settings) -> Result<A3> {
    let checks = checks::run(ctx).await?;
    let n = ctx.control.replicas().await?.len();
    let all_up = || ctx.control.wait_all_up(n, Duration::from_secs(60));
    let kill = fault::run(ctx, Fault::Kill, &s.kill).await?;
    let mut more_kills = Vec::new();
    for _ in 1..s.kills {
        all_up().await?;
        more_kills.push(fault::run(ctx, Fault::Kill, &s.kill).await?);
    }
    let hang = match &s.hang {
        Some(t) => {
            all_up().await?;
            Some(fault::run(ctx, Fault::Hang, t).await?)
        }
        None => None,
    };
    Ok(A3 {
        checks,
        kill,
        more_kills,
        hang,
    })
}

/// The recovery figures as a table (ms after the fault was injected).
pub fn recovery_table(r: &Recovery) -> Table {
    let mut t = Table::new(["event", "ms from run start", "ms after the fault"]);
    let mut row = |e: &str, v: Option<f64>| {
        t.row([
            e.to_owned(),
            v.map_or("–".into(), |v| f(v, 1)),
            v.map_or("–".into(), |v| f(v - r.injected_ms, 1)),
        ])
    };
    row(&format!("`{}` issued", r.how), Some(r.injected_ms));
    row("command returned", Some(r.inject_returned_ms));
    row("marked down (ringlb's clock)", r.down_by_ringlb_clock_ms);
    row("detected (first poll showing it)", r.detected_ms);
    row(
        "replacement up (ringlb's clock)",
        r.replaced_by_ringlb_clock_ms,
    );
    row("replacement up (first poll showing it)", r.replaced_ms);
    row(
        "first request answered by its id again (start)",
        r.first_success_ms,
    );
    t
}

/// One row per kill: the times after the fault and the failures.
pub fn repeats_table(a: &A3) -> Table {
    let mut t = Table::new([
        "kill",
        "marked down (ringlb) ms",
        "detected (poll) ms",
        "replacement up (ringlb) ms",
        "first success ms",
        "failed in window",
        "failed in run",
        "requests in run",
    ]);
    let after = |r: &Recovery, v: Option<f64>| v.map_or("–".into(), |v| f(v - r.injected_ms, 1));
    for (i, r) in std::iter::once(&a.kill).chain(&a.more_kills).enumerate() {
        t.row([
            (i + 1).to_string(),
            after(r, r.down_by_ringlb_clock_ms),
            after(r, r.detected_ms),
            after(r, r.replaced_by_ringlb_clock_ms),
            after(r, r.first_success_ms),
            r.failed_in_window.to_string(),
            r.run["failed"].to_string(),
            r.run["sent"].to_string(),
        ]);
    }
    t
}

/// A timeline chart of `r` over `[from, to)` ms in buckets of `width` ms.
fn timeline(ctx: &Ctx, file: &str, r: &Recovery, from: f64, to: f64, width: f64) -> Result<()> {
    let b = fault::buckets(&r.records, r.victim_id, from, to, width);
    let col = |i: usize| b.iter().map(|x| x[i]).collect::<Vec<f64>>();
    let line = |name: String, values: Vec<f64>| Line {
        name,
        values,
        dashed: false,
    };
    let mut markers = vec![Marker {
        x: r.injected_ms / 1000.0,
        label: r.how.clone(),
    }];
    for (v, label) in [
        (r.detected_ms, "detected"),
        (r.replaced_ms, "replacement up"),
        (r.first_success_ms, "first success"),
    ] {
        if let Some(v) = v {
            markers.push(Marker {
                x: v / 1000.0,
                label: label.into(),
            });
        }
    }
    markers.retain(|m| m.x * 1000.0 >= from && m.x * 1000.0 <= to);
    let verb = match r.fault {
        Fault::Kill => "killed",
        Fault::Hang => "hung",
    };
    chart::lines(
        &ctx.out.path(file),
        &Lines {
            title: format!(
                "A-3: requests per {width:.0} ms while {} is {verb} ({})",
                r.victim, ctx.runtime
            ),
            x_desc: "seconds since the start of the load".into(),
            y_desc: format!("requests started per {width:.0} ms"),
            x: col(0).iter().map(|t| t / 1000.0).collect(),
            lines: vec![
                line("succeeded".into(), col(1)),
                line("failed".into(), col(2)),
                line(format!("answered by {}", r.victim), col(3)),
            ],
            markers,
            y_from_zero: true,
            ..Lines::default()
        },
    )
}

fn section(r: &Recovery, files: &[String]) -> String {
    let errors: Vec<String> = r
        .errors_in_window
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let charts: String = files.iter().map(|f| format!("![A-3]({f})\n\n")).collect();
    format!(
        "`{}` on {} (id {}, pid {}); replacement pid {}. `/replicas` polled {} times, every {} ms on average.\n\n\
         {charts}{}\nFailed requests among those running at the fault or started before the first success: **{}** ({}).\n\n{}",
        r.how,
        r.victim,
        r.victim_id,
        pid(r.old_pid),
        pid(r.new_pid),
        r.polls,
        f(r.poll_interval_ms, 1),
        recovery_table(r).markdown(),
        r.failed_in_window,
        if errors.is_empty() { "none".to_owned() } else { errors.join(", ") },
        super::a1::run_table(&r.run).markdown()
    )
}

/// Writes `a3.svg`, `a3-zoom.svg`, `a3-hang.svg`, `a3.md` and the `a3` entry of `results.json`.
pub fn write(ctx: &Ctx, a: &A3, s: &Settings) -> Result<()> {
    let k = &a.kill;
    let (full, zoom) = (ctx.file("a3.svg"), ctx.file("a3-zoom.svg"));
    let end = ms(s.kill.duration);
    timeline(ctx, &full, k, 0.0, end, s.bucket_ms)?;
    // Around the kill, in buckets fine enough to see a recovery of a few milliseconds.
    let last = [k.detected_ms, k.replaced_ms, k.first_success_ms]
        .into_iter()
        .flatten()
        .fold(k.inject_returned_ms, f64::max);
    let (from, to) = (k.injected_ms - 100.0, (last + 150.0).min(end));
    timeline(
        ctx,
        &zoom,
        k,
        from,
        to,
        ((to - from) / 60.0).max(1.0).round(),
    )?;
    let verb = if ctx.killer == Killer::Docker {
        "docker kill"
    } else {
        "kill -9"
    };
    let mut md =
        format!(
        "{}## Endpoints: {} of {} checks pass\n\n{}\n## A replica killed under load ({verb})\n\n{}",
        preamble("A-3: endpoints and recovery from a failed replica", &ctx.runtime),
        a.checks.iter().filter(|c| c.pass).count(),
        a.checks.len(),
        checks::table(&a.checks).markdown(),
        section(k, &[full, zoom]),
    );
    if !a.more_kills.is_empty() {
        md.push_str(&format!(
            "\n### The kill repeated ({} times in all)\n\n{}",
            1 + a.more_kills.len(),
            repeats_table(a).markdown()
        ));
    }
    if let (Some(h), Some(t)) = (&a.hang, &s.hang) {
        let hang = ctx.file("a3-hang.svg");
        timeline(ctx, &hang, h, 0.0, ms(t.duration), 100.0)?;
        md.push_str(&format!(
            "\n## A replica hung under load\n\n{}",
            section(h, &[hang])
        ));
    }
    ctx.out.write(&ctx.file("a3.md"), &md)?;
    ctx.out.record(&ctx.file("a3"), a)
}

fn pid(p: Option<u32>) -> String {
    p.map_or("–".into(), |p| p.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
