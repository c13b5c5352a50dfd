//! N from 2 to 6 through `/add` and `/rm`, 10000 requests at each N; the load per replica.
//!
//! The average load is always requests / N, so the chart shows it with the band between the
//! least and the most loaded replica and the standard deviation: the spread is what tells a good
//! hash from a bad one.

use anyhow::Result;
use serde::Serialize;

use super::{served, summary, Ctx, Served};
use crate::chart::{self, Line, Lines};
use crate::report::{f, preamble, Table};
use crate::stats::{spread, Spread};

/// The assignment's range of N.
pub const NS: std::ops::RangeInclusive<usize> = 2..=6;

/// One N of A-2.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub n: usize,
    pub served: Vec<Served>,
    pub spread: Spread,
    pub failed: usize,
    pub run: serde_json::Value,
    /// rid → replica id of every successful request.
    #[serde(skip)]
    pub placement: std::collections::HashMap<u32, u32>,
}

/// Measures every N in `ns`, then puts the replica count back to what it was.
pub async fn measure(ctx: &Ctx, ns: &[usize]) -> Result<Vec<Step>> {
    let before = ctx.control.replicas().await?.len();
    let mut steps = Vec::new();
    for &n in ns {
        ctx.control.set_replicas(n).await?;
        let report = ctx.measure(&format!("A-2 N={n}")).await?;
        let replicas = ctx.control.replicas().await?;
        let served = served(&report, &replicas);
        let counts: Vec<f64> = served.iter().map(|s| s.requests as f64).collect();
        steps.push(Step {
            n,
            spread: spread(&counts),
            failed: report.failed,
            served,
            run: summary(&report),
            placement: report.placement(),
        });
    }
    ctx.control.set_replicas(before).await?;
    Ok(steps)
}

/// One row per N.
pub fn table(steps: &[Step]) -> Table {
    let mut t = Table::new([
        "N",
        "mean",
        "min",
        "max",
        "std-dev",
        "max/mean",
        "CV",
        "failed",
        "per replica (id: requests)",
    ]);
    for s in steps {
        let per: Vec<String> = s
            .served
            .iter()
            .map(|r| format!("{}: {}", r.id, r.requests))
            .collect();
        t.row([
            s.n.to_string(),
            f(s.spread.mean, 1),
            f(s.spread.min, 0),
            f(s.spread.max, 0),
            f(s.spread.std, 1),
            f(s.spread.max_over_mean, 3),
            f(s.spread.cv, 3),
            s.failed.to_string(),
            per.join(", "),
        ]);
    }
    t
}

/// The line chart of one family's steps.
pub fn chart(title: String, steps: &[Step]) -> Lines {
    let x: Vec<f64> = steps.iter().map(|s| s.n as f64).collect();
    let get = |g: fn(&Spread) -> f64| steps.iter().map(|s| g(&s.spread)).collect::<Vec<f64>>();
    let mean = get(|s| s.mean);
    let std = get(|s| s.std);
    Lines {
        title,
        x_desc: "replicas N".into(),
        y_desc: "requests per replica".into(),
        x: x.clone(),
        lines: vec![
            Line {
                name: "average load (requests / N)".into(),
                values: mean.clone(),
                dashed: false,
            },
            Line {
                name: "average + std-dev".into(),
                values: mean.iter().zip(&std).map(|(m, s)| m + s).collect(),
                dashed: true,
            },
            Line {
                name: "average − std-dev".into(),
                values: mean
                    .iter()
                    .zip(&std)
                    .map(|(m, s)| (m - s).max(0.0))
                    .collect(),
                dashed: true,
            },
        ],
        band: Some(("min .. max replica".into(), get(|s| s.min), get(|s| s.max))),
        markers: vec![],
        x_ticks: Some(x),
        y_from_zero: true,
        points: true,
        legend_left: false,
    }
}

/// Writes `a2.svg`, `a2.md` and the `a2` entry of `results.json`.
pub fn write(ctx: &Ctx, steps: &[Step]) -> Result<()> {
    let svg = ctx.file("a2.svg");
    let requests = steps.first().map_or(0.0, |s| s.spread.mean * s.n as f64);
    chart::lines(
        &ctx.out.path(&svg),
        &chart(
            format!(
                "A-2: load per replica, {requests:.0} requests at each N ({})",
                ctx.runtime
            ),
            steps,
        ),
    )?;
    let md = format!(
        "{}![A-2]({svg})\n\n{}",
        preamble("A-2: load per replica for N = 2..6", &ctx.runtime),
        table(steps).markdown()
    );
    ctx.out.write(&ctx.file("a2.md"), &md)?;
    ctx.out.record(&ctx.file("a2"), &steps)
}
