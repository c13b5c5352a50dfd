//! A-4's charts and tables: the families side by side.

use anyhow::Result;

use super::a4::Result4;
use super::Ctx;
use crate::chart::{self, Bars, Line, Lines};
use crate::report::{f, pct, preamble, Table};

/// A-1 per family: each replica's share of the requests, the spread, and the exact spread over
/// all 900000 IDs.
pub fn a1_table(rs: &[Result4]) -> Table {
    let mut t = Table::new([
        "family",
        "id 1",
        "id 2",
        "id 3",
        "max/mean",
        "std-dev",
        "failed",
        "off-owner",
        "exact max/mean (900k IDs)",
    ]);
    for r in rs {
        let total: usize = r.a1.served.iter().map(|s| s.requests).sum();
        let share = |id: u32| {
            r.a1.served
                .iter()
                .find(|s| s.id == id)
                .map_or("–".into(), |s| {
                    format!(
                        "{} ({})",
                        s.requests,
                        pct(s.requests as f64 / total.max(1) as f64)
                    )
                })
        };
        t.row([
            r.variant.label.clone(),
            share(1),
            share(2),
            share(3),
            f(r.a1.spread.max_over_mean, 3),
            f(r.a1.spread.std, 1),
            r.a1.run["failed"].to_string(),
            r.off_owner_a1.to_string(),
            f(r.exact_n3.max_over_mean, 3),
        ]);
    }
    t
}

/// A-2 per family: one column per N, each cell "max/mean (std-dev)".
pub fn a2_table(rs: &[Result4]) -> Table {
    let ns: Vec<usize> = rs
        .first()
        .map(|r| r.a2.iter().map(|s| s.n).collect())
        .unwrap_or_default();
    let mut headers = vec!["family".to_owned()];
    headers.extend(ns.iter().map(|n| format!("N={n} max/mean (std)")));
    headers.push("exact max/mean at each N (900k IDs)".into());
    headers.push("failed / off-owner".into());
    let mut t = Table::new(headers);
    for r in rs {
        let mut row = vec![r.variant.key.clone()];
        row.extend(
            r.a2.iter()
                .map(|s| format!("{} ({})", f(s.spread.max_over_mean, 3), f(s.spread.std, 0))),
        );
        row.push(
            r.exact_a2
                .iter()
                .map(|s| f(s.max_over_mean, 3))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        let failed: usize = r.a2.iter().map(|s| s.failed).sum();
        let off: usize = r.off_owner_a2.iter().sum();
        row.push(format!("{failed} / {off}"));
        t.row(row);
    }
    t
}

/// Keys moved on 3 → 4 and 4 → 3, against the minimum.
pub fn moved_table(rs: &[Result4]) -> Table {
    let mut t = Table::new([
        "family",
        "moved on /add 3→4",
        "new replica's share at N=4",
        "needless moves on add",
        "moved on /rm 4→3",
        "removed replica's share at N=4",
        "needless moves on rm",
        "moved, owner answers only (add / rm)",
        "ring-core: owners changed",
        "off-owner answers (N=4 / N=3)",
        "minimum (add / rm)",
    ]);
    for r in rs {
        t.row([
            r.variant.key.clone(),
            format!(
                "{} of {} ({})",
                r.add.moved,
                r.add.compared,
                pct(r.add.fraction())
            ),
            pct(r.add.changed_replica_share),
            r.add.excess.to_string(),
            format!(
                "{} of {} ({})",
                r.rm.moved,
                r.rm.compared,
                pct(r.rm.fraction())
            ),
            pct(r.rm.changed_replica_share),
            r.rm.excess.to_string(),
            format!(
                "{} / {}",
                pct(r.add.owner_moved as f64 / r.add.owner_compared.max(1) as f64),
                pct(r.rm.owner_moved as f64 / r.rm.owner_compared.max(1) as f64)
            ),
            pct(r.add.ring_fraction),
            format!("{} / {}", r.add.off_owner, r.rm.off_owner),
            "25.0 % / 25.0 %".into(),
        ]);
    }
    t
}

/// The `assignment` maps: reachable slots, the virtual servers' window, wrap-around share.
pub fn map_table(rs: &[Result4]) -> Table {
    let mut t = Table::new([
        "variant",
        "N",
        "reachable request slots",
        "virtual servers in slots",
        "IDs wrapping to the lowest slot",
        "exact shares of ids 1..N",
    ]);
    for r in rs {
        for m in &r.map {
            t.row([
                r.variant.key.clone(),
                m.n.to_string(),
                format!("{} of {}", m.reachable_slots, m.slots),
                format!("{}..{}", m.lowest_vnode_slot, m.highest_vnode_slot),
                pct(m.wrap_fraction),
                m.shares
                    .iter()
                    .map(|s| pct(*s))
                    .collect::<Vec<_>>()
                    .join(" / "),
            ]);
        }
    }
    t
}

/// Writes `a4-a1.svg`, `a4-a2.svg`, `a4-moved.svg`, `a4.md` and the `a4` entry of
/// `results.json`.
pub fn write(ctx: &Ctx, rs: &[Result4]) -> Result<()> {
    let groups: Vec<String> = rs.iter().map(|r| r.variant.key.clone()).collect();
    let share_of = |r: &Result4, id: u32| {
        let total: usize = r.a1.served.iter().map(|s| s.requests).sum();
        r.a1.served
            .iter()
            .find(|s| s.id == id)
            .map_or(0.0, |s| 100.0 * s.requests as f64 / total.max(1) as f64)
    };
    let (f1, f2, f3) = (
        ctx.file("a4-a1.svg"),
        ctx.file("a4-a2.svg"),
        ctx.file("a4-moved.svg"),
    );
    chart::bars(
        &ctx.out.path(&f1),
        &Bars {
            title: format!(
                "A-4 / A-1: share of requests per replica, N = 3 ({})",
                ctx.runtime
            ),
            x_desc: "hash family".into(),
            y_desc: "% of requests".into(),
            groups: groups.clone(),
            series: (1..=3u32)
                .map(|id| {
                    (
                        format!("server id {id}"),
                        rs.iter().map(|r| share_of(r, id)).collect(),
                    )
                })
                .collect(),
            reference: Some(("fair share 33.3 %".into(), 100.0 / 3.0)),
            value_decimals: Some(0),
        },
    )?;
    let ns: Vec<f64> = rs
        .first()
        .map(|r| r.a2.iter().map(|s| s.n as f64).collect())
        .unwrap_or_default();
    chart::lines(
        &ctx.out.path(&f2),
        &Lines {
            title: format!("A-4 / A-2: busiest replica over the mean ({})", ctx.runtime),
            x_desc: "replicas N".into(),
            y_desc: "max / mean requests per replica".into(),
            x: ns.clone(),
            lines: rs
                .iter()
                .map(|r| Line {
                    name: r.variant.key.clone(),
                    values: r.a2.iter().map(|s| s.spread.max_over_mean).collect(),
                    dashed: r.variant.cfg.family != ringlb_core::Family::Assignment,
                })
                .collect(),
            x_ticks: Some(ns),
            y_from_zero: true,
            points: true,
            legend_left: true,
            ..Lines::default()
        },
    )?;
    chart::bars(
        &ctx.out.path(&f3),
        &Bars {
            title: format!("A-4: keys moved when N goes 3 → 4 → 3 ({})", ctx.runtime),
            x_desc: "hash family".into(),
            y_desc: "% of the same request IDs".into(),
            groups,
            series: vec![
                (
                    "moved on /add 3→4".into(),
                    rs.iter().map(|r| 100.0 * r.add.fraction()).collect(),
                ),
                (
                    "moved on /rm 4→3".into(),
                    rs.iter().map(|r| 100.0 * r.rm.fraction()).collect(),
                ),
            ],
            reference: Some(("minimum 25 %".into(), 25.0)),
            value_decimals: Some(1),
        },
    )?;
    let variants = rs
        .iter()
        .map(|r| {
            format!(
                "- `{}`: {} — ringlb flags `{}`",
                r.variant.key,
                r.variant.label,
                r.variant.args.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let md = format!(
        "{}Each family ran on its own ringlb (3 replicas at start, {} runtime).\n\n{variants}\n\n\
         ## A-1 per family\n\n![A-4 A-1]({f1})\n\n{}\n## A-2 per family\n\n![A-4 A-2]({f2})\n\n{}\n\
         ## Keys moved (live)\n\n![A-4 keys moved]({f3})\n\n{}\n## The assignment maps (exact, from ringlb-core)\n\n{}",
        preamble("A-4: the hash families compared", &ctx.runtime),
        ctx.runtime,
        a1_table(rs).markdown(),
        a2_table(rs).markdown(),
        moved_table(rs).markdown(),
        map_table(rs).markdown(),
    );
    ctx.out.write(&ctx.file("a4.md"), &md)?;
    ctx.out.record(&ctx.file("a4"), &rs)
}
