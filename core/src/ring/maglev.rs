//! `maglev`: the Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, §3.4), ringlb's default family.
//!
//! Each member, by name, gets a permutation of the M table entries: it starts at
//! `offset = h1(name) % M` and steps by `skip = h2(name) % (M − 1) + 1`, where h1 and h2 are xxh3
//! under two seeds ([`MAGLEV_OFFSET_SEED`], [`MAGLEV_SKIP_SEED`]). M is prime, so every skip is
//! coprime with M and each permutation visits every entry. Members (sorted by name) take turns
//! claiming the next free entry of their permutation until the table is full; hence each owns
//! ⌊M/N⌋ or ⌈M/N⌉ entries, a share within 1 % of 1/N whenever M > 100·N.
//!
//! A key goes to `table[key.hash() % M]`: one hash and one load. A membership change rebuilds
//! the table; because the permutations do not change, only a small fraction of entries change
//! owner beyond the ones that must (about 0.1 % at N ≤ 6).

use super::key::{stable_hash, MAGLEV_OFFSET_SEED, MAGLEV_SKIP_SEED};
use super::walk::{Inner, ScanWalk, Walk};
use super::Member;
use std::fmt;

/// The marker of an entry no member has claimed yet. The capacity (M / 100 ≤ 50000) keeps every
/// real owner index below it.
const EMPTY: u16 = u16::MAX;

/// A built Maglev table.
#[derive(Clone)]
pub(crate) struct Maglev {
    /// Owner of every entry, as an index into the sorted members; empty for an empty ring.
    table: Vec<u16>,
    /// M, kept apart from `table.len()` so an empty ring still knows its size.
    size: usize,
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The largest member count the table holds: M / 100, the paper's M > 100·N rule (§3.4), under
/// which no member's share differs from another's by more than 1 %. M is prime, hence never a
/// multiple of 100, so the bound is strict.
pub(crate) fn capacity(size: usize) -> usize {
    size / 100
}

/// Offset and skip of a member's permutation of the `size` entries.
fn permutation(name: &str, size: u64) -> (u64, u64) {
    let offset = stable_hash(name.as_bytes(), MAGLEV_OFFSET_SEED) % size;
    let skip = stable_hash(name.as_bytes(), MAGLEV_SKIP_SEED) % (size - 1) + 1;
    (offset, skip)
}

impl Maglev {
    /// Fills a table of prime `size` for `members` (sorted, at most [`capacity`] of them).
    pub(crate) fn build(size: usize, members: &[Member]) -> Maglev {
        if members.is_empty() || size < 2 {
            return Maglev {
                table: Vec::new(),
                size,
            };
        }
        let m = size as u64;
        let (mut cursor, skip): (Vec<u64>, Vec<u64>) =
            members.iter().map(|mb| permutation(&mb.name, m)).unzip();
        let mut table = vec![EMPTY; size];
        let mut filled = 0usize;
        'fill: loop {
            for (i, c) in cursor.iter_mut().enumerate() {
                // Advance member i along its permutation to its next free entry. It exists because
                // the table is not full and the permutation visits every entry.
                let mut pos = *c;
                while table[pos as usize] != EMPTY {
                    pos += skip[i];
                    if pos >= m {
                        pos -= m;
                    }
                }
                table[pos as usize] = i as u16;
                pos += skip[i];
                if pos >= m {
                    pos -= m;
                }
                *c = pos;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Maglev { table, size }
    }

    /// The table entry a key hash falls on.
    #[inline]
    fn entry(&self, hash: u64) -> usize {
        (hash % self.size as u64) as usize
    }

    /// The owner of a key hash; `None` on an empty table.
    #[inline]
    pub(crate) fn owner(&self, hash: u64) -> Option<usize> {
        self.table.get(self.entry(hash)).map(|&o| usize::from(o))
    }

    /// The owner, then the next distinct members met scanning the entries after the key's.
    pub(crate) fn walk(&self, hash: u64, n: usize) -> Walk<'_> {
        let start = if self.table.is_empty() {
            0
        } else {
            self.entry(hash)
        };
        Walk(Inner::Table(ScanWalk::new(&self.table, start, n)))
    }

    /// Entries per member divided by M.
    pub(crate) fn shares(&self, n: usize) -> Vec<f64> {
        let mut counts = vec![0u64; n];
        for &o in &self.table {
            if let Some(c) = counts.get_mut(usize::from(o)) {
                *c += 1;
            }
        }
        counts
            .into_iter()
            .map(|c| c as f64 / self.size as f64)
            .collect()
    }

    /// The owner of every entry, for analysis and tests.
    pub(crate) fn table(&self) -> &[u16] {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u32) -> Vec<Member> {
        let mut v: Vec<Member> = (1..=n)
            .map(|i| Member::new(format!("Server-{i}"), i))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn entries_split_evenly() {
        // Every entry is owned, and owners differ in entry count by at most one.
        for n in 1..=7 {
            let t = Maglev::build(101, &members(n));
            assert!(t.table().iter().all(|&o| usize::from(o) < n as usize));
            let shares = t.shares(n as usize);
            let counts: Vec<u64> = shares.iter().map(|s| (s * 101.0).round() as u64).collect();
            assert_eq!(counts.iter().sum::<u64>(), 101);
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{counts:?}");
        }
    }

    #[test]
    fn permutations_stay_in_range() {
        for name in ["", "a", "Server-1", "a much longer replica name"] {
            let (offset, skip) = permutation(name, 65537);
            assert!(offset < 65537 && (1..65537).contains(&skip));
        }
    }

    #[test]
    fn empty_table_owns_nothing() {
        let t = Maglev::build(65537, &[]);
        assert_eq!(t.owner(42), None);
        assert_eq!(t.walk(42, 0).count(), 0);
        assert!(t.shares(0).is_empty());
    }

    #[test]
    fn walk_starts_at_the_owner() {
        let t = Maglev::build(65537, &members(5));
        for h in [0u64, 1, 65536, 65537, u64::MAX] {
            let w: Vec<usize> = t.walk(h, 5).collect();
            assert_eq!(Some(w[0]), t.owner(h));
            let mut sorted = w.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4]);
        }
    }
}
