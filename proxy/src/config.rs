//! Data-plane settings.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Where the request key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// A query parameter (`query:rid`, the default); a random 6-digit ID when absent.
    Query(String),
    /// The path without the query string.
    Path,
    /// The whole request target, query included.
    Uri,
    /// The client's IP address.
    ClientIp,
    /// A request header (read up to the end of the headers); a random ID when absent.
    Header(String),
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec::Query("rid".into())
    }
}

impl KeySpec {
    /// Whether the key needs the headers, not just the request line.
    pub fn needs_headers(&self) -> bool {
        matches!(self, KeySpec::Header(_))
    }
}

impl FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = |rest: &str, what: &str| {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                Err(format!("{what} needs a name, e.g. {what}:rid"))
            } else {
                Ok(rest.to_string())
            }
        };
        match s {
            "path" => Ok(KeySpec::Path),
            "uri" => Ok(KeySpec::Uri),
            "client-ip" => Ok(KeySpec::ClientIp),
            _ => {
                if let Some(rest) = s.strip_prefix("query:") {
                    named(rest, "query").map(KeySpec::Query)
                } else if let Some(rest) = s.strip_prefix("header:") {
                    named(rest, "header").map(|h| KeySpec::Header(h.to_ascii_lowercase()))
                } else {
                    Err(format!(
                        "unknown key {s:?} (expected query:NAME, path, uri, client-ip or header:NAME)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Query(n) => write!(f, "query:{n}"),
            KeySpec::Path => f.write_str("path"),
            KeySpec::Uri => f.write_str("uri"),
            KeySpec::ClientIp => f.write_str("client-ip"),
            KeySpec::Header(n) => write!(f, "header:{n}"),
        }
    }
}

/// Everything the data plane needs to know, validated before it starts.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where the key comes from.
    pub key: KeySpec,
    /// Deadline for the request line (and headers when needed): slow clients get 408.
    pub request_timeout: Duration,
    /// Size cap of the request line: longer lines get 414. 8 KiB, like nginx's
    /// `large_client_header_buffers` and HAProxy's `tune.bufsize` half, holds any sane URL.
    pub max_request_line: usize,
    /// Timeout of one connect to a replica.
    pub connect_timeout: Duration,
    /// How many other replicas to try after a failed connect.
    pub retries: u32,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_conns: usize,
    /// Where `/rep`, `/add` and `/rm` on the data port go (`--admin-on-data-port`).
    pub admin: Option<SocketAddr>,
    /// Failed connects in a row that take a replica down at once (the health checks' `fall`).
    pub fall: u32,
    /// How long open connections may finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// How bytes are forwarded.
    pub splice: crate::splice::Mode,
    /// How long a worker keeps polling for events after its last work before it sleeps (see
    /// [`crate::busy`]); zero, the default, sleeps at once.
    pub busy_poll: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            key: KeySpec::default(),
            request_timeout: Duration::from_secs(5),
            max_request_line: 8 * 1024,
            connect_timeout: Duration::from_secs(1),
            retries: 2,
            idle_timeout: Duration::from_secs(60),
            max_conns: 10_000,
            admin: None,
            fall: 2,
            drain_timeout: Duration::from_secs(10),
            splice: crate::splice::Mode::Always,
            busy_poll: Duration::ZERO,
        }
    }
}

/// File descriptors one proxied connection holds: the client and replica sockets and two pipes.
pub const FDS_PER_CONN: u64 = 6;
/// File descriptors kept back for listeners, health checks, replicas' pipes and logs.
pub const FD_RESERVE: u64 = 64;

/// The connection cap that the open-file limit allows: `(nofile - reserve) / 6`.
pub fn max_conns_for(nofile: u64) -> usize {
    (nofile.saturating_sub(FD_RESERVE) / FDS_PER_CONN).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs() {
        assert_eq!("query:rid".parse(), Ok(KeySpec::Query("rid".into())));
        assert_eq!(
            "header:X-User".parse(),
            Ok(KeySpec::Header("x-user".into()))
        );
        assert_eq!("path".parse(), Ok(KeySpec::Path));
        assert_eq!("client-ip".parse(), Ok(KeySpec::ClientIp));
        assert!("query:".parse::<KeySpec>().is_err());
        assert!("cookie:a".parse::<KeySpec>().is_err());
        assert_eq!(
            KeySpec::Header("x-user".into()).to_string(),
            "header:x-user"
        );
    }

    #[test]
    fn cap_from_fd_limit() {
        assert_eq!(max_conns_for(256), 32);
        assert_eq!(max_conns_for(10), 1);
    }
}
