//! The basics through the real binary: replicas answer through the proxy, and requests spread
//! over the ring as each hash family predicts.

mod common;

use std::collections::BTreeMap;

use common::{parallel, Ringlb};

/// 10000 request IDs, uniform in 100000..=999999, from a fixed-seed xorshift.
fn rids(n: usize, seed: u64) -> Vec<u32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            100_000 + (x % 900_000) as u32
        })
        .collect()
}

fn distribution(lb: &Ringlb, ids: Vec<u32>) -> BTreeMap<u32, usize> {
    // Each request is two connections: client → ringlb → replica.
    common::wait_for_conntrack_room(2 * ids.len() as u64);
    let addr = lb.data;
    let ids = std::sync::Arc::new(ids);
    let n = ids.len();
    let answers = parallel(n, 16, move |k| {
        common::raw_get(addr, &format!("/home?rid={}", ids[k]))
            .and_then(|(s, b)| common::server_id(s, &b))
    });
    let mut counts = BTreeMap::new();
    for a in answers {
        *counts
            .entry(a.expect("every request is answered"))
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn serves_home_heartbeat_and_the_replica_error() {
    let lb = Ringlb::start(&[]);
    assert_eq!(lb.replicas(), ["Server-1", "Server-2", "Server-3"]);
    let id = lb.home(123456).unwrap();
    assert!((1..=3).contains(&id));
    let (status, body) = lb.get("/heartbeat").unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = lb.get("/other").unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"message":"<Error> '/other' endpoint does not exist in server replicas","status":"failure"}"#
    );
    // Without a rid, a random ID is drawn: still answered.
    assert!(lb.get("/home").unwrap().0 == 200);
}

#[test]
fn maglev_spreads_10000_requests_evenly() {
    let lb = Ringlb::start(&[]);
    let counts = distribution(&lb, rids(10_000, 0x9e3779b97f4a7c15));
    println!("maglev, 10000 requests: {counts:?}");
    assert_eq!(counts.len(), 3, "all three replicas answer: {counts:?}");
    let max = *counts.values().max().unwrap() as f64;
    let mean = 10_000.0 / 3.0;
    assert!(
        max / mean <= 1.08,
        "max/mean {:.3} over 1.08: {counts:?}",
        max / mean
    );
}

#[test]
fn assignment_map_reproduces_the_published_skew() {
    let lb = Ringlb::start(&["--hash", "assignment"]);
    let counts = distribution(&lb, rids(10_000, 0x2545f4914f6cdd1d));
    println!("assignment, 10000 requests: {counts:?}");
    let share = |id| *counts.get(&id).unwrap_or(&0) as f64 / 10_000.0;
    // The exact figures over all 900000 IDs are 84.4 % / 4.7 % / 10.9 %.
    assert!((share(1) - 0.844).abs() < 0.02, "{counts:?}");
    assert!((share(2) - 0.047).abs() < 0.015, "{counts:?}");
    assert!((share(3) - 0.109).abs() < 0.02, "{counts:?}");
}

#[test]
fn the_same_rid_always_reaches_the_same_replica() {
    let lb = Ringlb::start(&[]);
    for rid in [100000, 424242, 999999] {
        let first = lb.home(rid).unwrap();
        for _ in 0..5 {
            assert_eq!(lb.home(rid).unwrap(), first);
        }
    }
}
