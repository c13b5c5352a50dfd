//! A-4: A-1 and A-2 again for every hash family, plus the keys that move when N goes 3 → 4 → 3.
//!
//! The family is a start-up flag of ringlb, so each variant runs on a ringlb of its own, started
//! on free ports and stopped (by the [`Ringlb`] guard) before the next one starts. Keys moved are
//! measured live: the A-1 request IDs are sent again after `/add` and again after `/rm`, and
//! every ID whose replica changed is counted.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use ringlb_core::{Family, Member, Poly, RingConfig};
use serde::Serialize;

use super::structure::{self, AssignmentMap};
use super::{a1, a2, seed_for, Ctx};
use crate::ringlb::{Launch, Ringlb, Runtime};
use crate::run;
use crate::stats::Spread;

/// One hash configuration under test.
#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    /// Short name (file names, `--families`).
    pub key: String,
    /// What it is, for tables.
    pub label: String,
    /// ringlb flags that select it.
    pub args: Vec<String>,
    #[serde(skip)]
    pub cfg: RingConfig,
}

fn assignment(key: &str, label: &str, h: [u64; 3], phi: [u64; 4]) -> Variant {
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    Variant {
        key: key.into(),
        label: label.into(),
        args: vec![
            "--hash".into(),
            "assignment".into(),
            "--assignment-h".into(),
            list(&h),
            "--assignment-phi".into(),
            list(&phi),
        ],
        cfg: RingConfig {
            poly: Poly { h, phi },
            ..RingConfig::new(Family::Assignment)
        },
    }
}

fn family(f: Family, label: &str) -> Variant {
    Variant {
        key: f.as_str().into(),
        label: label.into(),
        args: vec!["--hash".into(), f.as_str().into()],
        cfg: RingConfig::new(f),
    }
}

/// Every variant, in the order tables list them.
///
/// - `assignment`: the assignment's H(i) = i² + 2i + 17, Φ(i, j) = i² + j² + 2j + 25.
/// - `primes`: large prime coefficients, as a peer used: H = 1427i² + 2503i + 2003,
///   Φ = 1249i² + 2287j² + 1663j + 2287.
/// - `perm`: H(i) = 2i² + 3i + 7, a permutation polynomial modulo 512 (even i² and odd i
///   coefficient; Rivest 2001), so every slot is reachable and equally likely; Φ(i, j) =
///   88i² + 17j² + 111j, the best of 4000 random coefficient triples below 128 for ids 1..6
///   (mean max/mean over N = 2..6 over all 900000 IDs).
/// - `ring`, `maglev`, `rendezvous`, `jump`: ringlb's other families with their defaults.
pub fn variants() -> Vec<Variant> {
    vec![
        assignment(
            "assignment",
            "assignment H=i²+2i+17, Φ=i²+j²+2j+25",
            [1, 2, 17],
            [1, 1, 2, 25],
        ),
        assignment(
            "primes",
            "primes H=1427i²+2503i+2003, Φ=1249i²+2287j²+1663j+2287",
            [1427, 2503, 2003],
            [1249, 2287, 1663, 2287],
        ),
        assignment(
            "perm",
            "perm H=2i²+3i+7, Φ=88i²+17j²+111j",
            [2, 3, 7],
            [88, 17, 111, 0],
        ),
        family(Family::Ring, "ring (160 vnodes, xxh3)"),
        family(Family::Maglev, "maglev (M = 65537)"),
        family(Family::Rendezvous, "rendezvous (HRW)"),
        family(Family::Jump, "jump"),
    ]
}

/// Keys that changed replica between two runs of the same IDs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Moved {
    /// IDs answered in both runs.
    pub compared: usize,
    /// IDs whose replica changed.
    pub moved: usize,
    /// Moves that did not have to happen: on add, keys that moved but not to the new replica;
    /// on remove, keys that moved but were not on the removed one.
    pub excess: usize,
    /// The share of the compared IDs on the added (or removed) replica at N = 4.
    pub changed_replica_share: f64,
    /// The fraction of the same IDs whose owner changes on ringlb-core's rings (no failover,
    /// no sampling: what the live figure should be).
    pub ring_fraction: f64,
    /// Answers of the second run that did not come from the ring owner (failover while the
    /// owner was marked down); they count as moved above.
    pub off_owner: usize,
    /// IDs answered by their ring owner in both runs: the comparison with failovers left out.
    pub owner_compared: usize,
    /// Of those, the IDs whose replica changed.
    pub owner_moved: usize,
}

impl Moved {
    /// moved / compared.
    pub fn fraction(&self) -> f64 {
        self.moved as f64 / self.compared.max(1) as f64
    }
}

/// A-4's measurements of one variant.
#[derive(Clone, Debug, Serialize)]
pub struct Result4 {
    pub variant: Variant,
    pub a1: a1::A1,
    pub a2: Vec<a2::Step>,
    /// Exact spread over all 900000 IDs at N = 3 with the same replicas.
    pub exact_n3: Spread,
    /// The same at every A-2 step.
    pub exact_a2: Vec<Spread>,
    pub add: Moved,
    pub rm: Moved,
    /// For `assignment` variants: where the map puts things at N = 3 and N = 6.
    pub map: Vec<AssignmentMap>,
    /// A-1 answers that did not come from the ring owner (0 on a healthy run).
    pub off_owner_a1: usize,
    /// The same for every A-2 step.
    pub off_owner_a2: Vec<usize>,
}

/// Settings of A-4.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ringlb: PathBuf,
    /// Flags added to every ringlb started (after the variant's own).
    pub extra_args: Vec<String>,
    pub runtime: Runtime,
    pub variants: Vec<Variant>,
    pub ns: Vec<usize>,
    /// Where ringlb logs go.
    pub log_dir: PathBuf,
}

/// Runs every variant on its own ringlb. `base` gives everything but the ports.
pub async fn measure(base: &Ctx, s: &Settings) -> Result<Vec<Result4>> {
    let mut out = Vec::new();
    for v in &s.variants {
        eprintln!("A-4: {} ({})", v.key, v.label);
        let launch = Launch {
            binary: s.ringlb.clone(),
            replicas: a1::N,
            runtime: s.runtime.clone(),
            args: [v.args.clone(), s.extra_args.clone()].concat(),
            log: s.log_dir.join(format!("ringlb-a4-{}.log", v.key)),
        };
        let rl = Ringlb::start(&launch).await?;
        let ctx = Ctx {
            target: rl.data,
            control: rl.control(),
            ..base.clone()
        };
        let r = one(&ctx, v, &s.ns).await;
        drop(rl);
        out.push(r?);
    }
    Ok(out)
}

async fn one(ctx: &Ctx, v: &Variant, ns: &[usize]) -> Result<Result4> {
    let first = a1::measure(ctx).await?;
    let m3 = members(&first.served);
    let exact_n3 = structure::exact_spread(&v.cfg, &m3)?;
    let off_owner_a1 = structure::off_owner(&v.cfg, &m3, &first.placement)?;

    // Keys moved, 3 → 4 → 3, with A-1's IDs.
    let rids = run::rids(ctx.requests, seed_for(ctx.seed, &first.label));
    let up = std::time::Duration::from_secs(60);
    ctx.control.add(1, &[]).await?;
    ctx.control.wait_all_up(a1::N + 1, up).await?;
    let added = ctx
        .control
        .replicas()
        .await?
        .into_iter()
        .find(|r| !m3.iter().any(|m| m.id == r.id))
        .ok_or_else(|| anyhow!("/add did not add a replica"))?;
    let mut m4 = m3.clone();
    m4.push(Member::new(added.name.clone(), added.id));
    let p4 = ctx.measure_rids("A-4 N=4", rids.clone()).await?.placement();
    ctx.control.rm(1, std::slice::from_ref(&added.name)).await?;
    ctx.control.wait_all_up(a1::N, up).await?;
    let p3b = ctx
        .measure_rids("A-4 N=3 again", rids.clone())
        .await?
        .placement();
    let (o3, o4) = (
        structure::owners(&v.cfg, &m3, &rids)?,
        structure::owners(&v.cfg, &m4, &rids)?,
    );
    let mut add = moved(&first.placement, &p4, added.id, true);
    add.ring_fraction = changed_fraction(&o3, &o4);
    add.off_owner = structure::off_owner(&v.cfg, &m4, &p4)?;
    (add.owner_compared, add.owner_moved) = owner_moved(&first.placement, &p4, &o3, &o4);
    let mut rm = moved(&p4, &p3b, added.id, false);
    rm.ring_fraction = add.ring_fraction;
    rm.off_owner = structure::off_owner(&v.cfg, &m3, &p3b)?;
    (rm.owner_compared, rm.owner_moved) = owner_moved(&p4, &p3b, &o4, &o3);

    let steps = a2::measure(ctx, ns).await?;
    let mut exact_a2 = Vec::new();
    let mut off_owner_a2 = Vec::new();
    for s in &steps {
        let m = members(&s.served);
        exact_a2.push(structure::exact_spread(&v.cfg, &m)?);
        off_owner_a2.push(structure::off_owner(&v.cfg, &m, &s.placement)?);
    }
    let map = if v.cfg.family == Family::Assignment {
        vec![
            structure::assignment_map(&v.cfg, 3)?,
            structure::assignment_map(&v.cfg, 6)?,
        ]
    } else {
        vec![]
    };
    Ok(Result4 {
        variant: v.clone(),
        a1: first,
        a2: steps,
        exact_n3,
        exact_a2,
        add,
        rm,
        map,
        off_owner_a1,
        off_owner_a2,
    })
}

/// The ring members of a measurement (replicas that answered nothing included).
fn members(served: &[super::Served]) -> Vec<Member> {
    served
        .iter()
        .map(|s| Member::new(s.name.clone(), s.id))
        .collect()
}

/// Among IDs that both runs got from their ring owners (`oa`, `ob`), how many there are and how
/// many changed replica.
fn owner_moved(
    a: &HashMap<u32, u32>,
    b: &HashMap<u32, u32>,
    oa: &HashMap<u32, u32>,
    ob: &HashMap<u32, u32>,
) -> (usize, usize) {
    let clean: Vec<(u32, u32)> = a
        .iter()
        .filter_map(|(rid, &x)| {
            let y = *b.get(rid)?;
            (oa.get(rid) == Some(&x) && ob.get(rid) == Some(&y)).then_some((x, y))
        })
        .collect();
    let moved = clean.iter().filter(|(x, y)| x != y).count();
    (clean.len(), moved)
}

/// The fraction of IDs whose owner differs between two owner maps.
fn changed_fraction(a: &HashMap<u32, u32>, b: &HashMap<u32, u32>) -> f64 {
    let changed = a.iter().filter(|(rid, id)| b.get(rid) != Some(id)).count();
    changed as f64 / a.len().max(1) as f64
}

/// Compares two placements of the same IDs; `changed` is the replica added (`adding`) or removed.
fn moved(a: &HashMap<u32, u32>, b: &HashMap<u32, u32>, changed: u32, adding: bool) -> Moved {
    let mut m = Moved::default();
    let mut on_changed = 0usize;
    for (rid, &from) in a {
        let Some(&to) = b.get(rid) else { continue };
        m.compared += 1;
        let at_four = if adding { to } else { from };
        if at_four == changed {
            on_changed += 1;
        }
        if from != to {
            m.moved += 1;
            let necessary = if adding {
                to == changed
            } else {
                from == changed
            };
            if !necessary {
                m.excess += 1;
            }
        }
    }
    m.changed_replica_share = on_changed as f64 / m.compared.max(1) as f64;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_counted_and_classified() {
        let a: HashMap<u32, u32> = [(1, 1), (2, 2), (3, 3), (4, 1)].into();
        let b: HashMap<u32, u32> = [(1, 4), (2, 2), (3, 1), (4, 1)].into();
        let m = moved(&a, &b, 4, true);
        assert_eq!((m.compared, m.moved, m.excess), (4, 2, 1));
        assert_eq!(m.changed_replica_share, 0.25);
    }

    #[test]
    fn variants_have_distinct_keys() {
        let v = variants();
        let mut keys: Vec<&str> = v.iter().map(|v| v.key.as_str()).collect();
        keys.dedup();
        assert_eq!(keys.len(), 7);
    }
}
