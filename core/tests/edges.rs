//! Edge cases: empty rings, one member, bad members and bad parameters, odd keys, huge ids.
//! None of them may panic.

mod common;

use common::{build, servers};
use ringlb_core::ring::{Family, Key, Member, Ring, RingConfig, RingError};

/// Keys a client can send: empty, long, binary, digits that overflow a u64.
fn odd_keys() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"0".to_vec(),
        b"18446744073709551615".to_vec(),
        b"99999999999999999999999".to_vec(),
        vec![0xff; 3],
        vec![b'x'; 10_000],
    ]
}

#[test]
fn empty_ring_owns_nothing() {
    for family in Family::ALL {
        let ring = build(family, Vec::new());
        assert_eq!(ring.family(), family);
        assert!(ring.members().is_empty());
        assert!(ring.shares().is_empty());
        for key in odd_keys() {
            assert_eq!(ring.owner(Key::new(&key)), None, "{family}");
            assert_eq!(ring.walk(Key::new(&key)).count(), 0, "{family}");
        }
    }
}

#[test]
fn one_member_owns_everything() {
    for family in Family::ALL {
        let ring = build(family, vec![Member::new("solo", 7)]);
        assert_eq!(ring.shares(), [1.0], "{family}");
        for key in odd_keys().iter().chain(
            common::random_ids(100, 1)
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect::<Vec<_>>()
                .iter(),
        ) {
            assert_eq!(ring.owner(Key::new(key)), Some(0), "{family}");
            assert_eq!(
                ring.walk(Key::new(key)).collect::<Vec<_>>(),
                [0],
                "{family}"
            );
        }
    }
}

#[test]
fn duplicates_are_rejected() {
    for family in Family::ALL {
        let cfg = RingConfig::new(family);
        let same_name = vec![
            Member::new("a", 1),
            Member::new("b", 2),
            Member::new("a", 3),
        ];
        assert!(
            matches!(Ring::build(&cfg, same_name), Err(RingError::Duplicate(m)) if m.contains("\"a\""))
        );
        let same_id = vec![Member::new("a", 1), Member::new("b", 1)];
        assert!(
            matches!(Ring::build(&cfg, same_id), Err(RingError::Duplicate(m)) if m.contains("id 1"))
        );
    }
}

#[test]
fn input_order_does_not_matter() {
    let keys = common::random_ids(2000, 3);
    for family in Family::ALL {
        let mut members = servers(6);
        let a = build(family, members.clone());
        members.reverse();
        members.swap(1, 4);
        let b = build(family, members);
        assert_eq!(a.members(), b.members());
        assert_eq!(
            common::owner_names(&a, &keys),
            common::owner_names(&b, &keys),
            "{family}"
        );
    }
}

#[test]
fn members_are_sorted_by_name() {
    let ring = build(
        Family::Maglev,
        vec![
            Member::new("b", 1),
            Member::new("a", 2),
            Member::new("Server-10", 3),
        ],
    );
    let names: Vec<&str> = ring.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Server-10", "a", "b"]);
}

#[test]
fn maglev_rejects_a_bad_table() {
    for size in [0, 2, 100, 65536, 65535, 5_000_012, usize::MAX] {
        let cfg = RingConfig {
            table_size: size,
            ..RingConfig::default()
        };
        assert!(
            matches!(Ring::build(&cfg, servers(3)), Err(RingError::Invalid(_))),
            "{size}"
        );
        assert!(
            matches!(Ring::build(&cfg, Vec::new()), Err(RingError::Invalid(_))),
            "{size}"
        );
    }
    let small = RingConfig {
        table_size: 251,
        ..RingConfig::default()
    };
    assert!(Ring::build(&small, servers(2)).is_ok());
    assert_eq!(
        Ring::build(&small, servers(3)).unwrap_err(),
        RingError::TooManyMembers { max: 2 }
    );
}

#[test]
fn capacities() {
    assert_eq!(Ring::capacity(&RingConfig::default()), Some(655));
    assert_eq!(
        Ring::capacity(&RingConfig::new(Family::Assignment)),
        Some(56)
    );
    for family in [Family::Ring, Family::Rendezvous, Family::Jump] {
        assert_eq!(Ring::capacity(&RingConfig::new(family)), None);
    }
    let cfg = RingConfig::default();
    assert!(Ring::build(&cfg, servers(655)).is_ok());
    assert_eq!(
        Ring::build(&cfg, servers(656)).unwrap_err(),
        RingError::TooManyMembers { max: 655 }
    );
}

#[test]
fn assignment_rejects_bad_parameters() {
    let base = RingConfig::new(Family::Assignment);
    for cfg in [
        RingConfig {
            slots: 0,
            ..base.clone()
        },
        RingConfig {
            vnodes: Some(0),
            ..base.clone()
        },
        RingConfig {
            slots: 8,
            vnodes: Some(9),
            ..base.clone()
        },
    ] {
        assert!(
            matches!(Ring::build(&cfg, servers(1)), Err(RingError::Invalid(_))),
            "{cfg:?}"
        );
    }
    assert!(matches!(
        Ring::build(
            &RingConfig {
                vnodes: Some(0),
                ..RingConfig::new(Family::Ring)
            },
            servers(1)
        ),
        Err(RingError::Invalid(_))
    ));
}

#[test]
fn huge_ids_and_coefficients_do_not_overflow() {
    let members = vec![
        Member::new("max", u32::MAX),
        Member::new("near", u32::MAX - 1),
        Member::new("zero", 0),
    ];
    let mut cfg = RingConfig::new(Family::Assignment);
    cfg.poly.h = [u64::MAX; 3];
    cfg.poly.phi = [u64::MAX; 4];
    for cfg in [
        RingConfig::new(Family::Assignment),
        cfg,
        RingConfig {
            slots: 1,
            vnodes: Some(1),
            ..RingConfig::new(Family::Assignment)
        },
    ] {
        let Ok(ring) = Ring::build(&cfg, members.clone()) else {
            // One slot holds one replica.
            assert_eq!(cfg.slots, 1);
            continue;
        };
        for key in odd_keys() {
            let walk: Vec<usize> = ring.walk(Key::new(&key)).collect();
            assert_eq!(walk.len(), 3);
            assert_eq!(Some(walk[0]), ring.owner(Key::new(&key)));
        }
    }
    let jump = build(Family::Jump, members);
    for key in odd_keys() {
        assert!(jump.owner(Key::new(&key)).is_some());
    }
}
