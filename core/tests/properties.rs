//! Property tests: consistency under membership change, and the failover walk, for every family.
//!
//! Each case builds two rings that differ by one member and routes a fixed set of 20000 request
//! ids through both. A key may change owner only to the added member, or only away from the
//! removed one. Where a family cannot promise that exactly, the test checks the precise weaker
//! promise it does make (see each test).

mod common;

use proptest::prelude::*;
use ringlb_core::ring::{Family, Key, Member, Ring, RingConfig};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The fixed request ids every case routes.
fn keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| common::random_ids(20_000, 0x5eed))
}

/// Maglev's bound on excess moves for one change: 5 % of keys. A rebuilt table moves about 0.14 %
/// of keys needlessly on average (`balance.rs` holds that mean to 0.5 %), but one change is a
/// random draw: over 6000 random 2..10-member changes the 99th percentile was 0.5 % and the worst
/// 2.4 %. A bug that disturbs the permutations moves tens of percent, far above this line.
const MAGLEV_EXCESS: f64 = 0.05;

/// 2..=9 members with distinct names and distinct ids. The last one is the one added or removed,
/// and it has the largest id (the id the control plane gives a new replica).
fn member_sets() -> impl Strategy<Value = Vec<Member>> {
    (2usize..=9).prop_flat_map(|n| {
        (
            prop::collection::btree_set("[a-z]{1,6}-[0-9]{1,3}", n),
            prop::collection::btree_set(1u32..5000, n),
            Just(n),
        )
            .prop_perturb(|(names, ids, _n), mut rng| {
                let mut names: Vec<String> = names.into_iter().collect();
                // Shuffle names so the newest member's name sorts anywhere, not only last.
                for i in (1..names.len()).rev() {
                    names.swap(i, rng.random_range(0..=i));
                }
                names
                    .into_iter()
                    .zip(ids)
                    .map(|(name, id)| Member::new(name, id))
                    .collect()
            })
    })
}

fn owners(ring: &Ring) -> Vec<Option<String>> {
    common::owner_names(ring, keys())
}

/// Keys whose owner changed from `before` to `after`, as (old, new) names.
fn moves(before: &Ring, after: &Ring) -> Vec<(String, String)> {
    owners(before)
        .into_iter()
        .zip(owners(after))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (a.unwrap_or_default(), b.unwrap_or_default()))
        .collect()
}

fn ring(family: Family, members: &[Member]) -> Ring {
    Ring::build(&RingConfig::new(family), members.to_vec()).unwrap()
}

/// Moves not onto `added`, for a ring of `members` that gains `members.last()`.
fn excess_on_add(family: Family, members: &[Member]) -> usize {
    let added = &members[members.len() - 1].name;
    let m = moves(
        &ring(family, &members[..members.len() - 1]),
        &ring(family, members),
    );
    m.iter().filter(|(_, new)| new != added).count()
}

/// Moves not away from `removed`, for a ring of `members` that loses `members[k]`.
fn remove(family: Family, members: &[Member], k: usize) -> Vec<(String, String)> {
    let mut rest = members.to_vec();
    let removed = rest.remove(k);
    let m = moves(&ring(family, members), &ring(family, &rest));
    m.into_iter()
        .filter(|(old, _)| *old != removed.name)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `ring` and `rendezvous` are exactly minimal for any add or removal.
    #[test]
    fn ring_and_rendezvous_are_minimal(members in member_sets(), pick in any::<prop::sample::Index>()) {
        for family in [Family::Ring, Family::Rendezvous] {
            prop_assert_eq!(excess_on_add(family, &members), 0, "{} add", family);
            let excess = remove(family, &members, pick.index(members.len()));
            prop_assert!(excess.is_empty(), "{} remove: {:?}", family, &excess[..excess.len().min(5)]);
        }
    }

    /// `maglev` rebuilds its table, so a few entries change owner needlessly; see [`MAGLEV_EXCESS`].
    #[test]
    fn maglev_moves_few_extra_keys(members in member_sets(), pick in any::<prop::sample::Index>()) {
        let limit = (MAGLEV_EXCESS * keys().len() as f64) as usize;
        let add = excess_on_add(Family::Maglev, &members);
        prop_assert!(add <= limit, "add moved {} extra keys", add);
        let rm = remove(Family::Maglev, &members, pick.index(members.len())).len();
        prop_assert!(rm <= limit, "remove moved {} extra keys", rm);
    }

    /// `jump` is minimal when the member with the largest id (the last bucket) comes or goes.
    /// Removing another member shifts the buckets after it down by one (inherent to jump hash),
    /// so there only the keys of buckets before the removed one are promised to stay.
    #[test]
    fn jump_is_minimal_at_the_last_bucket(members in member_sets(), pick in any::<prop::sample::Index>()) {
        prop_assert_eq!(excess_on_add(Family::Jump, &members), 0);
        prop_assert!(remove(Family::Jump, &members, members.len() - 1).is_empty());
        let k = pick.index(members.len());
        let removed_id = members[k].id;
        let id_of = |name: &str| members.iter().find(|m| m.name == name).unwrap().id;
        for (old, _) in remove(Family::Jump, &members, k) {
            prop_assert!(id_of(&old) > removed_id, "{} (before the removed bucket) moved", old);
        }
    }

    /// `assignment` places replicas in id order, so adding or removing the largest id is minimal.
    /// Removing a smaller id can let a virtual server it had pushed off its home slot move back;
    /// then, and only then, keys next to that virtual server change owner too: every extra move
    /// involves a replica with a virtual server that changed slot.
    #[test]
    fn assignment_is_minimal_at_the_largest_id(members in member_sets(), pick in any::<prop::sample::Index>()) {
        prop_assert_eq!(excess_on_add(Family::Assignment, &members), 0);
        prop_assert!(remove(Family::Assignment, &members, members.len() - 1).is_empty());
        let k = pick.index(members.len());
        let mut rest = members.clone();
        let removed = rest.remove(k);
        let slots = |r: &Ring| -> BTreeSet<(String, u32, usize)> {
            let a = r.assignment().unwrap();
            a.vnodes().iter().map(|v| (r.members()[v.member].name.clone(), v.j, v.slot)).collect()
        };
        let before = slots(&ring(Family::Assignment, &members));
        let after = slots(&ring(Family::Assignment, &rest));
        let shifted: BTreeSet<String> = before
            .symmetric_difference(&after)
            .map(|(name, _, _)| name.clone())
            .filter(|name| *name != removed.name)
            .collect();
        for (old, new) in remove(Family::Assignment, &members, k) {
            prop_assert!(shifted.contains(&old) || shifted.contains(&new),
                "{} -> {} moved, but neither had a virtual server shift", old, new);
        }
    }

    /// Every walk yields every member exactly once, the owner first; for `ring`, `rendezvous` and
    /// `jump` the second member is exactly where the key goes if the owner is removed.
    #[test]
    fn walk_visits_everyone_once_owner_first(members in member_sets()) {
        for family in Family::ALL {
            let r = ring(family, &members);
            for key in &keys()[..200] {
                let k = Key::new(key.as_bytes());
                let walk: Vec<usize> = r.walk(k).collect();
                prop_assert_eq!(walk.first().copied(), r.owner(k), "{}", family);
                let distinct: BTreeSet<usize> = walk.iter().copied().collect();
                prop_assert_eq!(walk.len(), members.len(), "{}", family);
                prop_assert_eq!(distinct.len(), members.len(), "{}", family);
                if matches!(family, Family::Ring | Family::Rendezvous | Family::Jump) {
                    let owner = &r.members()[walk[0]];
                    let rest: Vec<Member> = members.iter().filter(|m| *m != owner).cloned().collect();
                    let r2 = ring(family, &rest);
                    let next = r2.owner(k).map(|i| r2.members()[i].name.clone());
                    prop_assert_eq!(next, Some(r.members()[walk[1]].name.clone()), "{}", family);
                }
            }
        }
    }
}
