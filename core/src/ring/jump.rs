//! `jump`: jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014).
//!
//! Jump hash maps a key to a bucket number in `0..n` with no table, and moving from n to n + 1
//! buckets moves exactly the keys that the new last bucket takes. The buckets are the members in
//! ascending **id** order, not name order: the control plane hands out the smallest free id, so a
//! new replica usually gets the largest id and becomes the last bucket (a minimal move), and a
//! replica that replaces a removed one refills its hole. Sorting by name would instead put
//! `Server-10` between `Server-1` and `Server-2` and renumber every bucket after it.
//!
//! Removing a member other than the last bucket is inherently not minimal: the buckets after it
//! shift down by one, so each of their keys moves to a neighbour. Keys of the buckets before it do
//! not move. (Swapping the last bucket into the hole would move fewer keys, but the result would
//! depend on the order of past changes, and a ring here is a pure function of its member set.)
//! `jump` is offered for comparison; `maglev` and `rendezvous` have no such caveat.

use super::walk::{Inner, Seen, Walk};
use super::Member;

/// Bucket order: `buckets[b]` is the member index (into the name-sorted members) of bucket `b`.
#[derive(Clone, Debug)]
pub(crate) struct Jump {
    buckets: Vec<u32>,
}

/// Jump consistent hash of `key` over `buckets` buckets (at least 1): Lamping and Veach's
/// algorithm, with its 64-bit LCG and its floating-point jump. Returns a bucket in `0..buckets`.
#[inline]
pub fn jump_hash(mut key: u64, buckets: u64) -> u64 {
    let n = buckets.max(1) as i64;
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // `as i64` saturates, so a huge quotient ends the loop instead of wrapping.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u64
}

impl Jump {
    /// Numbers the buckets by ascending member id.
    pub(crate) fn build(members: &[Member]) -> Jump {
        let mut buckets: Vec<u32> = (0..members.len() as u32).collect();
        buckets.sort_by_key(|&i| members[i as usize].id);
        Jump { buckets }
    }

    /// The member of the key's bucket; `None` when there are no members.
    #[inline]
    pub(crate) fn owner(&self, hash: u64) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let b = jump_hash(hash, self.buckets.len() as u64) as usize;
        self.buckets.get(b).map(|&m| m as usize)
    }

    /// The owner, then the owner among the remaining buckets, and so on: step k yields where the
    /// key would go if the k members before had been removed.
    pub(crate) fn walk(&self, hash: u64) -> Walk<'_> {
        Walk(Inner::Jump(JumpWalk {
            buckets: &self.buckets,
            hash,
            left: self.buckets.len(),
            seen: Seen::new(self.buckets.len()),
        }))
    }

    /// 1/N each: jump hash gives every bucket the same share by construction.
    pub(crate) fn shares(&self) -> Vec<f64> {
        let n = self.buckets.len();
        vec![1.0 / n.max(1) as f64; n]
    }
}

/// The state of a `jump` walk: which buckets are gone, and how many are left.
#[derive(Clone, Debug)]
pub(crate) struct JumpWalk<'a> {
    buckets: &'a [u32],
    hash: u64,
    left: usize,
    seen: Seen,
}

impl Iterator for JumpWalk<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        // The bucket number among the remaining buckets, which keep their relative order.
        let mut r = jump_hash(self.hash, self.left as u64) as usize;
        self.left -= 1;
        for (pos, &m) in self.buckets.iter().enumerate() {
            if self.seen.contains(pos) {
                continue;
            }
            if r == 0 {
                self.seen.insert(pos);
                return Some(m as usize);
            }
            r -= 1;
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_papers_properties() {
        // A bucket in range, and growing n by one either keeps a key or moves it to the new
        // last bucket. Key 0's first jump is to 2^31, so it stays in bucket 0.
        assert_eq!(jump_hash(0, 1), 0);
        assert_eq!(jump_hash(0, 1000), 0);
        for key in [1u64, 42, 0xdead_beef, u64::MAX] {
            let mut prev = 0;
            for n in 1..200 {
                let b = jump_hash(key, n);
                assert!(b < n);
                assert!(
                    b == prev || b == n - 1,
                    "key {key} jumped sideways at n = {n}"
                );
                prev = b;
            }
        }
    }

    #[test]
    fn buckets_follow_ids() {
        let members = vec![
            Member::new("a", 3),
            Member::new("b", 1),
            Member::new("c", 2),
        ];
        assert_eq!(Jump::build(&members).buckets, [1, 2, 0]);
    }

    #[test]
    fn walk_is_the_sequence_of_owners_under_removal() {
        let members: Vec<Member> = (1..=6).map(|i| Member::new(format!("m{i}"), i)).collect();
        let j = Jump::build(&members);
        for h in [3u64, 99, 1 << 50] {
            let w: Vec<usize> = j.walk(h).collect();
            assert_eq!(Some(w[0]), j.owner(h));
            let rest: Vec<Member> = members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != w[0])
                .map(|(_, m)| m.clone())
                .collect();
            let second = &rest[Jump::build(&rest).owner(h).unwrap()];
            assert_eq!(second, &members[w[1]]);
            let mut sorted = w.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4, 5]);
        }
    }
}
