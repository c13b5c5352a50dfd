//! One client connection, from the request line to the end of forwarding.
//!
//! sniff → key → pick on the ring → connect (failing over) → replay → splice → one log line.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlb_core::{Backend, Directory, Key};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::ProxyConfig;
use crate::key;
use crate::reject::{self, Reason};
use crate::sniff::{self, SniffError};
use crate::splice::{self, Counts, End};

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub cfg: ProxyConfig,
    /// Where the routing snapshot is published.
    pub directory: Arc<Directory>,
    /// Cancelled when the drain period after a shutdown signal is over.
    pub hard_stop: CancellationToken,
}

/// Serves one accepted connection: a non-blocking socket that tokio has not registered yet (the
/// first read comes before the registration, see [`sniff::read_now`]).
pub async fn serve(client: std::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let started = Instant::now();
    let cfg = &shared.cfg;
    // On Linux the socket has TCP_NODELAY already: accepted sockets inherit it from the
    // listener (`app::bind_data`; its test checks it).
    #[cfg(not(target_os = "linux"))]
    let _ = client.set_nodelay(true);
    let first = sniff::read_now(&client);
    let Ok(client) = TcpStream::from_std(client) else {
        return; // no room in the event loop: the close is all the client gets
    };
    let sniffed = match first {
        Ok(buf) => {
            tokio::time::timeout(
                cfg.request_timeout,
                sniff::read_head(&client, cfg.max_request_line, cfg.key.needs_headers(), buf),
            )
            .await
        }
        Err(e) => Ok(Err(e)),
    };
    let head = match sniffed {
        Ok(Ok(head)) => head,
        Ok(Err(SniffError::Closed)) | Ok(Err(SniffError::Io(_))) => {
            tracing::debug!(target: "ringlb::conn", %peer, "client left before a request line");
            return;
        }
        Ok(Err(e)) => {
            let reason = match e {
                SniffError::LineTooLong(_) => Reason::TooLong,
                SniffError::HeadersTooLarge(_) => Reason::HeadersTooLarge,
                _ => Reason::BadRequest,
            };
            return rejected(client, peer, started, reason, &e.to_string()).await;
        }
        Err(_) => {
            let msg = format!("no complete request line within {:?}", cfg.request_timeout);
            return rejected(client, peer, started, Reason::Timeout, &msg).await;
        }
    };

    if let Some(admin) = cfg.admin.filter(|_| is_admin_path(head.path())) {
        return match connect(admin, cfg.connect_timeout, &head.buf).await {
            Ok((upstream, sent)) => {
                let counts = Counts::default();
                counts.up.store(sent as u64, Ordering::Relaxed);
                let end = Box::pin(replay_and_forward(
                    &client,
                    &upstream,
                    &head.buf[sent..],
                    cfg,
                    &counts,
                    &shared,
                ))
                .await;
                log_done(peer, "control", &counts, started, end);
            }
            Err(_) => {
                rejected(
                    client,
                    peer,
                    started,
                    Reason::NoReplica,
                    "control plane unreachable",
                )
                .await
            }
        };
    }

    let routes = shared.directory.load();
    let mut scratch: key::Scratch = [0; 48];
    let key = key::extract(&cfg.key, &head, peer.ip(), &mut scratch);
    let mut chosen = None;
    for backend in routes
        .candidates(Key::new(key))
        .take(1 + cfg.retries as usize)
    {
        let t = Instant::now();
        match connect(backend.addr, cfg.connect_timeout, &head.buf).await {
            Ok((upstream, sent)) => {
                backend.health.connect_succeeded();
                backend
                    .metrics
                    .connect_seconds
                    .record(t.elapsed().as_secs_f64());
                chosen = Some((backend, upstream, sent));
                break;
            }
            Err(e) => {
                match e {
                    ConnectError::Timeout => backend.metrics.connect_timeout.increment(1),
                    ConnectError::Io(ref io)
                        if io.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        backend.metrics.connect_refused.increment(1)
                    }
                    ConnectError::Io(_) => backend.metrics.connect_other.increment(1),
                }
                if e.is_local() {
                    // Out of descriptors, buffers or ports here: not the replica's fault, and
                    // the next replica would fail the same way.
                    tracing::debug!(replica = %backend.name, error = ?e, "connect failed on this host");
                    break;
                }
                if backend.health.connect_failed(cfg.fall) {
                    tracing::warn!(replica = %backend.name, "replica marked down after failed connects");
                }
                tracing::debug!(replica = %backend.name, error = ?e, "connect failed; trying the next replica");
            }
        }
    }
    let Some((backend, upstream, sent)) = chosen else {
        let msg = if routes.any_up() {
            "no replica could be reached"
        } else {
            "no healthy replica"
        };
        return rejected(client, peer, started, Reason::NoReplica, msg).await;
    };
    proxy_to(
        client, upstream, peer, started, &head.buf, sent, backend, &shared,
    )
    .await;
}

/// Forwards to a chosen replica, with its counters. `head[..sent]` went out with the connect.
#[allow(clippy::too_many_arguments)]
async fn proxy_to(
    client: TcpStream,
    upstream: TcpStream,
    peer: SocketAddr,
    started: Instant,
    head: &[u8],
    sent: usize,
    backend: &Arc<Backend>,
    shared: &Shared,
) {
    let h = &backend.health;
    let mx = &backend.metrics;
    h.total.fetch_add(1, Ordering::Relaxed);
    h.active.fetch_add(1, Ordering::Relaxed);
    mx.routed.increment(1);
    mx.active.increment(1.0);
    let counts = Counts::default();
    counts.up.store(sent as u64, Ordering::Relaxed);
    // Boxed: the forwarding state is most of a connection's future, and only connections that
    // reach a replica need it; one still waiting for its request line (a slowloris) stays small.
    let end = Box::pin(replay_and_forward(
        &client,
        &upstream,
        &head[sent..],
        &shared.cfg,
        &counts,
        shared,
    ))
    .await;
    let (up, down) = (
        counts.up.load(Ordering::Relaxed),
        counts.down.load(Ordering::Relaxed),
    );
    h.active.fetch_sub(1, Ordering::Relaxed);
    h.bytes_to_replica.fetch_add(up, Ordering::Relaxed);
    h.bytes_to_client.fetch_add(down, Ordering::Relaxed);
    mx.active.decrement(1.0);
    mx.bytes_to_replica.increment(up);
    mx.bytes_to_client.increment(down);
    mx.connection_seconds
        .record(started.elapsed().as_secs_f64());
    log_done(peer, &backend.name, &counts, started, end);
}

async fn replay_and_forward(
    client: &TcpStream,
    upstream: &TcpStream,
    head: &[u8],
    cfg: &ProxyConfig,
    counts: &Counts,
    shared: &Shared,
) -> End {
    if !head.is_empty() {
        if splice::write_all(upstream, head).await.is_err() {
            return End::Error;
        }
        counts.up.fetch_add(head.len() as u64, Ordering::Relaxed);
    }
    tokio::select! {
        end = splice::forward(client, upstream, cfg.idle_timeout, cfg.splice, counts) => end,
        _ = shared.hard_stop.cancelled() => End::Shutdown,
    }
}

#[derive(Debug)]
enum ConnectError {
    Timeout,
    Io(std::io::Error),
}

impl ConnectError {
    /// A failure of this host (no descriptor, buffer or local port for the socket), which says
    /// nothing about the replica's health.
    fn is_local(&self) -> bool {
        matches!(self, ConnectError::Io(e) if is_local_error(e))
    }
}

/// Errors that come from running out of a local resource, not from the peer.
fn is_local_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Connects to `addr` and sends as much of `head` as the new connection takes at once; returns
/// the stream and how many bytes of `head` went out.
///
/// The head is sent right after `connect` returns, without waiting to learn whether the handshake
/// is done: on loopback and on a fast network it usually is (the kernel answers the SYN before
/// `connect` returns), so the request leaves at once and the wait for writability and the
/// `SO_ERROR` query are saved. A socket still connecting refuses the send with EAGAIN, and only
/// then does ringlb wait. A refused connect shows up as the send's error. Either way nothing has
/// reached the replica when this fails, so trying the next one is safe.
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    head: &[u8],
) -> Result<(TcpStream, usize), ConnectError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let started = async {
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        let _ = sock.set_tcp_nodelay(true);
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // Registered before anything is sent, so that no error after the send can make the
        // caller try another replica with a request this one already has.
        let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
        let sent = match socket2::SockRef::from(&stream).send_with_flags(head, libc::MSG_NOSIGNAL) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        if sent == 0 {
            // Still connecting: writable once the handshake is done or has failed.
            stream.writable().await?;
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
        }
        Ok((stream, sent))
    };
    match tokio::time::timeout(timeout, started).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout),
    }
}

fn is_admin_path(path: &[u8]) -> bool {
    matches!(path, b"/rep" | b"/add" | b"/rm")
}

async fn rejected(
    client: TcpStream,
    peer: SocketAddr,
    started: Instant,
    reason: Reason,
    msg: &str,
) {
    tracing::info!(target: "ringlb::conn", %peer, replica = "-", bytes_up = 0u64, bytes_down = 0u64,
        duration_ms = started.elapsed().as_secs_f64() * 1e3, end = reason.label(), detail = msg,
        "connection rejected");
    reject::answer(client, reason, msg).await;
}

fn log_done(peer: SocketAddr, replica: &str, counts: &Counts, started: Instant, end: End) {
    tracing::info!(target: "ringlb::conn", %peer, replica,
        bytes_up = counts.up.load(Ordering::Relaxed),
        bytes_down = counts.down.load(Ordering::Relaxed),
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        end = end.as_str(),
        "connection closed");
}
