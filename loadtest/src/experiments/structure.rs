//! Exact, offline figures from ringlb's own ring code (`ringlb-core`): how every one of the
//! 900000 six-digit request IDs is placed, and where the `assignment` map puts its virtual
//! servers. They explain the live numbers; the live numbers remain the experiments' results.

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use ringlb_core::{Family, Key, Member, Ring, RingConfig};
use serde::Serialize;

use crate::run::RID_RANGE;
use crate::stats::{spread, Spread};

/// Owner counts over all 900000 IDs, in the order of `members`.
pub fn exact_counts(cfg: &RingConfig, members: &[Member]) -> Result<Vec<u64>> {
    let ring = Ring::build(cfg, members.to_vec()).map_err(|e| anyhow!("{e}"))?;
    let mut by_sorted = vec![0u64; ring.members().len()];
    let mut buf = itoa_buf();
    for rid in RID_RANGE {
        let key = format_rid(&mut buf, rid);
        if let Some(i) = ring.owner(Key::new(key)) {
            by_sorted[i] += 1;
        }
    }
    // Ring::members is sorted by name; report in the caller's order.
    Ok(members
        .iter()
        .map(|m| {
            ring.members()
                .iter()
                .position(|x| x == m)
                .map_or(0, |i| by_sorted[i])
        })
        .collect())
}

/// The spread of the exact counts.
pub fn exact_spread(cfg: &RingConfig, members: &[Member]) -> Result<Spread> {
    let counts: Vec<f64> = exact_counts(cfg, members)?
        .into_iter()
        .map(|c| c as f64)
        .collect();
    Ok(spread(&counts))
}

/// The ring owner's server id of each request ID, as ringlb-core computes it.
pub fn owners(cfg: &RingConfig, members: &[Member], rids: &[u32]) -> Result<HashMap<u32, u32>> {
    let ring = Ring::build(cfg, members.to_vec()).map_err(|e| anyhow!("{e}"))?;
    let mut buf = itoa_buf();
    Ok(rids
        .iter()
        .filter_map(|&rid| {
            let i = ring.owner(Key::new(format_rid(&mut buf, rid)))?;
            Some((rid, ring.members()[i].id))
        })
        .collect())
}

/// How many live answers (rid → server id) did not come from the ring owner: requests a failover
/// sent elsewhere because the owner was marked down (0 on a healthy run).
pub fn off_owner(
    cfg: &RingConfig,
    members: &[Member],
    placement: &HashMap<u32, u32>,
) -> Result<usize> {
    let rids: Vec<u32> = placement.keys().copied().collect();
    let want = owners(cfg, members, &rids)?;
    Ok(placement
        .iter()
        .filter(|(rid, id)| want.get(rid) != Some(id))
        .count())
}

fn itoa_buf() -> [u8; 10] {
    [0; 10]
}

/// The decimal bytes of a request ID, as the data plane sees the `rid` query value.
fn format_rid(buf: &mut [u8; 10], mut rid: u32) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (rid % 10) as u8;
        rid /= 10;
        if rid == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Where the `assignment` map puts things, for ids 1..N.
#[derive(Clone, Debug, Serialize)]
pub struct AssignmentMap {
    pub n: usize,
    pub slots: usize,
    /// Request slots H can reach at all.
    pub reachable_slots: usize,
    /// Virtual servers as (server id, j, slot).
    pub vnodes: Vec<(u32, u32, usize)>,
    pub lowest_vnode_slot: usize,
    pub highest_vnode_slot: usize,
    /// Fraction of all 900000 IDs whose request slot lies outside the virtual servers' window, so
    /// that they wrap clockwise to the lowest virtual server.
    pub wrap_fraction: f64,
    /// Exact share of each server id 1..N over all IDs.
    pub shares: Vec<f64>,
}

/// The `assignment` map of `cfg` with replicas `Server-1..N`, ids 1..N.
pub fn assignment_map(cfg: &RingConfig, n: usize) -> Result<AssignmentMap> {
    let cfg = RingConfig {
        family: Family::Assignment,
        ..cfg.clone()
    };
    let members: Vec<Member> = (1..=n as u32)
        .map(|i| Member::new(format!("Server-{i}"), i))
        .collect();
    let ring = Ring::build(&cfg, members.clone()).map_err(|e| anyhow!("{e}"))?;
    let map = ring
        .assignment()
        .ok_or_else(|| anyhow!("not an assignment ring"))?;
    let vnodes: Vec<(u32, u32, usize)> = map
        .vnodes()
        .iter()
        .map(|v| (ring.members()[v.member].id, v.j, v.slot))
        .collect();
    let lo = vnodes.iter().map(|v| v.2).min().unwrap_or(0);
    let hi = vnodes.iter().map(|v| v.2).max().unwrap_or(0);
    let wrapped = RID_RANGE
        .filter(|&rid| {
            let s = map.request_slot(u64::from(rid));
            s > hi || s < lo
        })
        .count();
    let counts = exact_counts(&cfg, &members)?;
    let total: u64 = counts.iter().sum();
    Ok(AssignmentMap {
        n,
        slots: map.slots(),
        reachable_slots: map.reachable_request_slots().len(),
        vnodes,
        lowest_vnode_slot: lo,
        highest_vnode_slot: hi,
        wrap_fraction: wrapped as f64 / RID_RANGE.count() as f64,
        shares: counts
            .iter()
            .map(|&c| c as f64 / total.max(1) as f64)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_bytes_are_decimal() {
        let mut b = itoa_buf();
        assert_eq!(format_rid(&mut b, 132574), b"132574");
        assert_eq!(format_rid(&mut b, 0), b"0");
    }
}
