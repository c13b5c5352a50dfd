//! `ring`: the classic consistent-hash ring (Karger et al. 1997, in the libketama / nginx style).
//!
//! Each member gets V points (`--vnodes`, default 160): point j of member `name` is the xxh3-64
//! (seed [`RING_POINT_SEED`]) of the label `"<name>#<j>"`, j = 0..V−1. The points are sorted; a key
//! goes to the first point at or after its hash, wrapping past the largest point to the smallest.
//! Adding a member only inserts its points and removing one only deletes them, so keys move only to
//! or from that member. Two points with equal hashes (a 2⁻⁶⁴ event) are ordered by member name.

use super::key::{stable_hash, RING_POINT_SEED};
use super::walk::{Inner, ScanWalk, Walk};
use super::Member;
use std::fmt;
use std::io::Write;

/// A built ring: parallel arrays of sorted points and their owners.
#[derive(Clone)]
pub(crate) struct HashRing {
    /// Point hashes, ascending.
    points: Vec<u64>,
    /// `owners[k]` owns `points[k]` (an index into the sorted members).
    owners: Vec<u32>,
}

impl fmt::Debug for HashRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashRing")
            .field("points", &self.points.len())
            .finish_non_exhaustive()
    }
}

/// The hash of point `j` of member `name`: xxh3 of `"<name>#<j>"`.
pub(crate) fn point(name: &str, j: u32) -> u64 {
    let mut label = Vec::with_capacity(name.len() + 11);
    label.extend_from_slice(name.as_bytes());
    // Writing into a Vec cannot fail.
    let _ = write!(label, "#{j}");
    stable_hash(&label, RING_POINT_SEED)
}

impl HashRing {
    /// Places `vnodes` points for each of `members` (sorted by name).
    pub(crate) fn build(vnodes: u32, members: &[Member]) -> HashRing {
        let mut all: Vec<(u64, u32)> = Vec::with_capacity(members.len() * vnodes as usize);
        for (i, m) in members.iter().enumerate() {
            all.extend((0..vnodes).map(|j| (point(&m.name, j), i as u32)));
        }
        // Members are sorted by name, so the tie-break by index is a tie-break by name.
        all.sort_unstable();
        let (points, owners) = all.into_iter().unzip();
        HashRing { points, owners }
    }

    /// The index of the first point at or after `hash`, wrapping to 0.
    #[inline]
    fn successor(&self, hash: u64) -> usize {
        let k = self.points.partition_point(|&p| p < hash);
        if k == self.points.len() {
            0
        } else {
            k
        }
    }

    /// The owner of a key hash; `None` on an empty ring.
    #[inline]
    pub(crate) fn owner(&self, hash: u64) -> Option<usize> {
        self.owners.get(self.successor(hash)).map(|&o| o as usize)
    }

    /// The owner, then the next distinct members clockwise.
    pub(crate) fn walk(&self, hash: u64, n: usize) -> Walk<'_> {
        let start = if self.points.is_empty() {
            0
        } else {
            self.successor(hash)
        };
        Walk(Inner::Points(ScanWalk::new(&self.owners, start, n)))
    }

    /// Each member's arcs of the 2⁶⁴ hash space: the arc of a point runs from just after the
    /// previous point up to and including it; the first point's arc wraps around zero.
    pub(crate) fn shares(&self, n: usize) -> Vec<f64> {
        let mut arcs = vec![0u128; n];
        let len = self.points.len();
        for k in 0..len {
            let prev = if k == 0 {
                self.points[len - 1]
            } else {
                self.points[k - 1]
            };
            let arc = if k == 0 {
                (1u128 << 64) - u128::from(prev) + u128::from(self.points[0])
            } else {
                u128::from(self.points[k] - prev)
            };
            if let Some(a) = arcs.get_mut(self.owners[k] as usize) {
                *a += arc;
            }
        }
        let total = (1u128 << 64) as f64;
        arcs.into_iter()
            .map(|a| a.min(1u128 << 64) as f64 / total)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_is_xxh3_of_the_label() {
        assert_eq!(
            point("Server-1", 7),
            xxhash_rust::xxh3::xxh3_64(b"Server-1#7")
        );
        let ring = HashRing::build(1, &[Member::new("Server-1", 1)]);
        assert_eq!(ring.points, [point("Server-1", 0)]);
    }

    #[test]
    fn successor_wraps() {
        let ring = HashRing {
            points: vec![10, 20, 30],
            owners: vec![0, 1, 2],
        };
        assert_eq!(ring.owner(0), Some(0));
        assert_eq!(ring.owner(10), Some(0));
        assert_eq!(ring.owner(11), Some(1));
        assert_eq!(ring.owner(30), Some(2));
        assert_eq!(ring.owner(31), Some(0));
        assert_eq!(ring.owner(u64::MAX), Some(0));
        assert_eq!(ring.walk(25, 3).collect::<Vec<_>>(), [2, 0, 1]);
        let s = ring.shares(3);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(s[0] > 0.99);
    }

    #[test]
    fn one_point_owns_everything_and_empty_owns_nothing() {
        let ring = HashRing::build(1, &[Member::new("solo", 1)]);
        assert_eq!(ring.shares(1), [1.0]);
        let empty = HashRing::build(160, &[]);
        assert_eq!(empty.owner(5), None);
        assert_eq!(empty.walk(5, 0).count(), 0);
    }
}
