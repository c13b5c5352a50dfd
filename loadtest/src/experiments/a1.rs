//! 10000 asynchronous requests on N = 3 replicas; how many each replica handled.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;

use super::{served, summary, Ctx, Served};
use crate::chart::{self, Bars};
use crate::report::{f, pct, preamble, Table};
use crate::stats::{spread, Spread};

/// Replicas A-1 runs on, as the assignment says.
pub const N: usize = 3;

/// What A-1 measured.
#[derive(Clone, Debug, Serialize)]
pub struct A1 {
    pub served: Vec<Served>,
    pub spread: Spread,
    /// The run (throughput, latency, errors).
    pub run: serde_json::Value,
    /// The request IDs' seed label, so A-4 can send the same set again.
    pub label: String,
    /// rid → replica id of every successful request (A-4 compares it after /add and /rm).
    #[serde(skip)]
    pub placement: HashMap<u32, u32>,
}

/// Brings ringlb to N = 3 and sends the requests.
pub async fn measure(ctx: &Ctx) -> Result<A1> {
    ctx.control.set_replicas(N).await?;
    let label = "A-1".to_owned();
    let report = ctx.measure(&label).await?;
    let replicas = ctx.control.replicas().await?;
    let served = served(&report, &replicas);
    let counts: Vec<f64> = served.iter().map(|s| s.requests as f64).collect();
    Ok(A1 {
        spread: spread(&counts),
        served,
        run: summary(&report),
        label,
        placement: report.placement(),
    })
}

/// The per-replica table.
pub fn table(a: &A1) -> Table {
    let mut t = Table::new([
        "replica",
        "id",
        "requests",
        "share",
        "ring share (/replicas)",
    ]);
    let total: usize = a.served.iter().map(|s| s.requests).sum();
    for s in &a.served {
        t.row([
            s.name.clone(),
            s.id.to_string(),
            s.requests.to_string(),
            pct(s.requests as f64 / total.max(1) as f64),
            pct(s.ring_share),
        ]);
    }
    t
}

/// The run's own numbers: throughput, latency, failures.
pub fn run_table(run: &serde_json::Value) -> Table {
    let mut t = Table::new([
        "sent",
        "ok",
        "failed",
        "concurrency",
        "elapsed s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
    ]);
    let g = |k: &str| run[k].as_f64().unwrap_or(0.0);
    let l = |k: &str| run["latency_ms"][k].as_f64().unwrap_or(0.0);
    t.row([
        f(g("sent"), 0),
        f(g("ok"), 0),
        f(g("failed"), 0),
        f(g("concurrency"), 0),
        f(g("elapsed_s"), 2),
        f(g("throughput_rps"), 0),
        f(l("p50"), 2),
        f(l("p99"), 2),
        f(l("max"), 2),
        errors(run),
    ]);
    t
}

/// A run's errors as "kind n" (with status codes), or "none".
pub fn errors(run: &serde_json::Value) -> String {
    let list = |k: &str| -> Vec<String> {
        run[k]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default()
    };
    let (kinds, codes) = (list("errors"), list("error_statuses"));
    match (kinds.is_empty(), codes.is_empty()) {
        (true, _) => "none".into(),
        (false, true) => kinds.join(", "),
        (false, false) => format!("{} (HTTP {})", kinds.join(", "), codes.join(", ")),
    }
}

/// Writes `a1.svg`, `a1.md` and the `a1` entry of `results.json`.
pub fn write(ctx: &Ctx, a: &A1) -> Result<()> {
    let svg = ctx.file("a1.svg");
    let total: usize = a.served.iter().map(|s| s.requests).sum();
    chart::bars(
        &ctx.out.path(&svg),
        &Bars {
            title: format!(
                "A-1: {total} requests on N = {} replicas ({})",
                a.served.len(),
                ctx.runtime
            ),
            x_desc: "replica".into(),
            y_desc: "requests handled".into(),
            groups: a
                .served
                .iter()
                .map(|s| format!("{} (id {})", s.name, s.id))
                .collect(),
            series: vec![(
                "requests".into(),
                a.served.iter().map(|s| s.requests as f64).collect(),
            )],
            reference: Some(("fair share (requests / N)".into(), a.spread.mean)),
            value_decimals: Some(0),
        },
    )?;
    let s = &a.spread;
    let md = format!(
        "{}![A-1]({svg})\n\n{}\nmax/mean {} · std-dev {} · CV {}\n\n{}",
        preamble("A-1: requests per replica, N = 3", &ctx.runtime),
        table(a).markdown(),
        f(s.max_over_mean, 3),
        f(s.std, 1),
        f(s.cv, 3),
        run_table(&a.run).markdown()
    );
    ctx.out.write(&ctx.file("a1.md"), &md)?;
    ctx.out.record(&ctx.file("a1"), a)
}
