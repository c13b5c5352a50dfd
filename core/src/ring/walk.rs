//! Failover order: the iterator [`Ring::walk`](super::Ring::walk) returns.
//!
//! A walk yields every member exactly once, owner first. The table families (`maglev`, `ring`,
//! `assignment`) scan their table clockwise from the key's entry and yield each member the first
//! time they meet it; `rendezvous` and `jump` yield the successive owners of the key as the members
//! before are taken away. Routing a connection usually stops after the first or second member, so
//! the walk is lazy and allocates nothing for rings of up to 128 members.

use super::jump::JumpWalk;

/// The set of members a walk has already yielded: a 128-bit mask for the usual small rings, a
/// heap bitmap beyond that.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    small: u128,
    large: Vec<u64>,
}

impl Seen {
    /// An empty set over members `0..n`.
    pub(crate) fn new(n: usize) -> Self {
        let large = if n > 128 {
            vec![0; n.div_ceil(64)]
        } else {
            Vec::new()
        };
        Seen { small: 0, large }
    }

    /// Adds `i`; true when it was not there yet.
    #[inline]
    pub(crate) fn insert(&mut self, i: usize) -> bool {
        if self.large.is_empty() {
            let bit = 1u128 << (i & 127);
            let fresh = self.small & bit == 0;
            self.small |= bit;
            fresh
        } else {
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            let Some(w) = self.large.get_mut(word) else {
                return false;
            };
            let fresh = *w & bit == 0;
            *w |= bit;
            fresh
        }
    }

    /// Whether `i` is in the set.
    #[inline]
    pub(crate) fn contains(&self, i: usize) -> bool {
        if self.large.is_empty() {
            self.small & (1u128 << (i & 127)) != 0
        } else {
            self.large
                .get(i / 64)
                .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
        }
    }
}

/// A clockwise scan over a table of member indices, from `start`, wrapping once. Members the table
/// never mentions (none, by construction, but the walk promises every member) follow in index order.
#[derive(Clone, Debug)]
pub(crate) struct ScanWalk<'a, T> {
    owners: &'a [T],
    pos: usize,
    scanned: usize,
    n: usize,
    yielded: usize,
    rest: usize,
    seen: Seen,
}

impl<'a, T: Copy + Into<u64>> ScanWalk<'a, T> {
    /// A walk over `n` members through `owners`, starting at entry `start`.
    pub(crate) fn new(owners: &'a [T], start: usize, n: usize) -> Self {
        let pos = if owners.is_empty() {
            0
        } else {
            start % owners.len()
        };
        ScanWalk {
            owners,
            pos,
            scanned: 0,
            n,
            yielded: 0,
            rest: 0,
            seen: Seen::new(n),
        }
    }
}

impl<T: Copy + Into<u64>> Iterator for ScanWalk<'_, T> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.yielded == self.n {
            return None;
        }
        while self.scanned < self.owners.len() {
            let m = self.owners[self.pos].into() as usize;
            self.scanned += 1;
            self.pos += 1;
            if self.pos == self.owners.len() {
                self.pos = 0;
            }
            if m < self.n && self.seen.insert(m) {
                self.yielded += 1;
                return Some(m);
            }
        }
        while self.rest < self.n {
            let m = self.rest;
            self.rest += 1;
            if self.seen.insert(m) {
                self.yielded += 1;
                return Some(m);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.n - self.yielded;
        (left, Some(left))
    }
}

/// The failover order of one key: every member exactly once, owner first.
#[derive(Clone, Debug)]
pub(crate) struct Walk<'a>(pub(crate) Inner<'a>);

/// One walk per family shape.
#[derive(Clone, Debug)]
pub(crate) enum Inner<'a> {
    /// `maglev`: its table of 16-bit owners.
    Table(ScanWalk<'a, u16>),
    /// `ring` and `assignment`: their sorted points' owners.
    Points(ScanWalk<'a, u32>),
    /// `rendezvous`: members by descending score, computed up front.
    Ranked(std::vec::IntoIter<usize>),
    /// `jump`: successive owners as members are removed.
    Jump(JumpWalk<'a>),
}

impl Iterator for Walk<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        match &mut self.0 {
            Inner::Table(w) => w.next(),
            Inner::Points(w) => w.next(),
            Inner::Ranked(w) => w.next(),
            Inner::Jump(w) => w.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Inner::Table(w) => w.size_hint(),
            Inner::Points(w) => w.size_hint(),
            Inner::Ranked(w) => w.size_hint(),
            Inner::Jump(w) => w.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_small_and_large() {
        for n in [3, 128, 129, 1000] {
            let mut s = Seen::new(n);
            for i in 0..n {
                assert!(!s.contains(i));
                assert!(s.insert(i));
                assert!(!s.insert(i));
                assert!(s.contains(i));
            }
        }
    }

    #[test]
    fn scan_yields_each_member_once_even_if_the_table_misses_one() {
        let table: [u32; 5] = [2, 2, 0, 2, 0];
        let order: Vec<usize> = ScanWalk::new(&table, 3, 4).collect();
        assert_eq!(order, [2, 0, 1, 3]);
        let none: Vec<usize> = ScanWalk::<u32>::new(&[], 0, 0).collect();
        assert!(none.is_empty());
    }
}
