//! Consistent-hash ring families: which replica owns a key, and where it fails over to.
//!
//! A [`Ring`] is a pure, immutable value. It is built once per membership change from the replica
//! list (sorted by name first, so the input order never matters), then only read: `owner(key)`
//! for the replica a connection goes to, `walk(key)` for the failover order. It does no I/O and
//! holds no lock, so the data plane can share it behind an `Arc` and the control plane can swap in
//! a new one atomically.
//!
//! Every family places replicas with one named, stable hash, xxh3-64 ([`PLACEMENT_HASH`]); golden
//! tests (`core/tests/golden.rs`, data in `core/test-data/`) pin key → replica placement, so a
//! change of placement is a deliberate, visible act.
//!
//! # Layout
//!
//! - `key.rs`: [`Member`], [`Key`] and the stable hash with its seeds.
//! - `config.rs`: [`Family`], [`RingConfig`] and its limits, [`RingError`].
//! - one file per family: `maglev.rs` (default), `hashring.rs` (`ring`), `rendezvous.rs`,
//!   `jump.rs`, `assignment.rs` (the assignment's exact map, with its diagnostics).
//! - `walk.rs`: the failover iterator shared by the families.

mod assignment;
mod config;
mod hashring;
mod jump;
mod key;
mod maglev;
mod rendezvous;
mod walk;

pub use assignment::{request_slot, vnode_slot, Assignment, Vnode};
pub use config::{
    is_prime, Family, Poly, Probe, RingConfig, RingError, DEFAULT_ASSIGNMENT_VNODES,
    DEFAULT_RING_VNODES, DEFAULT_SLOTS, DEFAULT_TABLE_SIZE, MAX_RING_VNODES, MAX_SLOTS,
    MAX_TABLE_SIZE, MIN_TABLE_SIZE,
};
pub use jump::jump_hash;
pub use key::{
    fmix64, stable_hash, Key, Member, KEY_SEED, MAGLEV_OFFSET_SEED, MAGLEV_SKIP_SEED,
    PLACEMENT_HASH, RENDEZVOUS_SEED, RING_POINT_SEED,
};

use std::collections::HashSet;

/// The built structure of one family.
#[derive(Clone, Debug)]
enum Table {
    Maglev(maglev::Maglev),
    Ring(hashring::HashRing),
    Rendezvous(rendezvous::Rendezvous),
    Jump(jump::Jump),
    Assignment(assignment::Assignment),
}

/// An immutable consistent-hash ring: the replicas, sorted by name, and one family's structure
/// over them. Rebuild it (with [`Ring::build`]) on every membership change; never mutate it.
#[derive(Clone, Debug)]
pub struct Ring {
    members: Vec<Member>,
    table: Table,
}

impl Ring {
    /// Builds a ring of `cfg.family` over `members`.
    ///
    /// The members are sorted by name first, so the result does not depend on their order. It
    /// fails when the configuration is out of range ([`RingConfig::validate`]), when two members
    /// share a name or an id, or when there are more members than [`Ring::capacity`]. An empty
    /// member list always builds (given a valid configuration) and owns no key.
    pub fn build(cfg: &RingConfig, mut members: Vec<Member>) -> Result<Ring, RingError> {
        cfg.validate()?;
        members.sort();
        if let Some(w) = members.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(RingError::Duplicate(format!("name {:?}", w[0].name)));
        }
        let mut ids = HashSet::with_capacity(members.len());
        if let Some(m) = members.iter().find(|m| !ids.insert(m.id)) {
            return Err(RingError::Duplicate(format!("id {} ({:?})", m.id, m.name)));
        }
        if let Some(max) = Ring::capacity(cfg) {
            if members.len() > max {
                return Err(RingError::TooManyMembers { max });
            }
        }
        let table = match cfg.family {
            Family::Maglev => Table::Maglev(maglev::Maglev::build(cfg.table_size, &members)),
            Family::Ring => Table::Ring(hashring::HashRing::build(cfg.ring_vnodes(), &members)),
            Family::Rendezvous => Table::Rendezvous(rendezvous::Rendezvous::build(&members)),
            Family::Jump => Table::Jump(jump::Jump::build(&members)),
            Family::Assignment => Table::Assignment(assignment::Assignment::build(
                cfg.slots,
                cfg.assignment_vnodes(),
                cfg.probe,
                cfg.poly,
                &members,
            )),
        };
        Ok(Ring { members, table })
    }

    /// The members, sorted by name; the indices `owner` and `walk` return point here.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The owner of a key, as an index into [`Ring::members`]; `None` on an empty ring.
    #[inline]
    pub fn owner(&self, key: Key<'_>) -> Option<usize> {
        match &self.table {
            Table::Maglev(t) => t.owner(key.hash()),
            Table::Ring(t) => t.owner(key.hash()),
            Table::Rendezvous(t) => t.owner(key.hash()),
            Table::Jump(t) => t.owner(key.hash()),
            Table::Assignment(t) => t.owner(key.numeric()),
        }
    }

    /// Distinct members in failover order: the owner first, then where the key goes as members
    /// fail, each member exactly once. Empty on an empty ring. Lazy, and allocation-free on the
    /// table families for rings of up to 128 members.
    pub fn walk(&self, key: Key<'_>) -> impl Iterator<Item = usize> + '_ {
        let n = self.members.len();
        match &self.table {
            Table::Maglev(t) => t.walk(key.hash(), n),
            Table::Ring(t) => t.walk(key.hash(), n),
            Table::Rendezvous(t) => t.walk(key.hash()),
            Table::Jump(t) => t.walk(key.hash()),
            Table::Assignment(t) => t.walk(key.numeric(), n),
        }
    }

    /// The fraction of the key space each member owns, in [`Ring::members`] order, summing to 1
    /// (empty on an empty ring). Counted exactly for `maglev` (table entries), `ring` (arcs of the
    /// 2⁶⁴ hash space) and `assignment` (request slots); `rendezvous` and `jump` have no table and
    /// report their designed 1/N.
    pub fn shares(&self) -> Vec<f64> {
        let n = self.members.len();
        match &self.table {
            Table::Maglev(t) => t.shares(n),
            Table::Ring(t) => t.shares(n),
            Table::Rendezvous(t) => t.shares(),
            Table::Jump(t) => t.shares(),
            Table::Assignment(t) => t.shares(n),
        }
    }

    /// The family this ring was built with.
    pub fn family(&self) -> Family {
        match &self.table {
            Table::Maglev(_) => Family::Maglev,
            Table::Ring(_) => Family::Ring,
            Table::Rendezvous(_) => Family::Rendezvous,
            Table::Jump(_) => Family::Jump,
            Table::Assignment(_) => Family::Assignment,
        }
    }

    /// How many members a ring of this configuration can hold (`None`: no practical limit).
    ///
    /// `maglev`: table size / 100 (655 at 65537), the paper's M > 100·N rule that keeps shares
    /// within 1 %. `assignment`: ⌊slots / vnodes⌋ (56 at 512 / 9), so every virtual server gets a
    /// slot. `ring`, `rendezvous`, `jump`: no limit.
    pub fn capacity(cfg: &RingConfig) -> Option<usize> {
        match cfg.family {
            Family::Maglev => Some(maglev::capacity(cfg.table_size)),
            Family::Assignment => Some(assignment::capacity(cfg.slots, cfg.assignment_vnodes())),
            Family::Ring | Family::Rendezvous | Family::Jump => None,
        }
    }

    /// The `assignment` map with its diagnostics (virtual-server slots, request slots); `None` for
    /// the other families.
    pub fn assignment(&self) -> Option<&Assignment> {
        match &self.table {
            Table::Assignment(t) => Some(t),
            _ => None,
        }
    }

    /// The `maglev` table (the owner of every entry, as member indices); `None` for the other
    /// families. For analysis and tests of the table itself.
    pub fn maglev_table(&self) -> Option<&[u16]> {
        match &self.table {
            Table::Maglev(t) => Some(t.table()),
            _ => None,
        }
    }
}
