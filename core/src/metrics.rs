//! Every metric name ringlb exports, with its help text, in one place.
//!
//! Conventions (Prometheus): one `ringlb_` prefix, base units (`_seconds`, `_bytes`), counters
//! end in `_total`, a `replica` label carries the replica's stable name. No label ever carries a
//! request ID, a client address or any other unbounded value.

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
/// Connections answered before routing (label: reason = bad_request | too_long | timeout |
/// no_replica | over_capacity).
pub const REJECTED: &str = "ringlb_requests_rejected_total";
/// Time to connect to a replica (label: replica).
pub const CONNECT_SECONDS: &str = "ringlb_connect_duration_seconds";
/// Lifetime of a routed connection (label: replica).
pub const CONNECTION_SECONDS: &str = "ringlb_connection_duration_seconds";
/// 1 when the replica is up, 0 when down (label: replica).
pub const REPLICA_UP: &str = "ringlb_replica_up";
/// Replica state transitions (labels: replica, to = up | down).
pub const TRANSITIONS: &str = "ringlb_replica_transitions_total";
/// Replicas respawned after going down (label: replica).
pub const RESPAWNS: &str = "ringlb_replica_respawns_total";
/// Replicas on the ring.
pub const REPLICAS: &str = "ringlb_replicas";
/// Ring rebuilds (membership changes).
pub const RING_REBUILDS: &str = "ringlb_ring_rebuilds_total";
/// Share of the key space a replica owns, 0..1 (label: replica).
pub const RING_SHARE: &str = "ringlb_ring_share";
/// Control-plane requests (labels: endpoint, status).
pub const CONTROL_REQUESTS: &str = "ringlb_control_requests_total";
/// Accept errors on the data port (label: kind).
pub const ACCEPT_ERRORS: &str = "ringlb_accept_errors_total";
/// Build information (labels: version, hash).
pub const BUILD_INFO: &str = "ringlb_build_info";

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
        "Failed connects to a replica, by reason.",
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
        "1 when the replica is up, 0 when it is down.",
    ),
    (
        TRANSITIONS,
        Kind::Counter,
        "Replica state transitions, by target state.",
    ),
    (
        RESPAWNS,
        Kind::Counter,
        "Managed replicas replaced after going down.",
    ),
    (REPLICAS, Kind::Gauge, "Replicas on the ring."),
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
        "Control-plane requests, by endpoint and status.",
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
    /// Handles for the replica called `name`.
    pub fn new(name: &str) -> Self {
        let r = name.to_string();
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
