//! The oracle of the `sniff` fuzz target, shared with the corpus replay test
//! (`proxy/tests/reliability_hostile.rs` includes this file).
//!
//! For arbitrary bytes, under two caps and with and without headers:
//!
//! - `parse_head` never panics;
//! - its decision does not depend on how the bytes arrive: once a prefix is decided (a head, or
//!   an error), every longer prefix gets the same kind of decision, and a head the same spans;
//!   so `read_head`, which asks only when new bytes could change the answer, sees what a parse of
//!   everything would see;
//! - past the cap there is always a decision (a client cannot keep the sniffer reading forever);
//! - a parsed head's spans lie inside the bytes, the method and target are not empty, and the
//!   request line ends within the cap;
//! - every key source gives a non-empty key, which the ring places without panicking.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use bytes::BytesMut;
use ringlb_core::{Family, Key, Member, Ring, RingConfig};
use ringlb_proxy::key;
use ringlb_proxy::sniff::{parse_head, Head, SniffError, Spans};
use ringlb_proxy::KeySpec;

/// The default cap, and a small one so that short inputs reach the cap paths too.
const CAPS: [usize; 2] = [8192, 64];

/// Checks every property above for `data`.
pub fn check(data: &[u8]) {
    for cap in CAPS {
        for need_headers in [false, true] {
            one(data, cap, need_headers);
        }
    }
}

#[derive(Debug, PartialEq)]
enum Decision {
    More,
    Head(Spans),
    Refused,
}

fn decide(data: &[u8], cap: usize, need_headers: bool) -> Decision {
    match parse_head(data, cap, need_headers) {
        Ok(None) => Decision::More,
        Ok(Some(spans)) => Decision::Head(spans),
        Err(SniffError::Malformed(_))
        | Err(SniffError::LineTooLong(_))
        | Err(SniffError::HeadersTooLarge(_)) => Decision::Refused,
        Err(e) => panic!("parse_head returned a socket error on bytes: {e:?}"),
    }
}

fn one(data: &[u8], cap: usize, need_headers: bool) {
    let whole = decide(data, cap, need_headers);
    if data.len() > cap {
        assert_ne!(
            whole,
            Decision::More,
            "{} bytes over the cap {cap} undecided",
            data.len()
        );
    }
    if let Decision::Head(spans) = &whole {
        check_spans(data, spans, cap, need_headers);
        check_keys(data, spans);
    }
    // The first decided prefix must agree with the whole.
    let mut first: Option<Decision> = None;
    for end in cut_points(data.len()) {
        let d = decide(&data[..end], cap, need_headers);
        match (&first, d) {
            (_, Decision::More) => {
                assert!(
                    first.is_none(),
                    "prefix {end} undecided after an earlier decision"
                );
            }
            (None, d) => first = Some(d),
            (Some(f), d) => assert_eq!(*f, d, "prefix {end} decided differently"),
        }
    }
    if let Some(f) = first {
        assert_eq!(f, whole, "a prefix and the whole input decided differently");
    }
}

/// Every prefix length for short inputs, a spread of them for long ones.
fn cut_points(len: usize) -> Vec<usize> {
    if len <= 96 {
        return (1..=len).collect();
    }
    let mut cuts: Vec<usize> = (1..=32).collect();
    cuts.extend((1..=32).map(|k| len * k / 32));
    cuts.extend(
        [63, 64, 65, 8191, 8192, 8193]
            .into_iter()
            .filter(|&c| c <= len),
    );
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

fn check_spans(data: &[u8], s: &Spans, cap: usize, need_headers: bool) {
    let inside = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= data.len();
    assert!(inside(&s.method) && inside(&s.target), "{s:?}");
    assert!(!s.method.is_empty() && !s.target.is_empty(), "{s:?}");
    assert!(s.method.end < s.target.start, "{s:?}");
    let line_end = data
        .iter()
        .position(|&b| b == b'\n')
        .expect("a head has a line end");
    assert!(
        line_end <= cap,
        "line of {line_end} bytes accepted under cap {cap}"
    );
    assert!(s.target.end <= line_end, "{s:?}");
    for (n, v) in &s.headers {
        assert!(inside(n) && inside(v), "{s:?}");
    }
    if !need_headers {
        assert!(s.headers.is_empty());
    }
}

fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(|| {
        let members = (1..=3)
            .map(|i| Member::new(format!("Server-{i}"), i))
            .collect();
        Ring::build(&RingConfig::new(Family::Maglev), members).expect("ring builds")
    })
}

fn check_keys(data: &[u8], s: &Spans) {
    let head = Head {
        buf: BytesMut::from(data),
        method: s.method.clone(),
        target: s.target.clone(),
        headers: s.headers.clone(),
    };
    let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    for spec in [
        KeySpec::Query("rid".into()),
        KeySpec::Path,
        KeySpec::Uri,
        KeySpec::ClientIp,
        KeySpec::Header("x-user".into()),
    ] {
        let mut scratch: key::Scratch = [0; 48];
        let k = key::extract(&spec, &head, peer, &mut scratch);
        assert!(!k.is_empty(), "{spec}: empty key");
        assert!(
            k.len() <= data.len().max(48),
            "{spec}: key longer than the input"
        );
        assert!(ring().owner(Key::new(k)).is_some());
        assert_eq!(ring().walk(Key::new(k)).count(), 3);
    }
}
