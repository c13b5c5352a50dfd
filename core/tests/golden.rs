//! Golden placement: pinned key → replica vectors for every family, in
//! `core/test-data/golden.csv`. Any change to a hash, a seed or a placement rule changes where
//! keys go in production, so it must show up here as a failing test and a reviewed data diff.
//!
//! To re-pin after a deliberate change: `RINGLB_BLESS=1 cargo test -p ringlb-core --test golden`.

mod common;

use ringlb_core::ring::{Family, Key, Member, Probe, Ring, RingConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-data/golden.csv")
}

const HEADER: &str = "config,members,key,owner,walk";

/// The configurations pinned: every family's default, and quadratic probing.
fn configs() -> Vec<(&'static str, RingConfig)> {
    let mut v: Vec<(&str, RingConfig)> = Family::ALL
        .iter()
        .map(|&f| (f.as_str(), RingConfig::new(f)))
        .collect();
    v.push((
        "assignment+quadratic",
        RingConfig {
            probe: Probe::Quadratic,
            ..RingConfig::new(Family::Assignment)
        },
    ));
    v
}

/// Member lists as `name:id` words; the last one is unsorted, with gaps in its ids.
const MEMBER_SETS: [&str; 5] = [
    "",
    "Server-1:1",
    "Server-1:1 Server-2:2 Server-3:3",
    "Server-1:1 Server-2:2 Server-3:3 Server-4:4 Server-5:5 Server-6:6",
    "web-a:4 web-b:9 cache-7:2 Server-10:10 Server-2:1",
];

fn parse_members(s: &str) -> Vec<Member> {
    s.split_whitespace()
        .map(|w| {
            let (name, id) = w.rsplit_once(':').expect("name:id");
            Member::new(name, id.parse().expect("numeric id"))
        })
        .collect()
}

/// The owner's name (`-` on an empty ring) and the walk's names joined by `>`.
fn route(ring: &Ring, key: &str) -> (String, String) {
    let name = |i: usize| ring.members()[i].name.clone();
    let owner = ring
        .owner(Key::new(key.as_bytes()))
        .map_or_else(|| "-".to_string(), name);
    let walk: Vec<String> = ring.walk(Key::new(key.as_bytes())).map(name).collect();
    (owner, walk.join(">"))
}

fn bless() {
    let mut keys: Vec<String> = [
        "100000",
        "132574",
        "999999",
        "0",
        "1",
        "42",
        "18446744073709551615",
        "/home",
        "/heartbeat",
        "T1:P1",
        "",
        "user-42",
        "a/b?c=d",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    keys.extend(common::random_ids(20, 7));
    let mut out = String::from(HEADER);
    out.push('\n');
    for (label, cfg) in configs() {
        for set in MEMBER_SETS {
            let ring = Ring::build(&cfg, parse_members(set)).unwrap();
            for key in &keys {
                let (owner, walk) = route(&ring, key);
                out.push_str(&format!("{label},{set},{key},{owner},{walk}\n"));
            }
        }
    }
    std::fs::write(golden_path(), out).unwrap();
}

#[test]
fn placement_matches_the_pinned_vectors() {
    if std::env::var_os("RINGLB_BLESS").is_some() {
        bless();
    }
    let text = std::fs::read_to_string(golden_path()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; pin it with RINGLB_BLESS=1",
            golden_path().display()
        )
    });
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let configs: BTreeMap<&str, RingConfig> = configs().into_iter().collect();
    let mut rings: BTreeMap<(String, String), Ring> = BTreeMap::new();
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.splitn(5, ',').collect();
        let [label, set, key, owner, walk] = f[..] else {
            panic!("line {}: {line:?}", n + 2)
        };
        let ring = rings
            .entry((label.to_string(), set.to_string()))
            .or_insert_with(|| {
                Ring::build(&configs[label], parse_members(set)).expect("pinned ring builds")
            });
        assert_eq!(
            route(ring, key),
            (owner.to_string(), walk.to_string()),
            "{label} [{set}] {key:?}"
        );
        *checked.entry(label.to_string()).or_default() += 1;
    }
    // Every configuration is pinned, over every member set.
    for label in configs.keys() {
        assert!(
            checked.get(*label).copied().unwrap_or(0) >= 5 * 30,
            "{label} is not pinned"
        );
    }
}
