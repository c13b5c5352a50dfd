//! The `assignment` family against the assignment's published figures: the exact per-server
//! distribution of all 900000 six-digit request ids for N = 2..6, a sampled 10000-request run,
//! the 87 reachable request slots, and the capacity of 56 replicas.

mod common;

use common::{build, counts, counts_by_id, random_ids, servers};
use ringlb_core::ring::{Family, Key, Member, Probe, Ring, RingConfig, RingError};

/// Per-10k request counts for ids 1..N, j = 0..8, linear probing, listed by server id
/// (spec-and-peers §3.3, "i=1..N, j=0..8 (exact per 10k)").
const PUBLISHED: [&[u64]; 5] = [
    &[9531, 469],
    &[8438, 469, 1094],
    &[8203, 469, 1016, 312],
    &[7969, 312, 938, 312, 469],
    &[7891, 312, 938, 312, 469, 78],
];

/// The six ASCII digits of `i` (100000..=999999), without allocating.
fn six_digits(mut i: u32) -> [u8; 6] {
    let mut d = [b'0'; 6];
    for slot in d.iter_mut().rev() {
        *slot = b'0' + (i % 10) as u8;
        i /= 10;
    }
    d
}

/// Routes every six-digit id once and returns the counts by server id.
fn all_ids(ring: &Ring) -> Vec<u64> {
    let mut c = vec![0u64; ring.members().len()];
    for i in 100_000..=999_999u32 {
        c[ring.owner(Key::new(&six_digits(i))).unwrap()] += 1;
    }
    counts_by_id(ring, &c)
}

#[test]
fn all_six_digit_ids_match_the_published_exact_distribution() {
    for (n, expected) in (2u32..=6).zip(PUBLISHED) {
        let ring = build(Family::Assignment, servers(n));
        let counts = all_ids(&ring);
        assert_eq!(counts.iter().sum::<u64>(), 900_000);
        let per_10k: Vec<f64> = counts
            .iter()
            .map(|&c| c as f64 * 10_000.0 / 900_000.0)
            .collect();
        eprintln!("assignment N={n}: {counts:?} of 900000 = {per_10k:.1?} per 10k");
        for (got, want) in per_10k.iter().zip(expected.iter()) {
            assert!(
                (got - *want as f64).abs() <= 1.0,
                "N={n}: {per_10k:.1?} vs {expected:?}"
            );
        }
    }
}

#[test]
fn ten_thousand_random_ids_split_about_84_5_11() {
    let ring = build(Family::Assignment, servers(3));
    let ids = random_ids(10_000, 2024);
    let c = counts_by_id(&ring, &counts(&ring, &ids));
    let pct: Vec<f64> = c.iter().map(|&x| x as f64 / 100.0).collect();
    eprintln!("assignment N=3, 10000 random ids: {c:?} = {pct:.1?} %");
    for (got, want) in pct.iter().zip([84.4, 4.7, 10.9]) {
        assert!((got - want).abs() <= 2.0, "{pct:?}");
    }
}

#[test]
fn h_reaches_87_of_512_slots_for_six_digit_ids() {
    let ring = build(Family::Assignment, servers(3));
    let a = ring.assignment().unwrap();
    let mut hit = vec![false; 512];
    for i in 100_000..=999_999u64 {
        hit[a.request_slot(i)] = true;
    }
    assert_eq!(hit.iter().filter(|&&h| h).count(), 87);
    let reachable = a.reachable_request_slots();
    assert_eq!(reachable.len(), 87);
    assert!(reachable.iter().all(|&s| hit[s]));
}

#[test]
fn virtual_servers_sit_in_a_narrow_window() {
    for (n, top) in [(3u32, 114usize), (6, 141)] {
        let ring = build(Family::Assignment, servers(n));
        let slots: Vec<usize> = ring
            .assignment()
            .unwrap()
            .vnodes()
            .iter()
            .map(|v| v.slot)
            .collect();
        assert_eq!(slots.len(), 9 * n as usize);
        assert_eq!(
            (*slots.iter().min().unwrap(), *slots.iter().max().unwrap()),
            (26, top)
        );
        let mut distinct = slots.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            slots.len(),
            "two virtual servers share a slot"
        );
    }
}

#[test]
fn quadratic_probing_gives_the_same_split_for_small_n() {
    let cfg = RingConfig {
        probe: Probe::Quadratic,
        ..RingConfig::new(Family::Assignment)
    };
    for n in 2..=4 {
        let quad = Ring::build(&cfg, servers(n)).unwrap();
        let lin = build(Family::Assignment, servers(n));
        assert_eq!(all_ids(&quad), all_ids(&lin), "N={n}");
    }
    // With many replicas collisions chain up, and the two rules place differently.
    let slots = |r: &Ring| {
        r.assignment()
            .unwrap()
            .vnodes()
            .iter()
            .map(|v| v.slot)
            .collect::<Vec<_>>()
    };
    let quad = Ring::build(&cfg, servers(20)).unwrap();
    assert_ne!(slots(&quad), slots(&build(Family::Assignment, servers(20))));
}

#[test]
fn capacity_is_56_replicas() {
    let cfg = RingConfig::new(Family::Assignment);
    assert_eq!(Ring::capacity(&cfg), Some(56));
    let full = Ring::build(&cfg, servers(56)).unwrap();
    assert_eq!(full.assignment().unwrap().vnodes().len(), 56 * 9);
    assert_eq!(
        Ring::build(&cfg, servers(57)).unwrap_err(),
        RingError::TooManyMembers { max: 56 }
    );
}

#[test]
fn placement_follows_ids_not_names_or_input_order() {
    // Same ids under other names, listed backwards: every request slot keeps its server id.
    let renamed: Vec<Member> = (1..=4)
        .rev()
        .map(|i| Member::new(format!("zz-{}", 10 - i), i))
        .collect();
    let a = build(Family::Assignment, servers(4));
    let b = build(Family::Assignment, renamed);
    for s in 0..512 {
        let ia = a.members()[a.assignment().unwrap().slot_owner(s).unwrap()].id;
        let ib = b.members()[b.assignment().unwrap().slot_owner(s).unwrap()].id;
        assert_eq!(ia, ib, "slot {s}");
    }
}

#[test]
fn non_numeric_keys_still_route() {
    let ring = build(Family::Assignment, servers(3));
    for key in [
        &b"/home"[..],
        b"T1:P1",
        b"",
        b"12345678901234567890123",
        b"\xff\xfe",
    ] {
        let k = Key::new(key);
        let slot = ring.assignment().unwrap().request_slot(k.numeric());
        assert_eq!(ring.owner(k), ring.assignment().unwrap().slot_owner(slot));
    }
}
