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
    tokio::time::timeout(timeout, probe(addr))
        .await
        .unwrap_or(false)
}

async fn probe(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return false;
    };
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
