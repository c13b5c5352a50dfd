//! The accept loop: one hyper HTTP/1 connection task per accepted socket, until shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::routes::{ReplicaService, Routes};
use crate::Config;

/// How long a client may take to send a request's headers. It cuts off slow-loris clients that
/// would otherwise pin a task and a file descriptor forever. hyper arms it whenever it waits for
/// a request head, so it is also the keep-alive idle timeout: 10 s is longer than any load test
/// pauses between requests, and in the range nginx and Apache use for idle connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for in-flight requests. Every answer is computed without I/O, so a
/// request that is still open after 5 s belongs to a client that stopped reading; waiting longer
/// would only delay the exit an orchestrator is waiting for (Docker's default grace is 10 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// First pause after a failed `accept`. Errors like EMFILE persist until a connection closes,
/// so retrying at once would spin a core without making progress.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Longest pause between failed `accept`s: short enough that the replica resumes promptly (and
/// passes its next health check) once descriptors are free again.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Serves HTTP/1.1 with keep-alive on `listener` until `shutdown` resolves (or, when
/// [`Config::exit_on_stdin_eof`] is set, until stdin ends), then stops accepting and gives open
/// connections up to [`DRAIN_TIMEOUT`] to finish their current request.
///
/// Prints nothing to stdout, so a parent can keep reading the announce line's pipe without
/// noise. Errors from `accept` are logged and retried with back-off rather than returned: a
/// replica that runs out of descriptors recovers by itself once connections close. The
/// `io::Result` leaves room for failures that cannot be retried.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = ReplicaService(Arc::new(Routes::new(config.id, &config.name)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        // Under pipelined load, batch the answers of consecutive requests into one write.
        .pipeline_flush(true);

    let stdin_eof = config.exit_on_stdin_eof;
    let shutdown = async move {
        if stdin_eof {
            tokio::select! {
                () = shutdown => {}
                () = crate::shutdown::stdin_eof() => {
                    tracing::info!("stdin reached EOF; shutting down");
                }
            }
        } else {
            shutdown.await;
        }
    };
    tokio::pin!(shutdown);

    let graceful = GracefulShutdown::new();
    // Never sent on: dropping the sender when `serve` returns wakes every connection task that
    // outlived the drain, so none lingers in a runtime that keeps running (tests, `ringlb`).
    let (_close_all, close_rx) = watch::channel(());
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            // The peer gave up between SYN and accept; nothing is wrong with the listener.
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                tracing::warn!(error = %err, pause = ?backoff, "accept failed; backing off");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        // Answers are small and written whole; Nagle would only hold them back for an ACK.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let connection =
            graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        let mut close = close_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        // Resets, header timeouts and malformed requests are the client's business.
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
                _ = close.changed() => tracing::debug!("connection closed after the drain timeout"),
            }
        });
    }

    // Closing the listener first makes new connections fail fast (and a health check mark the
    // replica down) while the open ones drain.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the drain timeout; closing them");
        }
    }
    Ok(())
}

/// Accept errors that concern one half-open connection rather than the listener.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
