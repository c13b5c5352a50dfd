//! Answers for connections that never reach a replica.
//!
//! Each is a complete HTTP/1.1 response in the assignment's JSON envelope, followed by a close.
//! Before closing, whatever the client is still sending is read and dropped for a moment
//! (lingering close), so the client sees the answer instead of a reset.

use std::time::Duration;

use ringlb_core::metrics as m;
use tokio::net::TcpStream;

use crate::splice::write_all;

/// Why a connection was answered by ringlb itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not an HTTP request line (400).
    BadRequest,
    /// Request line over the cap (414).
    TooLong,
    /// Headers over the cap, when the key needs them (431).
    HeadersTooLarge,
    /// No request line within the deadline (408).
    Timeout,
    /// No healthy replica could be reached (503).
    NoReplica,
    /// The connection cap is reached (503).
    OverCapacity,
}

impl Reason {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::TooLong => "too_long",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::Timeout => "timeout",
            Reason::NoReplica => "no_replica",
            Reason::OverCapacity => "over_capacity",
        }
    }

    fn status(&self) -> &'static str {
        match self {
            Reason::BadRequest => "400 Bad Request",
            Reason::TooLong => "414 URI Too Long",
            Reason::HeadersTooLarge => "431 Request Header Fields Too Large",
            Reason::Timeout => "408 Request Timeout",
            Reason::NoReplica | Reason::OverCapacity => "503 Service Unavailable",
        }
    }
}

/// How long a rejected client's remaining bytes are drained before the close.
const LINGER: Duration = Duration::from_millis(50);
/// Most bytes drained during the linger.
const LINGER_BYTES: usize = 256 * 1024;

/// Sends the answer for `reason` with `detail` as the message, then closes.
pub async fn answer(stream: TcpStream, reason: Reason, detail: &str) {
    ::metrics::counter!(m::REJECTED, "reason" => reason.label()).increment(1);
    let body = envelope(detail);
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reason.status(),
        body.len(),
        body
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        write_all(&stream, response.as_bytes()),
    )
    .await;
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
    let _ = tokio::time::timeout(LINGER, drain(&stream)).await;
}

async fn drain(s: &TcpStream) {
    // On the heap, not in the future: every connection task's future is as large as its
    // largest state, and this one is awaited by all of them.
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    while total < LINGER_BYTES {
        if s.readable().await.is_err() {
            return;
        }
        match s.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

/// `{"message":"<Error> …","status":"failure"}`, the assignment's error envelope.
fn envelope(detail: &str) -> String {
    serde_json::json!({ "message": format!("<Error> {detail}"), "status": "failure" }).to_string()
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_has_a_series_from_the_start() {
        for r in [
            Reason::BadRequest,
            Reason::TooLong,
            Reason::HeadersTooLarge,
            Reason::Timeout,
            Reason::NoReplica,
            Reason::OverCapacity,
        ] {
            assert!(
                ringlb_core::metrics::REJECT_REASONS.contains(&r.label()),
                "{r:?}"
            );
        }
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            super::envelope("a \"b\"\n"),
            r#"{"message":"<Error> a \"b\"\n","status":"failure"}"#
        );
    }
}
