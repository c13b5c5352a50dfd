//! `rendezvous`: highest random weight (Thaler and Ravishankar, 1998).
//!
//! Every member scores every key: `score = fmix64(key.hash() ^ name_hash)`, where `name_hash` is the
//! xxh3-64 of the member's name under [`RENDEZVOUS_SEED`] and `fmix64` is MurmurHash3's finaliser.
//! The key goes to the highest score (equal scores, a 2⁻⁶⁴ event, go to the name that sorts first).
//! A member's scores do not depend on the other members, so adding one moves only the keys it now
//! wins and removing one moves only the keys it held: disruption is exactly minimal for any change.
//! The price is an O(N) lookup, cheap at the few replicas ringlb runs.

use super::key::{fmix64, stable_hash, RENDEZVOUS_SEED};
use super::walk::{Inner, Walk};
use super::Member;

/// Members' name hashes, in member order.
#[derive(Clone, Debug)]
pub(crate) struct Rendezvous {
    names: Vec<u64>,
}

/// The weight of a member (by its name hash) for a key hash.
#[inline]
pub(crate) fn score(key_hash: u64, name_hash: u64) -> u64 {
    fmix64(key_hash ^ name_hash)
}

impl Rendezvous {
    /// Hashes the names of `members` (sorted by name).
    pub(crate) fn build(members: &[Member]) -> Rendezvous {
        let names = members
            .iter()
            .map(|m| stable_hash(m.name.as_bytes(), RENDEZVOUS_SEED))
            .collect();
        Rendezvous { names }
    }

    /// The member with the highest score; `None` when there are no members.
    #[inline]
    pub(crate) fn owner(&self, hash: u64) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, &nh) in self.names.iter().enumerate() {
            let s = score(hash, nh);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Members by descending score: each is the owner once those before it are gone.
    pub(crate) fn walk(&self, hash: u64) -> Walk<'_> {
        let mut ranked: Vec<(u64, usize)> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, &nh)| (score(hash, nh), i))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let order: Vec<usize> = ranked.into_iter().map(|(_, i)| i).collect();
        Walk(Inner::Ranked(order.into_iter()))
    }

    /// 1/N each: with no table there is nothing to count, and over the 2⁶⁴ key hashes a finalised
    /// score makes every member the winner of 1/N of them (to within about 2⁻³²).
    pub(crate) fn shares(&self) -> Vec<f64> {
        let n = self.names.len();
        vec![1.0 / n.max(1) as f64; n]
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
    fn owner_is_the_highest_score_and_walk_agrees() {
        let r = Rendezvous::build(&members(5));
        for h in [0u64, 7, 1 << 40, u64::MAX] {
            let w: Vec<usize> = r.walk(h).collect();
            assert_eq!(w.len(), 5);
            assert_eq!(Some(w[0]), r.owner(h));
            let scores: Vec<u64> = w.iter().map(|&i| score(h, r.names[i])).collect();
            assert!(scores.windows(2).all(|p| p[0] >= p[1]));
        }
    }

    #[test]
    fn removing_the_winner_promotes_the_runner_up() {
        let all = members(4);
        let r = Rendezvous::build(&all);
        let h = 0xdead_beef;
        let w: Vec<usize> = r.walk(h).collect();
        let rest: Vec<Member> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != w[0])
            .map(|(_, m)| m.clone())
            .collect();
        let r2 = Rendezvous::build(&rest);
        let second = &rest[r2.owner(h).unwrap()];
        assert_eq!(second, &all[w[1]]);
    }

    #[test]
    fn empty_owns_nothing() {
        let r = Rendezvous::build(&[]);
        assert_eq!(r.owner(1), None);
        assert_eq!(r.walk(1).count(), 0);
        assert!(r.shares().is_empty());
    }
}
