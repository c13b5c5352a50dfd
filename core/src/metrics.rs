//! Every metric name ringlb exports, with its help text, in one place.
//!
//! Conventions (Prometheus): one `ringlb_` prefix, base units (`_seconds`, `_bytes`, `_ratio`),
//! counters end in `_total`, a `replica` label carries the replica's stable name. No label ever
//! carries a request ID, a client address or any other unbounded value: every label is either a
//! replica name or one word from a fixed list below.
//!
//! Series exist from the start at 0 rather than appearing on first use, so that `rate()` and
//! alerts see the first increment and dashboards list every replica: [`register_fixed`] creates
//! the series whose labels are known at start, [`ReplicaMetrics::new`] those of a replica when it
//! joins the pool. A replica that leaves the pool leaves the output too ([`retain_replicas`]).
//!
//! `docs/operations.md` explains each metric and gives PromQL for the usual questions.

use std::borrow::Cow;

/// Connections accepted on the data port (label: none).
pub const ACCEPTED: &str = "ringlb_connections_accepted_total";
/// Connections routed to a replica (label: replica).
pub const ROUTED: &str = "ringlb_connections_total";
/// Connections currently spliced to a replica (label: replica).
pub const ACTIVE: &str = "ringlb_connections_active";
/// Connections currently open on the data port, routed or not.
pub const OPEN: &str = "ringlb_connections_open";
/// Bytes forwarded (labels: replica, direction = to_replica | to_client).
pub const BYTES: &str = "ringlb_bytes_total";
/// Failed connects to a replica (labels: replica, reason = refused | timeout | other).
pub const CONNECT_ERRORS: &str = "ringlb_connect_errors_total";
/// Connections answered before routing (label: reason, one of [`REJECT_REASONS`]).
pub const REJECTED: &str = "ringlb_requests_rejected_total";
/// Time to connect to a replica (label: replica).
pub const CONNECT_SECONDS: &str = "ringlb_connect_duration_seconds";
/// Lifetime of a routed connection (label: replica).
pub const CONNECTION_SECONDS: &str = "ringlb_connection_duration_seconds";
/// 1 when the replica is up, 0 when down or being respawned (label: replica).
pub const REPLICA_UP: &str = "ringlb_replica_up";
/// Replica state transitions (labels: replica, to = up | down).
pub const TRANSITIONS: &str = "ringlb_replica_transitions_total";
/// Replicas respawned after going down (label: replica).
pub const RESPAWNS: &str = "ringlb_replica_respawns_total";
/// Replicas in the pool, by state (label: state, one of [`REPLICA_STATES`]).
pub const REPLICAS: &str = "ringlb_replicas";
/// Ring rebuilds (membership changes).
pub const RING_REBUILDS: &str = "ringlb_ring_rebuilds_total";
/// Share of the key space a replica owns, 0..1 (label: replica).
pub const RING_SHARE: &str = "ringlb_ring_share_ratio";
/// Control-plane requests (labels: endpoint, status = the HTTP status code).
pub const CONTROL_REQUESTS: &str = "ringlb_control_requests_total";
/// Accept errors on the data port (label: kind, one of [`ACCEPT_ERROR_KINDS`]).
pub const ACCEPT_ERRORS: &str = "ringlb_accept_errors_total";
/// Build information (labels: version, hash, runtime); the value is always 1.
pub const BUILD_INFO: &str = "ringlb_build_info";

/// Values of the `reason` label of [`REJECTED`]: 400, 414, 431, 408, and 503 twice.
pub const REJECT_REASONS: &[&str] = &[
    "bad_request",
    "too_long",
    "headers_too_large",
    "timeout",
    "no_replica",
    "over_capacity",
];
/// Values of the `kind` label of [`ACCEPT_ERRORS`].
pub const ACCEPT_ERROR_KINDS: &[&str] = &["fd_limit", "memory", "aborted", "other"];
/// Values of the `state` label of [`REPLICAS`], as `/replicas` and `/status` spell them.
pub const REPLICA_STATES: &[&str] = &["up", "down", "respawning"];

/// Buckets for connect time, in seconds: loopback connects take tens of microseconds, a
/// container on a bridge a few hundred; the connect timeout (1 s) ends the range.
pub const CONNECT_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets for connection lifetime, in seconds: from one short request to long streams.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Every metric with its type and help text, for `describe_*` at startup.
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        ACCEPTED,
        Kind::Counter,
        "Connections accepted on the data port.",
    ),
    (ROUTED, Kind::Counter, "Connections routed to a replica."),
    (
        ACTIVE,
        Kind::Gauge,
        "Connections currently spliced to a replica.",
    ),
    (
        OPEN,
        Kind::Gauge,
        "Connections currently open on the data port, routed or not.",
    ),
    (
        BYTES,
        Kind::Counter,
        "Bytes forwarded, by replica and direction (to_replica, to_client).",
    ),
    (
        CONNECT_ERRORS,
        Kind::Counter,
        "Failed connects to a replica, by reason (refused, timeout, other).",
    ),
    (
        REJECTED,
        Kind::Counter,
        "Connections answered by ringlb before routing, by reason.",
    ),
    (
        CONNECT_SECONDS,
        Kind::Histogram,
        "Time to connect to a replica, in seconds.",
    ),
    (
        CONNECTION_SECONDS,
        Kind::Histogram,
        "Lifetime of a routed connection, in seconds.",
    ),
    (
        REPLICA_UP,
        Kind::Gauge,
        "1 when the replica is up, 0 when it is down or being respawned.",
    ),
    (
        TRANSITIONS,
        Kind::Counter,
        "Replica state transitions, by target state (up, down).",
    ),
    (
        RESPAWNS,
        Kind::Counter,
        "Managed replicas replaced after going down.",
    ),
    (
        REPLICAS,
        Kind::Gauge,
        "Replicas in the pool, by state (up, down, respawning).",
    ),
    (
        RING_REBUILDS,
        Kind::Counter,
        "Ring rebuilds after a membership change.",
    ),
    (
        RING_SHARE,
        Kind::Gauge,
        "Share of the key space a replica owns (0 to 1).",
    ),
    (
        CONTROL_REQUESTS,
        Kind::Counter,
        "Control-plane requests, by endpoint and HTTP status.",
    ),
    (
        ACCEPT_ERRORS,
        Kind::Counter,
        "Errors accepting connections on the data port, by kind.",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        "Build information; the value is always 1.",
    ),
];

/// Metric type, for descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram with explicit buckets.
    Histogram,
}

/// Describes every metric (help text, and the unit of the histograms) to the installed recorder.
pub fn describe() {
    for (name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(*name, *help),
            Kind::Gauge => ::metrics::describe_gauge!(*name, *help),
            Kind::Histogram => {
                ::metrics::describe_histogram!(*name, ::metrics::Unit::Seconds, *help)
            }
        }
    }
}

/// Creates, at 0, every series whose labels are known at start: the data port's counters, each
/// rejection reason, each accept-error kind, the ring rebuilds and the replica count per state.
/// Per-replica series come with [`ReplicaMetrics::new`].
pub fn register_fixed() {
    ::metrics::counter!(ACCEPTED).increment(0);
    ::metrics::gauge!(OPEN).set(0.0);
    ::metrics::counter!(RING_REBUILDS).increment(0);
    for reason in REJECT_REASONS {
        ::metrics::counter!(REJECTED, "reason" => *reason).increment(0);
    }
    for kind in ACCEPT_ERROR_KINDS {
        ::metrics::counter!(ACCEPT_ERRORS, "kind" => *kind).increment(0);
    }
    for state in REPLICA_STATES {
        ::metrics::gauge!(REPLICAS, "state" => *state).set(0.0);
    }
}

/// Per-replica metric handles, resolved once when a routing snapshot is published so the data
/// plane does not look labels up on every connection.
#[derive(Clone, Debug)]
pub struct ReplicaMetrics {
    /// [`ROUTED`].
    pub routed: ::metrics::Counter,
    /// [`ACTIVE`].
    pub active: ::metrics::Gauge,
    /// [`BYTES`] with `direction="to_replica"`.
    pub bytes_to_replica: ::metrics::Counter,
    /// [`BYTES`] with `direction="to_client"`.
    pub bytes_to_client: ::metrics::Counter,
    /// [`CONNECT_ERRORS`] with `reason="refused"`.
    pub connect_refused: ::metrics::Counter,
    /// [`CONNECT_ERRORS`] with `reason="timeout"`.
    pub connect_timeout: ::metrics::Counter,
    /// [`CONNECT_ERRORS`] with `reason="other"`.
    pub connect_other: ::metrics::Counter,
    /// [`CONNECT_SECONDS`].
    pub connect_seconds: ::metrics::Histogram,
    /// [`CONNECTION_SECONDS`].
    pub connection_seconds: ::metrics::Histogram,
}

impl ReplicaMetrics {
    /// Handles for the replica called `name`. Also registers the replica's control-plane series
    /// (transitions each way, respawns), so every per-replica series exists, at 0, from the
    /// moment the replica joins the pool. Registering an existing series keeps its value.
    pub fn new(name: &str) -> Self {
        let r = name.to_string();
        for to in ["up", "down"] {
            let _ = ::metrics::counter!(TRANSITIONS, "replica" => r.clone(), "to" => to);
        }
        let _ = ::metrics::counter!(RESPAWNS, "replica" => r.clone());
        ReplicaMetrics {
            routed: ::metrics::counter!(ROUTED, "replica" => r.clone()),
            active: ::metrics::gauge!(ACTIVE, "replica" => r.clone()),
            bytes_to_replica: ::metrics::counter!(BYTES, "replica" => r.clone(), "direction" => "to_replica"),
            bytes_to_client: ::metrics::counter!(BYTES, "replica" => r.clone(), "direction" => "to_client"),
            connect_refused: ::metrics::counter!(CONNECT_ERRORS, "replica" => r.clone(), "reason" => "refused"),
            connect_timeout: ::metrics::counter!(CONNECT_ERRORS, "replica" => r.clone(), "reason" => "timeout"),
            connect_other: ::metrics::counter!(CONNECT_ERRORS, "replica" => r.clone(), "reason" => "other"),
            connect_seconds: ::metrics::histogram!(CONNECT_SECONDS, "replica" => r.clone()),
            connection_seconds: ::metrics::histogram!(CONNECTION_SECONDS, "replica" => r),
        }
    }
}

/// Drops, from rendered Prometheus text, every sample whose `replica` label names a replica for
/// which `keep` says no.
///
/// The recorder cannot forget a series, so without this a replica removed by `/rm` (or renamed
/// by a respawn with `--respawn-name random`) would stay in every scrape with frozen values. A
/// replica added again under the same name continues its counters where they stopped, which is
/// still monotonic. Replica names are checked against `^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,62}$`, so
/// a label value never holds a quote or a backslash and the first closing quote ends it.
pub fn retain_replicas<'a>(text: &'a str, keep: impl Fn(&str) -> bool) -> Cow<'a, str> {
    let dropped = |line: &str| {
        !line.starts_with('#') && replica_label(line).is_some_and(|replica| !keep(replica))
    };
    if !text.lines().any(dropped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !dropped(line) {
            out.push_str(line);
        }
    }
    Cow::Owned(out)
}

/// The value of the `replica` label of one sample line, if it has one.
fn replica_label(line: &str) -> Option<&str> {
    let open = line.find('{')?;
    let labels = &line[open..open + line[open..].find('}')?];
    let start = labels
        .match_indices("replica=\"")
        .find(|(i, _)| matches!(labels.as_bytes()[i - 1], b'{' | b','))?
        .0
        + "replica=\"".len();
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for (name, kind, help) in DESCRIPTIONS {
            assert!(name.starts_with("ringlb_"), "{name}");
            assert!(!help.is_empty(), "{name}");
            assert_eq!(*kind == Kind::Counter, name.ends_with("_total"), "{name}");
            if *kind == Kind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
        }
        let mut names: Vec<_> = DESCRIPTIONS.iter().map(|d| d.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DESCRIPTIONS.len(), "a name is described twice");
    }

    #[test]
    fn buckets_ascend() {
        for b in [CONNECT_BUCKETS, DURATION_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn removed_replicas_leave_the_output() {
        let text = "# HELP ringlb_connections_total Connections routed to a replica.\n\
            # TYPE ringlb_connections_total counter\n\
            ringlb_connections_total{replica=\"Server-1\"} 4\n\
            ringlb_connections_total{replica=\"S9\"} 2\n\
            ringlb_bytes_total{direction=\"to_client\",replica=\"S9\"} 7\n\
            ringlb_connect_duration_seconds_bucket{replica=\"S9\",le=\"0.001\"} 1\n\
            ringlb_requests_rejected_total{reason=\"timeout\"} 0\n\
            ringlb_other{not_replica=\"S9\"} 1\n\n";
        let kept = retain_replicas(text, |r| r == "Server-1");
        assert_eq!(
            kept,
            "# HELP ringlb_connections_total Connections routed to a replica.\n\
            # TYPE ringlb_connections_total counter\n\
            ringlb_connections_total{replica=\"Server-1\"} 4\n\
            ringlb_requests_rejected_total{reason=\"timeout\"} 0\n\
            ringlb_other{not_replica=\"S9\"} 1\n\n"
        );
        assert!(matches!(retain_replicas(text, |_| true), Cow::Borrowed(_)));
    }
}
