//! Lookup and rebuild cost of every ring family at N = 6.
//!
//! Goals (hash-anchors §5, on a shared 2-core VM): a `maglev` lookup, including hashing the key,
//! ≤ 10 ns; a `maglev` rebuild at M = 65537 ≤ 2 ms. Run with
//! `cargo bench -p ringlb-core --bench ring`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringlb_core::ring::{Family, Key, Member, Ring, RingConfig};
use std::hint::black_box;
use std::time::Duration;

/// Keys cycled through by the lookup benchmarks: enough distinct 6-digit ids that the branch
/// predictor cannot learn them, few enough to stay in cache (the table is the subject).
const KEYS: usize = 4096;

fn members(n: u32) -> Vec<Member> {
    (1..=n)
        .map(|i| Member::new(format!("Server-{i}"), i))
        .collect()
}

fn keys() -> Vec<String> {
    // A fixed LCG walk over the 6-digit range, so runs compare like with like.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..KEYS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (100_000 + (x >> 33) % 900_000).to_string()
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("lookup");
    for family in Family::ALL {
        let ring = Ring::build(&RingConfig::new(family), members(6)).unwrap();
        group.bench_function(BenchmarkId::new(family.as_str(), "N=6"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                ring.owner(Key::new(black_box(keys[i].as_bytes())))
            })
        });
    }
    let ring = Ring::build(&RingConfig::default(), members(6)).unwrap();
    group.bench_function(BenchmarkId::new("maglev-walk-2", "N=6"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            ring.walk(Key::new(black_box(keys[i].as_bytes())))
                .take(2)
                .sum::<usize>()
        })
    });
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(20);
    for family in Family::ALL {
        let cfg = RingConfig::new(family);
        let m = members(6);
        group.bench_function(BenchmarkId::new(family.as_str(), "N=6"), |b| {
            b.iter(|| Ring::build(&cfg, black_box(m.clone())).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = lookup, rebuild
}
criterion_main!(benches);
