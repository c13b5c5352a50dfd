//! One active health check: `GET /heartbeat` must answer 200 within the timeout.
//!
//! A replica that accepts and closes at once, answers garbage or answers late is not healthy.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Whether the replica at `addr` answers `GET /heartbeat` with a 2xx within `timeout`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> bool {
    verdict(addr, timeout).await.unwrap_or(false)
}

/// Like [`check`], but `None` when this host could not even try (out of descriptors, buffers or
/// local ports): that says nothing about the replica, so it must not count toward `fall`.
pub async fn verdict(addr: SocketAddr, timeout: Duration) -> Option<bool> {
    tokio::time::timeout(timeout, probe(addr))
        .await
        .unwrap_or(Some(false))
}

async fn probe(addr: SocketAddr) -> Option<bool> {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) if is_local_error(&e) => return None,
        Err(_) => return Some(false),
    };
    Some(exchange(stream, addr).await)
}

/// Errors that come from running out of a local resource, not from the peer.
fn is_local_error(e: &std::io::Error) -> bool {
    // Linux errno values of EMFILE, ENFILE and ENOBUFS (std has no stable kind for them).
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::OutOfMemory
    ) || (cfg!(target_os = "linux") && matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS)))
}

async fn exchange(stream: TcpStream, addr: SocketAddr) -> bool {
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return false;
    };
    let driver = tokio::spawn(conn);
    let req = Request::get("/heartbeat")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let ok = match req {
        Ok(req) => matches!(sender.send_request(req).await, Ok(r) if r.status().is_success()),
        Err(_) => false,
    };
    driver.abort();
    ok
}

/// Polls `check` until it passes or `within` runs out: how a freshly started replica is
/// confirmed before it is put on the ring.
pub async fn wait_ready(addr: SocketAddr, within: Duration, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if check(addr, timeout).await {
            return true;
        }
        if tokio::time::Instant::now() + pause >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
