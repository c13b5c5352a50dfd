//! The accept loop.
//!
//! - A connection cap: past `max_conns` served connections a new client gets a 503 and a close at
//!   once (counted as `over_capacity`), so ringlb never runs out of file descriptors for the
//!   connections it already serves. Refusals do not hold a slot, so a freed slot is reused by the
//!   next accept even while refused clients are still being answered.
//! - Accept errors back off: when the process is out of file descriptors (EMFILE) accepting
//!   again at once would spin on the same error, so the loop sleeps, doubling from 5 ms to
//!   200 ms, and logs at most one line a second about it.
//! - Shutdown stops accepting at once: the connections already in the listen backlog are
//!   taken and served, then the listener is closed; open connections get `drain_timeout` to
//!   finish, then the rest are cut.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use ringlb_core::{metrics as m, Directory};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::busy;
use crate::config::ProxyConfig;
use crate::conn::{self, Shared};
use crate::reject::{self, Reason};

const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Short enough that service resumes well within a second of descriptors freeing up.
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Most connections taken from the backlog at shutdown: the listen backlog ringlb asks for
/// (4096), so the loop ends even while clients keep arriving.
const BACKLOG_TAKEN: usize = 4096;

/// Serves the data port until `shutdown` is cancelled, then drains. `served` counts the
/// connections being served under the cap; the workers of one process share it (see
/// [`crate::workers`]).
pub async fn run(
    listener: std::net::TcpListener,
    directory: Arc<Directory>,
    cfg: ProxyConfig,
    served: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    let drain = cfg.drain_timeout;
    let max_conns = cfg.max_conns;
    let hard_stop = CancellationToken::new();
    let shared = Arc::new(Shared {
        cfg,
        directory,
        hard_stop: hard_stop.clone(),
    });
    let tracker = TaskTracker::new();
    let accepted_total = ::metrics::counter!(m::ACCEPTED);
    let open = ::metrics::gauge!(m::OPEN);
    // Accepted sockets come from mio unregistered (non-blocking, close-on-exec): `conn::serve`
    // reads the request line before tokio registers them, see there.
    let admit = |stream: mio::net::TcpStream, peer: std::net::SocketAddr| {
        let stream = std::net::TcpStream::from(stream);
        accepted_total.increment(1);
        open.increment(1.0);
        // Only served connections take a slot: a refusal that lingers to deliver its 503 must
        // not keep a slot that a served connection just freed from being reused. The count is
        // shared by the workers, so a slot is taken in one atomic step.
        let took_slot = served
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_conns).then_some(n + 1)
            })
            .is_ok();
        if !took_slot {
            let guard = OpenGuard(None, open.clone());
            tracker.spawn(busy::counted(async move {
                let _guard = guard;
                if let Ok(stream) = TcpStream::from_std(stream) {
                    reject::answer(
                        stream,
                        Reason::OverCapacity,
                        &format!("ringlb is at its connection limit ({max_conns})"),
                    )
                    .await;
                }
            }));
            return;
        }
        let guard = OpenGuard(Some(served.clone()), open.clone());
        let shared = shared.clone();
        tracker.spawn(busy::counted(async move {
            let _guard = guard;
            conn::serve(stream, peer, shared).await;
        }));
    };
    // tokio marks this safe constructor deprecated because an arbitrary `AsRawFd` value could
    // close or swap its descriptor while registered. A mio listener owned by the `AsyncFd` cannot:
    // its descriptor lives exactly as long as the registration (`into_inner` deregisters before
    // handing it back). tokio's own `TcpListener` would register every accepted socket at once,
    // before ringlb's first read (see `conn::serve`), which is why it is not used here.
    #[allow(deprecated)]
    let watched = AsyncFd::with_interest(TcpListener::from_std(listener), Interest::READABLE);
    let listener = match watched {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the data listener");
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    let mut last_complaint: Option<Instant> = None;
    let mut suppressed = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = accept(&listener) => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = BACKOFF_MIN;
                a
            }
            Err(e) => {
                let kind = accept_error_kind(&e);
                ::metrics::counter!(m::ACCEPT_ERRORS, "kind" => kind).increment(1);
                if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, kind, suppressed, "accept failed; backing off");
                    last_complaint = Some(Instant::now());
                    suppressed = 0;
                } else {
                    suppressed += 1;
                }
                if kind != "aborted" {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                continue;
            }
        };
        admit(stream, peer);
    }
    // The kernel completed these handshakes before the listener closes: serve them instead of
    // letting the close reset them (with SO_REUSEPORT, a new ringlb on the same port already
    // takes the connections that arrive from now on).
    let listener = listener.into_inner();
    for _ in 0..BACKLOG_TAKEN {
        let Ok((stream, peer)) = listener.accept() else {
            break; // empty (WouldBlock), or out of descriptors
        };
        admit(stream, peer);
    }
    drop(listener);
    tracker.close();
    let left = tracker.len();
    if left > 0 {
        tracing::info!(
            open = left,
            drain_ms = drain.as_millis() as u64,
            "draining connections"
        );
    }
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(
            cut = tracker.len(),
            "drain period over; closing the remaining connections"
        );
        hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
}

/// Takes one connection from the listen queue, waiting until there is one.
async fn accept(
    listener: &AsyncFd<TcpListener>,
) -> std::io::Result<(mio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        // WouldBlock (the queue is empty) clears the readiness, and the loop waits again.
        if let Ok(r) = ready.try_io(|l| l.get_ref().accept()) {
            return r;
        }
    }
}

/// Counts a connection as open (and, when it holds one, its slot under the cap) until the task
/// ends.
struct OpenGuard(Option<Arc<AtomicUsize>>, ::metrics::Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(served) = &self.0 {
            served.fetch_sub(1, Ordering::AcqRel);
        }
        self.1.decrement(1.0);
    }
}

fn accept_error_kind(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => "fd_limit",
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => "memory",
        Some(libc::ECONNABORTED) | Some(libc::EPROTO) | Some(libc::EPERM) => "aborted",
        _ => "other",
    }
}
