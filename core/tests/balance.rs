//! Balance and disruption of the balanced families, against hash-anchors §5's goals.
//!
//! Per-run gates sit above the noise floor's 99th percentile: even a perfect hash exceeds
//! max/mean 1.05 in about 5 % of 10000-request runs at N = 6, so the per-run gate is 1.08 and
//! holds for any seed of the request sample, not only the one used here.

mod common;

use common::{build, counts, max_over_mean, random_ids, servers};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringlb_core::ring::{Family, Key, Member, Ring, RingConfig};

/// Per-run max/mean gate for 10000 requests at N ≤ 6 (noise p99 at N = 6 is 1.066).
const PER_RUN_MAX_OVER_MEAN: f64 = 1.08;

#[test]
fn maglev_rendezvous_and_jump_balance_10000_requests() {
    let ids = random_ids(10_000, 42);
    for family in [Family::Maglev, Family::Rendezvous, Family::Jump] {
        for n in 2..=6 {
            let ring = build(family, servers(n));
            let c = counts(&ring, &ids);
            let mm = max_over_mean(&c);
            eprintln!("{family} N={n}: {c:?} max/mean {mm:.3}");
            assert!(
                mm <= PER_RUN_MAX_OVER_MEAN,
                "{family} N={n}: max/mean {mm:.3}"
            );
        }
    }
}

#[test]
fn maglev_shares_are_within_one_percent() {
    let cfg = RingConfig::default();
    for n in [1, 2, 3, 4, 5, 6, 17, 655] {
        let ring = Ring::build(&cfg, servers(n)).unwrap();
        let shares = ring.shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for s in &shares {
            assert!((s * n as f64 - 1.0).abs() <= 0.01, "N={n}: share {s}");
        }
        // Members take turns filling the table, so entry counts differ by at most one.
        let mut entries = vec![0usize; n as usize];
        for &o in ring.maglev_table().unwrap() {
            entries[usize::from(o)] += 1;
        }
        let (lo, hi) = (entries.iter().min().unwrap(), entries.iter().max().unwrap());
        assert!(hi - lo <= 1, "N={n}: {lo}..{hi}");
    }
}

#[test]
fn maglev_structural_balance_over_all_six_digit_ids() {
    for n in 2..=6 {
        let ring = build(Family::Maglev, servers(n));
        let mut c = vec![0u64; n as usize];
        for i in 100_000..=999_999u32 {
            c[ring.owner(Key::new(i.to_string().as_bytes())).unwrap()] += 1;
        }
        let mm = max_over_mean(&c);
        eprintln!("maglev N={n}, all 900000 ids: max/mean {mm:.4}");
        assert!(mm <= 1.01, "N={n}: {mm}");
    }
}

#[test]
fn ring_and_assignment_shares_sum_to_one() {
    for family in Family::ALL {
        for n in [1, 3, 6] {
            let ring = build(family, servers(n));
            let shares = ring.shares();
            assert_eq!(shares.len(), n as usize);
            assert!(
                (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                "{family} N={n}"
            );
        }
    }
    // The classic ring with 160 points keeps every share within 20 % of fair at N ≤ 6.
    for n in 2..=6 {
        let shares = build(Family::Ring, servers(n)).shares();
        let worst = shares
            .iter()
            .map(|s| (s * n as f64 - 1.0).abs())
            .fold(0.0, f64::max);
        eprintln!("ring N={n}: shares {shares:.3?}");
        assert!(worst < 0.2, "ring N={n}: {shares:?}");
    }
}

/// Random replica names of the `Server-XXXXXX` kind a control plane generates.
fn random_members(rng: &mut StdRng, n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            Member::new(
                format!("Server-{:06}", rng.random_range(0..1_000_000)),
                i as u32 + 1,
            )
        })
        .collect()
}

#[test]
fn maglev_disruption_is_near_minimal_on_average() {
    // hash-anchors §5: mean remap ≤ 1.05 × the minimum and mean excess moves ≤ 0.5 % of keys.
    let keys = random_ids(20_000, 99);
    let mut rng = StdRng::seed_from_u64(7);
    let cfg = RingConfig::default();
    let name = |r: &Ring, k: &String| {
        r.members()[r.owner(Key::new(k.as_bytes())).unwrap()]
            .name
            .clone()
    };
    let (mut ratio_add, mut ratio_rm, mut excess_add, mut excess_rm, mut cases) =
        (0.0, 0.0, 0, 0, 0);
    for n in 2..=6usize {
        for _ in 0..8 {
            let all = random_members(&mut rng, n + 1);
            let before = Ring::build(&cfg, all[..n].to_vec()).unwrap();
            let after = Ring::build(&cfg, all.clone()).unwrap();
            let added = &all[n].name;
            let (mut moved, mut excess) = (0usize, 0usize);
            for k in &keys {
                let (a, b) = (name(&before, k), name(&after, k));
                moved += usize::from(a != b);
                excess += usize::from(a != b && &b != added);
            }
            ratio_add += moved as f64 / keys.len() as f64 * (n + 1) as f64;
            excess_add += excess;

            let gone = rng.random_range(0..=n);
            let mut rest = all.clone();
            let removed = rest.remove(gone);
            let smaller = Ring::build(&cfg, rest).unwrap();
            let (mut moved, mut excess) = (0usize, 0usize);
            for k in &keys {
                let (a, b) = (name(&after, k), name(&smaller, k));
                moved += usize::from(a != b);
                excess += usize::from(a != b && a != removed.name);
            }
            ratio_rm += moved as f64 / keys.len() as f64 * (n + 1) as f64;
            excess_rm += excess;
            cases += 1;
        }
    }
    let total = (cases * keys.len()) as f64;
    let (ra, rr) = (ratio_add / cases as f64, ratio_rm / cases as f64);
    let (ea, er) = (excess_add as f64 / total, excess_rm as f64 / total);
    eprintln!(
        "maglev remap add {ra:.3}x remove {rr:.3}x of minimum; excess add {:.3} % remove {:.3} %",
        ea * 100.0,
        er * 100.0
    );
    assert!(ra <= 1.05 && rr <= 1.05, "remap {ra} / {rr}");
    assert!(ea <= 0.005 && er <= 0.005, "excess {ea} / {er}");
}
