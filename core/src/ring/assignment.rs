//! `assignment`: exactly the consistent-hash map of the "Customizable Load Balancer" assignment.
//!
//! - M slots (`--slots`, 512) and K virtual servers per replica (`--vnodes`, 9 = log2 512).
//! - Virtual server j (0..K−1) of the replica with id i goes to slot Φ(i, j) mod M, with
//!   Φ(i, j) = i² + j² + 2j + 25. If that slot is taken it probes: linearly (slot+1, slot+2, …) or
//!   quadratically (slot+1, slot+4, slot+9, …, then linearly if the squares cycle without a free
//!   slot). Replicas are placed in ascending id order, so which of two colliding virtual servers
//!   keeps its slot does not depend on the order replicas were listed in: the smaller id wins.
//! - A request with id i goes to slot H(i) mod M, H(i) = i² + 2i + 17, and from there clockwise to
//!   the first occupied slot (at or after it, wrapping).
//!
//! H and Φ are evaluated exactly modulo M: i and j are reduced mod M first and every product is
//! taken mod M, so the slot equals the mathematical value of the polynomial mod M for every id,
//! however large. When M divides 2⁶⁴ (any power of two, such as 512) this is also what wrapping
//! u64 arithmetic gives.
//!
//! The map is faithful, not good: H(i) = (i+1)² + 16 takes only 87 of the 512 slots (the squares
//! mod 512), and with ids 1..N all virtual servers sit in slots 26..141, so the replica owning the
//! wrap-around arc gets most requests (about 84 % / 5 % / 11 % at N = 3). [`Assignment`] exposes
//! the slots for the analysis that shows it.
//!
//! A ring is rebuilt from its member set, so when a removed replica's virtual server had pushed
//! another one off its home slot, that one moves back home and a few keys beside it change owner
//! too. Adding or removing the replica with the largest id never does that.

use super::config::{Poly, Probe};
use super::walk::{Inner, ScanWalk, Walk};
use super::Member;

/// Marker of a slot without a virtual server.
const FREE: u32 = u32::MAX;

/// One placed virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vnode {
    /// Its replica, as an index into [`Ring::members`](super::Ring::members).
    pub member: usize,
    /// Its virtual replica number j, 0..K−1.
    pub j: u32,
    /// Φ(i, j) mod M: where it wanted to go.
    pub home: usize,
    /// Where it went after probing (equal to `home` unless that slot was taken).
    pub slot: usize,
}

/// The `assignment` family's map, with the diagnostics the analysis needs: where each virtual
/// server went, which request slot an id falls on, and which request slots H can reach at all.
#[derive(Clone, Debug)]
pub struct Assignment {
    slots: usize,
    hash: RequestHash,
    /// Virtual servers in placement order (ascending id, then j).
    vnodes: Vec<Vnode>,
    /// Owners of the occupied slots, in slot order.
    occupied: Vec<u32>,
    /// For every request slot, the index into `occupied` of the first occupied slot at or after
    /// it, wrapping; empty when nothing is placed.
    first: Vec<u32>,
}

/// The largest replica count the map holds: ⌊M / K⌋ (56 for 512 / 9), so that every virtual
/// server finds a slot of its own.
pub(crate) fn capacity(slots: usize, vnodes: u32) -> usize {
    slots / (vnodes.max(1) as usize)
}

/// Arithmetic modulo M ≤ 2²⁴ ([`MAX_SLOTS`](super::MAX_SLOTS)): a mask when M is a power of two
/// (the default 512), a division otherwise. Operands below M keep every product below 2⁴⁸.
#[derive(Clone, Copy, Debug)]
struct Modulus {
    m: u64,
    pow2: bool,
}

impl Modulus {
    fn new(slots: usize) -> Self {
        let m = slots.max(1) as u64;
        Modulus {
            m,
            pow2: m.is_power_of_two(),
        }
    }

    #[inline]
    fn reduce(self, x: u64) -> u64 {
        if self.pow2 {
            x & (self.m - 1)
        } else {
            x % self.m
        }
    }

    /// `a · b mod M` for `a, b < M`.
    #[inline]
    fn mul(self, a: u64, b: u64) -> u64 {
        self.reduce(a * b)
    }
}

/// H with its coefficients reduced modulo M once, so a lookup costs a few multiplications.
#[derive(Clone, Copy, Debug)]
struct RequestHash {
    m: Modulus,
    h: [u64; 3],
}

impl RequestHash {
    fn new(poly: &Poly, slots: usize) -> Self {
        let m = Modulus::new(slots);
        RequestHash {
            m,
            h: poly.h.map(|c| m.reduce(c)),
        }
    }

    /// H(i) mod M. Each term is below 2⁴⁸, so their sum cannot overflow before the last reduction.
    #[inline]
    fn slot(&self, i: u64) -> usize {
        let (m, [a, b, c]) = (self.m, self.h);
        let r = m.reduce(i);
        m.reduce(a * m.mul(r, r) + b * r + c) as usize
    }
}

/// H(i) mod M, exact for every i (see the module docs).
pub fn request_slot(poly: &Poly, slots: usize, i: u64) -> usize {
    RequestHash::new(poly, slots).slot(i)
}

/// Φ(i, j) mod M, exact for every i and j.
pub fn vnode_slot(poly: &Poly, slots: usize, i: u64, j: u64) -> usize {
    let m = Modulus::new(slots);
    let (ri, rj) = (m.reduce(i), m.reduce(j));
    let [a, b, c, d] = poly.phi.map(|x| m.reduce(x));
    m.reduce(a * m.mul(ri, ri) + b * m.mul(rj, rj) + c * rj + d) as usize
}

/// The free slot a virtual server whose home is `home` gets under `probe`; `None` when the map
/// is full (the capacity check rules that out).
fn probe_slot(owner: &[u32], home: usize, probe: Probe) -> Option<usize> {
    let m = owner.len();
    let free = |s: usize| owner[s] == FREE;
    if probe == Probe::Quadratic {
        // t² mod M repeats with period at most M, so t < M visits every slot the squares reach.
        let square = |t: usize| ((t as u64 * t as u64) % m as u64) as usize;
        if let Some(s) = (0..m).map(|t| (home + square(t)) % m).find(|&s| free(s)) {
            return Some(s);
        }
    }
    (0..m).map(|t| (home + t) % m).find(|&s| free(s))
}

impl Assignment {
    /// Places K virtual servers for each of `members` (sorted by name), in ascending id order.
    pub(crate) fn build(
        slots: usize,
        vnodes: u32,
        probe: Probe,
        poly: Poly,
        members: &[Member],
    ) -> Assignment {
        let m = slots.max(1);
        let mut owner = vec![FREE; m];
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&k| members[k].id);
        let mut placed = Vec::with_capacity(members.len() * vnodes as usize);
        for k in order {
            let i = u64::from(members[k].id);
            for j in 0..vnodes {
                let home = vnode_slot(&poly, m, i, u64::from(j));
                if let Some(slot) = probe_slot(&owner, home, probe) {
                    owner[slot] = k as u32;
                    placed.push(Vnode {
                        member: k,
                        j,
                        home,
                        slot,
                    });
                }
            }
        }
        let occupied: Vec<u32> = owner.iter().copied().filter(|&o| o != FREE).collect();
        let mut first = Vec::new();
        if !occupied.is_empty() {
            first = vec![0u32; m];
            // Walking down from the top, `next` is the index of the first occupied slot above;
            // past the top it wraps to the lowest occupied slot, index 0.
            let mut next = 0u32;
            let mut idx = occupied.len() as u32;
            for s in (0..m).rev() {
                if owner[s] != FREE {
                    idx -= 1;
                    next = idx;
                }
                first[s] = next;
            }
        }
        Assignment {
            slots: m,
            hash: RequestHash::new(&poly, m),
            vnodes: placed,
            occupied,
            first,
        }
    }

    /// M, the number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Every placed virtual server, in placement order (ascending id, then j).
    pub fn vnodes(&self) -> &[Vnode] {
        &self.vnodes
    }

    /// The request slot of request id `i`: H(i) mod M.
    #[inline]
    pub fn request_slot(&self, i: u64) -> usize {
        self.hash.slot(i)
    }

    /// The request slots H can reach, ascending. H(i) mod M depends only on i mod M, so these are
    /// the slots any run of at least M consecutive ids reaches (87 of 512 for the assignment's H).
    pub fn reachable_request_slots(&self) -> Vec<usize> {
        let mut hit = vec![false; self.slots];
        for r in 0..self.slots as u64 {
            hit[self.request_slot(r)] = true;
        }
        (0..self.slots).filter(|&s| hit[s]).collect()
    }

    /// The replica that serves request slot `slot`; `None` when nothing is placed.
    pub fn slot_owner(&self, slot: usize) -> Option<usize> {
        let idx = *self.first.get(slot % self.slots)?;
        self.occupied.get(idx as usize).map(|&o| o as usize)
    }

    /// The owner of request id `i`.
    #[inline]
    pub(crate) fn owner(&self, i: u64) -> Option<usize> {
        self.slot_owner(self.request_slot(i))
    }

    /// The owner, then the next distinct replicas clockwise.
    pub(crate) fn walk(&self, i: u64, n: usize) -> Walk<'_> {
        let start = self
            .first
            .get(self.request_slot(i))
            .map_or(0, |&x| x as usize);
        Walk(Inner::Points(ScanWalk::new(&self.occupied, start, n)))
    }

    /// The fraction of the M request slots each replica serves. Only the slots H reaches ever
    /// receive requests (see [`Assignment::reachable_request_slots`]), so this is the share of the
    /// slot space, not of real traffic.
    pub(crate) fn shares(&self, n: usize) -> Vec<f64> {
        let mut counts = vec![0u64; n];
        for s in 0..self.slots {
            if let Some(c) = self.slot_owner(s).and_then(|o| counts.get_mut(o)) {
                *c += 1;
            }
        }
        counts
            .into_iter()
            .map(|c| c as f64 / self.slots as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: u32, probe: Probe) -> Assignment {
        let mut members: Vec<Member> = (1..=n)
            .map(|i| Member::new(format!("Server-{i}"), i))
            .collect();
        members.sort();
        Assignment::build(512, 9, probe, Poly::ASSIGNMENT, &members)
    }

    #[test]
    fn polynomials_match_the_assignment() {
        let p = Poly::ASSIGNMENT;
        assert_eq!(
            request_slot(&p, 512, 132_574),
            ((132_574u64 + 1).pow(2) + 16) as usize % 512
        );
        assert_eq!(vnode_slot(&p, 512, 1, 0), 26);
        assert_eq!(vnode_slot(&p, 512, 3, 8), 9 + 64 + 16 + 25);
        assert_eq!(vnode_slot(&p, 512, 23, 0), 42); // 23² + 25 = 554 wraps
                                                    // Exact modulo M even where i² overflows a u64; equal to wrapping arithmetic as 512 | 2^64.
        let i = u64::MAX - 3;
        let wrapping = i
            .wrapping_mul(i)
            .wrapping_add(i.wrapping_mul(2))
            .wrapping_add(17);
        assert_eq!(request_slot(&p, 512, i), (wrapping % 512) as usize);
    }

    #[test]
    fn linear_probing_moves_a_collision_to_the_next_slot() {
        // Φ(1, 1) = 29 = Φ(2, 0): id 1 is placed first and keeps 29; id 2's j = 0 goes to 30.
        let a = build(2, Probe::Linear);
        let v = a
            .vnodes()
            .iter()
            .find(|v| v.home == 29 && v.slot != 29)
            .unwrap();
        assert_eq!((v.j, v.slot), (0, 30));
    }

    #[test]
    fn quadratic_probing_falls_back_to_linear_when_full() {
        let owner = {
            let mut o = vec![0u32; 8];
            o[5] = FREE;
            o
        };
        // From home 0 the squares mod 8 reach only 0, 1 and 4; slot 5 is found linearly.
        assert_eq!(probe_slot(&owner, 0, Probe::Quadratic), Some(5));
        assert_eq!(probe_slot(&[0u32; 4], 0, Probe::Linear), None);
    }

    #[test]
    fn lookup_is_the_first_occupied_slot_clockwise() {
        let a = build(3, Probe::Linear);
        let occupied: Vec<usize> = {
            let mut s: Vec<usize> = a.vnodes().iter().map(|v| v.slot).collect();
            s.sort_unstable();
            s
        };
        assert_eq!((occupied[0], *occupied.last().unwrap()), (26, 114));
        for s in 0..512 {
            let next = occupied
                .iter()
                .find(|&&o| o >= s)
                .copied()
                .unwrap_or(occupied[0]);
            let v = a.vnodes().iter().find(|v| v.slot == next).unwrap();
            assert_eq!(a.slot_owner(s), Some(v.member), "slot {s}");
        }
    }

    #[test]
    fn empty_map_owns_nothing() {
        let a = Assignment::build(512, 9, Probe::Linear, Poly::ASSIGNMENT, &[]);
        assert_eq!(a.owner(123_456), None);
        assert_eq!(a.walk(123_456, 0).count(), 0);
        assert_eq!(a.reachable_request_slots().len(), 87);
    }
}
