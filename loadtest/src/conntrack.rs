//! The kernel's connection-tracking table, which a connection-per-request load fills.
//!
//! Where netfilter's conntrack is loaded (any host running Docker), every TCP connection, on
//! loopback too, holds a table entry until 120 s after it closed (`nf_conntrack_tcp_timeout_time_wait`).
//! A request through ringlb opens two connections (client → ringlb → replica), so at a few
//! thousand requests per second the table (`nf_conntrack_max`) fills within seconds; after that
//! the kernel drops new SYNs, connects time out, ringlb marks healthy replicas down and answers
//! 503. That is the host failing, not the hash, so before each measurement the experiments wait
//! until the table has room for the connections they are about to open.

use std::time::{Duration, Instant};

use serde::Serialize;

const COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
const MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// Entries in use and the table's size.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Usage {
    pub count: u64,
    pub max: u64,
}

/// The table's usage; `None` where conntrack is not loaded.
pub fn usage() -> Option<Usage> {
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse().ok();
    Some(Usage {
        count: read(COUNT)?,
        max: read(MAX)?,
    })
}

/// Connections a run of `requests` proxied requests opens (client side and replica side), with
/// room for health checks and control calls.
pub fn needed(requests: usize) -> u64 {
    2 * requests as u64 + 2000
}

/// Waits (at most `limit`) until `needed` more entries fit. Returns how long it waited, or `None`
/// when it did not have to (or conntrack is not there).
pub async fn wait_for_room(needed: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let u = usage()?;
        if u.count + needed <= u.max || start.elapsed() >= limit {
            return said.then(|| start.elapsed());
        }
        if !said {
            eprintln!(
                "waiting for room in the conntrack table: {} of {} entries used, {needed} needed",
                u.count, u.max
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
