//! What the ring places and what it looks up: members, keys, and the one stable hash behind both.
//!
//! Every family derives its placement from [`stable_hash`], i.e. xxh3-64 with a seed per role.
//! The seeds are part of ringlb's placement contract: changing one moves keys between replicas
//! on upgrade, so the golden tests in `core/tests/golden.rs` pin the outcome.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The name of the hash every family places with: xxh3-64 from `xxhash-rust`.
///
/// Why xxh3: its output is specified and identical on every platform and in every version (unlike
/// `std`'s `DefaultHasher`, whose algorithm may change between Rust releases, or `ahash`, which is
/// seeded per process), it passes SMHasher, and it hashes a short key in about a nanosecond, so the
/// key hash is not the cost of a lookup. Two ringlb processes (or two versions of one) with the same
/// replicas therefore send every key to the same replica.
pub const PLACEMENT_HASH: &str = "xxh3-64";

/// Seed of [`Key::hash`]: 0, so a key's hash equals the plain `xxh3_64` of its bytes and can be
/// reproduced with any xxh3 tool.
pub const KEY_SEED: u64 = 0;

/// Seed of a `maglev` member's table offset. Offset and skip need two independent hashes of the
/// same name (Maglev §3.4); two seeds of one function give that.
pub const MAGLEV_OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"

/// Seed of a `maglev` member's table skip; see [`MAGLEV_OFFSET_SEED`].
pub const MAGLEV_SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// Seed of a `ring` point, the hash of `"<name>#<j>"`: 0, the plain xxh3 of the point's label,
/// so a point can be recomputed by hand from the member's name.
pub const RING_POINT_SEED: u64 = 0;

/// Seed of a `rendezvous` member's name hash, kept apart from [`KEY_SEED`] so that a key equal to a
/// member's name does not score that member in a special way.
pub const RENDEZVOUS_SEED: u64 = 0x7265_6e64_657a_766f; // "rendezvo"

/// xxh3-64 of `bytes` under `seed`: the only hash ringlb places with (see [`PLACEMENT_HASH`]).
#[inline]
pub fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(bytes, seed)
}

/// MurmurHash3's 64-bit finaliser: a bijection whose every output bit depends on every input bit.
/// `rendezvous` runs it over `key hash ^ name hash`, since a plain XOR would let one member's high
/// bits decide every comparison.
#[inline]
pub fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A replica as the ring sees it: its stable name (the placement key) and its small integer id.
///
/// Members are compared by name first, so sorting a list of them gives the canonical order that
/// [`Ring::members`](super::Ring::members) reports and that owner indices point into.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// Stable name, e.g. `Server-1`; `maglev`, `ring` and `rendezvous` place by it, never by
    /// address, so a replica that restarts on another port keeps its keys.
    pub name: String,
    /// Server id `i` (the control plane hands out the smallest free integer from 1); the
    /// `assignment` family places by it, as Φ(i, j) requires, and `jump` numbers its buckets by it.
    pub id: u32,
}

impl Member {
    /// A member with this name and id.
    pub fn new(name: impl Into<String>, id: u32) -> Self {
        Member {
            name: name.into(),
            id,
        }
    }
}

/// A request key: the bytes the data plane extracted (a rid, a path, a header value, ...).
///
/// It borrows them, so routing a connection allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a>(pub &'a [u8]);

impl<'a> Key<'a> {
    /// Wraps key bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Key(bytes)
    }

    /// The stable 64-bit hash of the key: xxh3-64 with seed [`KEY_SEED`] (0). Every family but
    /// `assignment` routes by it.
    #[inline]
    pub fn hash(&self) -> u64 {
        stable_hash(self.0, KEY_SEED)
    }

    /// The key as an integer request id, the `i` of the assignment's H(i): its decimal value when
    /// it is all ASCII digits and at most 19 of them (so it always fits in a u64), otherwise its
    /// stable hash. This way a path or `T1:P1` still routes in the `assignment` family.
    pub fn numeric(&self) -> u64 {
        if !self.0.is_empty() && self.0.len() <= 19 && self.0.iter().all(u8::is_ascii_digit) {
            self.0
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
        } else {
            self.hash()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_plain_xxh3() {
        assert_eq!(
            Key::new(b"132574").hash(),
            xxhash_rust::xxh3::xxh3_64(b"132574")
        );
    }

    #[test]
    fn numeric_reads_digits_and_hashes_the_rest() {
        assert_eq!(Key::new(b"132574").numeric(), 132_574);
        assert_eq!(Key::new(b"0007").numeric(), 7);
        assert_eq!(
            Key::new(b"9999999999999999999").numeric(),
            9_999_999_999_999_999_999
        );
        let long = b"99999999999999999999";
        assert_eq!(Key::new(long).numeric(), Key::new(long).hash());
        assert_eq!(Key::new(b"T1:P1").numeric(), Key::new(b"T1:P1").hash());
        assert_eq!(Key::new(b"").numeric(), Key::new(b"").hash());
    }

    #[test]
    fn fmix64_is_a_known_bijection() {
        assert_eq!(fmix64(0), 0);
        assert_ne!(fmix64(1), fmix64(2));
    }
}
