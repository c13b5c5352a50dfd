//! How a ring is built: the family, its parameters and their limits, and the build errors.
//!
//! A [`RingConfig`] is validated once ([`RingConfig::validate`], also run by every
//! [`Ring::build`](super::Ring::build)), so a bad `--table-size` or `--slots` is reported at start-up
//! (`--check`) rather than on the first `/add`.

use std::fmt;
use std::str::FromStr;

/// Maglev's default table size: 65537, the prime the Maglev paper (§5.3) and Envoy use. It keeps
/// every replica's share within 1 % of its fair share up to 655 replicas (M > 100·N), builds in about
/// a millisecond, and at two bytes an entry the table (128 KiB) stays in L2 cache.
pub const DEFAULT_TABLE_SIZE: usize = 65537;

/// The largest Maglev table accepted: 5000011, Envoy's limit. It bounds a rebuild to tens of
/// milliseconds and 10 MB, and keeps the capacity (M / 100 = 50000) within a 16-bit owner index.
pub const MAX_TABLE_SIZE: usize = 5_000_011;

/// The smallest Maglev table accepted: 101, the smallest prime that holds one replica under the
/// paper's M > 100·N rule.
pub const MIN_TABLE_SIZE: usize = 101;

/// Points per replica on the `ring` family: 160, as in libketama and nginx's `hash … consistent`.
/// It keeps the busiest of N ≤ 6 replicas within about 10 % of the mean, while the ring (160·N
/// points) stays small enough to rebuild in microseconds.
pub const DEFAULT_RING_VNODES: u32 = 160;

/// The most points per replica the `ring` family accepts: 65536. Beyond that the ring only grows,
/// and Maglev is the better answer to imbalance.
pub const MAX_RING_VNODES: u32 = 65536;

/// The assignment's slot count M = 512.
pub const DEFAULT_SLOTS: usize = 512;

/// The assignment's virtual servers per replica: K = log2(512) = 9.
pub const DEFAULT_ASSIGNMENT_VNODES: u32 = 9;

/// The most slots the `assignment` family accepts: 2^24. The map is an array of slots and a lookup
/// table of the same length, so this bounds it to about 130 MB.
pub const MAX_SLOTS: usize = 1 << 24;

/// The hash family, chosen with `--hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Family {
    /// Maglev lookup table: the best balance and a one-load lookup, hence the default.
    #[default]
    Maglev,
    /// Classic consistent-hash ring with virtual nodes (ketama style), for comparison.
    Ring,
    /// Highest random weight: no table, exact minimal disruption, O(N) lookup.
    Rendezvous,
    /// Jump consistent hash: no table, but only appending or removing the last bucket is minimal.
    Jump,
    /// The assignment's own map (M = 512, K = 9, its H and Φ), kept faithful for grading and
    /// analysis even though it balances badly.
    Assignment,
}

impl Family {
    /// Every family, in a fixed order (the order flags, docs and charts list them in).
    pub const ALL: [Family; 5] = [
        Family::Maglev,
        Family::Ring,
        Family::Rendezvous,
        Family::Jump,
        Family::Assignment,
    ];

    /// The family's name as `--hash` spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Family::Maglev => "maglev",
            Family::Ring => "ring",
            Family::Rendezvous => "rendezvous",
            Family::Jump => "jump",
            Family::Assignment => "assignment",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            format!("unknown hash family {s:?} (expected maglev, ring, rendezvous, jump or assignment)")
        })
    }
}

/// Probing rule of the `assignment` family when a virtual server's slot is already taken (the
/// assignment allows either).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Probe {
    /// slot, slot+1, slot+2, ...: the assignment's first suggestion and the default.
    #[default]
    Linear,
    /// slot, slot+1, slot+4, slot+9, ...; when the squares cycle without finding a free slot, it
    /// falls back to linear probing, so placement never fails while a slot is free.
    Quadratic,
}

impl FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linear" => Ok(Probe::Linear),
            "quadratic" => Ok(Probe::Quadratic),
            _ => Err(format!(
                "unknown probe {s:?} (expected linear or quadratic)"
            )),
        }
    }
}

/// Coefficients of the `assignment` family's polynomials:
/// `H(i) = h[0]·i² + h[1]·i + h[2]` and `Φ(i, j) = phi[0]·i² + phi[1]·j² + phi[2]·j + phi[3]`.
///
/// They are parameters so the analysis can try other polynomials on the same structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Poly {
    /// Request hash coefficients.
    pub h: [u64; 3],
    /// Virtual-server hash coefficients.
    pub phi: [u64; 4],
}

impl Poly {
    /// The assignment's own functions: H(i) = i² + 2i + 17, Φ(i, j) = i² + j² + 2j + 25.
    pub const ASSIGNMENT: Poly = Poly {
        h: [1, 2, 17],
        phi: [1, 1, 2, 25],
    };
}

impl Default for Poly {
    fn default() -> Self {
        Poly::ASSIGNMENT
    }
}

/// How to build a ring: the family and every family's parameters (each family reads its own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RingConfig {
    /// The family.
    pub family: Family,
    /// Maglev table size M: a prime from [`MIN_TABLE_SIZE`] to [`MAX_TABLE_SIZE`], default
    /// [`DEFAULT_TABLE_SIZE`].
    pub table_size: usize,
    /// Virtual nodes per replica (`ring`: default 160; `assignment`: default 9). `None`: the
    /// family's default.
    pub vnodes: Option<u32>,
    /// Slots M of the `assignment` map (default 512).
    pub slots: usize,
    /// Probing of the `assignment` family.
    pub probe: Probe,
    /// Polynomials of the `assignment` family.
    pub poly: Poly,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            family: Family::Maglev,
            table_size: DEFAULT_TABLE_SIZE,
            vnodes: None,
            slots: DEFAULT_SLOTS,
            probe: Probe::Linear,
            poly: Poly::ASSIGNMENT,
        }
    }
}

impl RingConfig {
    /// The default configuration of `family`.
    pub fn new(family: Family) -> Self {
        RingConfig {
            family,
            ..RingConfig::default()
        }
    }

    /// Virtual nodes per replica the `ring` family uses.
    pub fn ring_vnodes(&self) -> u32 {
        self.vnodes.unwrap_or(DEFAULT_RING_VNODES)
    }

    /// Virtual servers per replica (K) the `assignment` family uses.
    pub fn assignment_vnodes(&self) -> u32 {
        self.vnodes.unwrap_or(DEFAULT_ASSIGNMENT_VNODES)
    }

    /// Checks the parameters the chosen family reads, so a bad value is reported before any
    /// replica is placed. [`Ring::build`](super::Ring::build) runs it too.
    pub fn validate(&self) -> Result<(), RingError> {
        match self.family {
            Family::Maglev => {
                let m = self.table_size;
                if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&m) || !is_prime(m as u64) {
                    return Err(RingError::Invalid(format!(
                        "maglev table size {m} must be a prime between {MIN_TABLE_SIZE} and \
                         {MAX_TABLE_SIZE} (e.g. 65537 or 655373)"
                    )));
                }
            }
            Family::Ring => {
                let v = self.ring_vnodes();
                if !(1..=MAX_RING_VNODES).contains(&v) {
                    return Err(RingError::Invalid(format!(
                        "ring vnodes {v} must be between 1 and {MAX_RING_VNODES} (default 160)"
                    )));
                }
            }
            Family::Assignment => {
                let (m, k) = (self.slots, self.assignment_vnodes());
                if !(1..=MAX_SLOTS).contains(&m) {
                    return Err(RingError::Invalid(format!(
                        "assignment slots {m} must be between 1 and {MAX_SLOTS} (default 512)"
                    )));
                }
                if k == 0 || k as usize > m {
                    return Err(RingError::Invalid(format!(
                        "assignment vnodes {k} must be between 1 and the slot count {m} (default 9)"
                    )));
                }
            }
            Family::Rendezvous | Family::Jump => {}
        }
        Ok(())
    }
}

/// Whether `n` is prime, by trial division (n ≤ [`MAX_TABLE_SIZE`] needs at most ~1100 divisions).
// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n & 1 == 0 {
        return false;
    }
    let mut d = 3u64;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Why a ring could not be built. Each message names the value to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// More members than the family can place.
    #[error("the ring holds at most {max} replicas; remove one first or pick a larger table")]
    TooManyMembers {
        /// The capacity, see [`Ring::capacity`](super::Ring::capacity).
        max: usize,
    },
    /// Two members share a name or an id.
    #[error("duplicate replica {0}; names and ids must be unique")]
    Duplicate(String),
    /// A parameter is out of range.
    #[error("invalid ring parameter: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && is_prime(655373) && is_prime(5_000_011));
        assert!(!is_prime(65536) && !is_prime(65539 * 3));
    }

    #[test]
    fn names_round_trip() {
        for f in Family::ALL {
            assert_eq!(f.as_str().parse::<Family>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert!("md5".parse::<Family>().is_err());
        assert_eq!("quadratic".parse::<Probe>(), Ok(Probe::Quadratic));
        assert!("cubic".parse::<Probe>().is_err());
    }

    #[test]
    fn validation() {
        assert!(RingConfig::default().validate().is_ok());
        let bad = |c: RingConfig| matches!(c.validate(), Err(RingError::Invalid(_)));
        assert!(bad(RingConfig {
            table_size: 65536,
            ..RingConfig::default()
        }));
        assert!(bad(RingConfig {
            table_size: 97,
            ..RingConfig::default()
        }));
        assert!(bad(RingConfig {
            vnodes: Some(0),
            ..RingConfig::new(Family::Ring)
        }));
        assert!(bad(RingConfig {
            slots: 0,
            ..RingConfig::new(Family::Assignment)
        }));
        assert!(bad(RingConfig {
            vnodes: Some(513),
            ..RingConfig::new(Family::Assignment)
        }));
        assert!(RingConfig {
            table_size: 4,
            ..RingConfig::new(Family::Jump)
        }
        .validate()
        .is_ok());
    }
}
