//! Helpers shared by the ring's integration tests: member lists, request ids, and counting.
#![allow(dead_code)] // each test binary uses its own subset

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringlb_core::ring::{Family, Key, Member, Ring, RingConfig};

/// `Server-1` .. `Server-n` with ids 1..n, the assignment's replicas.
pub fn servers(n: u32) -> Vec<Member> {
    (1..=n)
        .map(|i| Member::new(format!("Server-{i}"), i))
        .collect()
}

/// A ring of `family` with its default parameters.
pub fn build(family: Family, members: Vec<Member>) -> Ring {
    Ring::build(&RingConfig::new(family), members).expect("ring builds")
}

/// `count` request ids drawn uniformly from the assignment's 6-digit range, reproducibly.
pub fn random_ids(count: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| rng.random_range(100_000u32..=999_999).to_string())
        .collect()
}

/// Requests per member (in `ring.members()` order) for `keys`.
pub fn counts<S: AsRef<[u8]>>(ring: &Ring, keys: &[S]) -> Vec<u64> {
    let mut c = vec![0u64; ring.members().len()];
    for k in keys {
        c[ring.owner(Key::new(k.as_ref())).expect("non-empty ring")] += 1;
    }
    c
}

/// The busiest member's count over the mean count.
pub fn max_over_mean(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let max = counts.iter().copied().max().unwrap_or(0);
    max as f64 * counts.len() as f64 / total as f64
}

/// The owner's name of every key (`None` on an empty ring).
pub fn owner_names<S: AsRef<[u8]>>(ring: &Ring, keys: &[S]) -> Vec<Option<String>> {
    keys.iter()
        .map(|k| {
            ring.owner(Key::new(k.as_ref()))
                .map(|i| ring.members()[i].name.clone())
        })
        .collect()
}

/// Counts per member reordered by member id, the order the assignment's tables use.
pub fn counts_by_id(ring: &Ring, counts: &[u64]) -> Vec<u64> {
    let mut pairs: Vec<(u32, u64)> = ring
        .members()
        .iter()
        .map(|m| m.id)
        .zip(counts.iter().copied())
        .collect();
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, c)| c).collect()
}
