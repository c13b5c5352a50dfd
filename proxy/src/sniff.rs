//! Reading the request line (and the headers, when the key needs them).
//!
//! The buffer starts small and grows only while a line is long: a connection waiting for its
//! request line costs one small allocation, not a full-size buffer. Whatever is read (the line,
//! headers, even a body or a pipelined request) is kept and replayed to the replica unchanged.

use std::ops::Range;

use bytes::BytesMut;
use tokio::net::TcpStream;

/// First buffer size: a typical request line and its first headers arrive in one segment.
pub const INITIAL_BUFFER: usize = 1024;
/// Header slots when the key needs a header.
const MAX_HEADERS: usize = 64;

/// What was read: the bytes and where the parts of the request line are in them.
#[derive(Debug)]
pub struct Head {
    /// Every byte read from the client so far.
    pub buf: BytesMut,
    /// The method.
    pub method: Range<usize>,
    /// The request target (path and query).
    pub target: Range<usize>,
    /// Header (name, value) ranges, when they were read.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Head {
    /// The request target, e.g. `/home?rid=123456`.
    pub fn target(&self) -> &[u8] {
        &self.buf[self.target.clone()]
    }

    /// The path: the target up to `?`.
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&b| b == b'?') {
            Some(q) => &t[..q],
            None => t,
        }
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&[u8]> {
        let t = self.target();
        t.iter().position(|&b| b == b'?').map(|q| &t[q + 1..])
    }

    /// The value of header `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| self.buf[v.clone()].trim_ascii())
    }
}

/// Why no request line could be read.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The bytes are not an HTTP request line.
    #[error("malformed request line: {0}")]
    Malformed(&'static str),
    /// The request line is longer than the cap.
    #[error("request line longer than {0} bytes")]
    LineTooLong(usize),
    /// The headers do not fit in the cap.
    #[error("request headers larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The client closed before sending a full line.
    #[error("client closed before the request line")]
    Closed,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where the parts of a parsed head sit in its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spans {
    /// The method.
    pub method: Range<usize>,
    /// The request target (path and query).
    pub target: Range<usize>,
    /// Header (name, value) ranges; empty unless the headers were asked for.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
}

/// Reads from `stream` until the request line (or, with `need_headers`, the whole head) is in,
/// within `cap` bytes. The caller puts a deadline around it.
///
/// Every decision is [`parse_head`]'s; this loop only reads, and skips asking while the newest
/// bytes cannot change the answer (no line end, no NUL, still under the cap), so a client that
/// trickles bytes costs a scan of what it sent, not of the whole buffer each time.
pub async fn read_head(
    stream: &TcpStream,
    cap: usize,
    need_headers: bool,
    mut buf: BytesMut,
) -> Result<Head, SniffError> {
    let mut line_seen = false;
    let mut before = 0;
    loop {
        if buf.len() > before {
            let fresh = &buf[before..];
            line_seen = line_seen || fresh.contains(&b'\n');
            let decidable = line_seen
                || buf.len() > cap
                || fresh.contains(&0)
                || (before == 0 && buf.first() == Some(&TLS_HANDSHAKE));
            if decidable {
                if let Some(spans) = parse_head(&buf, cap, need_headers)? {
                    return Ok(Head {
                        method: spans.method,
                        target: spans.target,
                        headers: spans.headers,
                        buf,
                    });
                }
            }
        }
        stream.readable().await?;
        if buf.capacity() == buf.len() {
            let room = buf
                .len()
                .max(INITIAL_BUFFER)
                .min((cap + 1).saturating_sub(buf.len()));
            buf.reserve(room.max(1));
        }
        before = buf.len();
        match read_some(stream, &mut buf) {
            Ok(0) => return Err(SniffError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The first read of a new connection, made before tokio registers the socket: a client
/// usually sends its request right after the handshake, so by the time ringlb accepts, the line
/// is there, and reading it at once saves a trip through the event loop. Reading before the
/// registration matters too: a socket registered with bytes waiting gets a readiness event
/// later, after those bytes are gone, and the forwarding's first read would then fail with EAGAIN.
///
/// Returns what was read, empty (and unallocated) when the client has sent nothing yet; pass it
/// to [`read_head`].
pub fn read_now(stream: &std::net::TcpStream) -> Result<BytesMut, SniffError> {
    use std::io::Read;
    let mut buf = BytesMut::zeroed(INITIAL_BUFFER);
    match (&*stream).read(&mut buf) {
        Ok(0) => Err(SniffError::Closed),
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(BytesMut::new()),
        Err(e) => Err(e.into()),
    }
}

/// Reads what the socket holds into `buf`'s spare room. A read that leaves room unused has
/// drained the socket, so the closure reports WouldBlock and tokio clears the readiness it holds,
/// as its own `poll_read` does: the first read of the forwarding that follows then waits for new
/// bytes instead of trying once and failing with EAGAIN.
fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    use std::io::Read;
    let start = buf.len();
    let room = buf.capacity() - start;
    buf.resize(start + room, 0);
    let mut got = 0;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(stream)).read(&mut buf[start..])?;
        got = n;
        if n > 0 && n < room {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    buf.truncate(start + got);
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Decides what the first bytes of a connection are: `Ok(Some(_))` a complete request line (or
/// head, with `need_headers`), `Ok(None)` not yet (read more), `Err(_)` never (answer and close).
///
/// A pure function of its input, with no I/O: [`read_head`] calls it, and so do the fuzz target
/// (`proxy/fuzz`) and the corpus replay test. It never panics, whatever the bytes.
pub fn parse_head(buf: &[u8], cap: usize, need_headers: bool) -> Result<Option<Spans>, SniffError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > cap {
            return Err(SniffError::LineTooLong(cap));
        }
        // A NUL or a TLS handshake will never become a request line: say so now.
        return match hopeless(buf) {
            Some(e) => Err(SniffError::Malformed(e)),
            None => Ok(None),
        };
    };
    let end = nl + 1;
    if end > cap + 1 {
        return Err(SniffError::LineTooLong(cap));
    }
    // The line is held to the same rules whether or not the headers follow (httparse alone
    // would skip a leading empty line when it parses a whole head).
    let line = parse_line(buf, end)?;
    if !need_headers {
        return Ok(Some(line));
    }
    match parse_full(buf)? {
        // A head that arrived in one piece is held to the cap too: whether it fits must not
        // depend on how the client split its writes.
        Some((len, _)) if len > cap => Err(SniffError::HeadersTooLarge(cap)),
        Some((_, spans)) => Ok(Some(spans)),
        None if buf.len() > cap => Err(SniffError::HeadersTooLarge(cap)),
        None => Ok(None),
    }
}

/// Parses just the request line in `buf[..end]`.
fn parse_line(buf: &[u8], end: usize) -> Result<Spans, SniffError> {
    let mut no_headers = [httparse::EMPTY_HEADER; 0];
    let mut req = httparse::Request::new(&mut no_headers);
    req.parse(&buf[..end]).map_err(reason)?;
    let (Some(method), Some(path), Some(_)) = (req.method, req.path, req.version) else {
        return Err(SniffError::Malformed("incomplete request line"));
    };
    Ok(Spans {
        method: span(buf, method.as_bytes()),
        target: span(buf, path.as_bytes()),
        headers: Vec::new(),
    })
}

/// Parses the whole head: its length and spans, or `None` when it is not complete yet.
fn parse_full(buf: &[u8]) -> Result<Option<(usize, Spans)>, SniffError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let httparse::Status::Complete(len) = req.parse(buf).map_err(reason)? else {
        return Ok(None);
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(SniffError::Malformed("incomplete request line"));
    };
    Ok(Some((
        len,
        Spans {
            method: span(buf, method.as_bytes()),
            target: span(buf, path.as_bytes()),
            headers: req
                .headers
                .iter()
                .map(|h| (span(buf, h.name.as_bytes()), span(buf, h.value)))
                .collect(),
        },
    )))
}

fn reason(e: httparse::Error) -> SniffError {
    SniffError::Malformed(match e {
        httparse::Error::Token => "invalid method",
        httparse::Error::Version => "invalid or missing HTTP version",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid request target",
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::TooManyHeaders => "too many headers",
    })
}

/// Where `part` (a sub-slice of `buf`) sits in `buf`.
fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// The first byte of a TLS record carrying a handshake (a ClientHello on a plain HTTP port).
const TLS_HANDSHAKE: u8 = 0x16;

/// Bytes that can never start a request line.
fn hopeless(buf: &[u8]) -> Option<&'static str> {
    if buf.first() == Some(&TLS_HANDSHAKE) {
        return Some("TLS handshake on a plain HTTP port");
    }
    if buf.contains(&0) {
        return Some("NUL byte in the request line");
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn sniff(input: &[u8], cap: usize, headers: bool) -> Result<Head, SniffError> {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        c.write_all(input).await.unwrap();
        c.shutdown().await.unwrap();
        let r = read_head(&s, cap, headers, BytesMut::new()).await;
        drop(c);
        r
    }

    #[tokio::test]
    async fn request_line() {
        let h = sniff(
            b"GET /home?rid=42&x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            8192,
            false,
        )
        .await
        .unwrap();
        assert_eq!(&h.buf[h.method.clone()], b"GET");
        assert_eq!(h.target(), b"/home?rid=42&x=1");
        assert_eq!(h.path(), b"/home");
        assert_eq!(h.query(), Some(&b"rid=42&x=1"[..]));
        assert_eq!(
            &h.buf[..],
            b"GET /home?rid=42&x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn headers_when_needed() {
        let h = sniff(b"GET / HTTP/1.1\r\nX-User: bob \r\n\r\n", 8192, true)
            .await
            .unwrap();
        assert_eq!(h.header("x-user"), Some(&b"bob"[..]));
    }

    #[tokio::test]
    async fn bad_input() {
        for bad in [
            &b"\r\n"[..],
            b"\n",
            b"GET / HTTP/1.1\x00\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00",
            b"GET /\r\n",
            b"GET / HTTP/1.1 extra\r\n",
            b"G\xffT / HTTP/1.1\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\n",
        ] {
            let r = sniff(bad, 8192, false).await;
            assert!(matches!(r, Err(SniffError::Malformed(_))), "{bad:?}: {r:?}");
        }
        let spaces = [b' '; 10_000];
        assert!(matches!(
            sniff(&spaces, 8192, false).await,
            Err(SniffError::LineTooLong(_))
        ));
        let long = format!("GET /?rid={} HTTP/1.1\r\n", "9".repeat(9000));
        assert!(matches!(
            sniff(long.as_bytes(), 8192, false).await,
            Err(SniffError::LineTooLong(_))
        ));
        assert!(matches!(
            sniff(b"GET /ho", 8192, false).await,
            Err(SniffError::Closed)
        ));
    }

    #[test]
    fn parse_head_decides_on_bytes_alone() {
        let line = b"GET /home?rid=7 HTTP/1.1\r\n";
        let spans = parse_head(line, 8192, false).unwrap().unwrap();
        assert_eq!(&line[spans.target], b"/home?rid=7");
        assert!(parse_head(b"GET /ho", 8192, false).unwrap().is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 8192, true)
            .unwrap()
            .is_none());
        assert!(matches!(
            parse_head(b"GET /\x00", 8192, false),
            Err(SniffError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(&[b'a'; 17], 16, false),
            Err(SniffError::LineTooLong(16))
        ));
    }

    #[tokio::test]
    async fn just_under_the_cap() {
        let line = format!("GET /?rid={} HTTP/1.1\r\n", "7".repeat(8192 - 21));
        assert_eq!(line.len(), 8192);
        assert!(sniff(line.as_bytes(), 8192, false).await.is_ok());
    }

    /// `read_now` then `read_head`, the way `conn::serve` uses them.
    #[tokio::test]
    async fn first_read_before_registration() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();

        // Nothing sent yet: no bytes, and no buffer held.
        let buf = read_now(&s).unwrap();
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), 0);

        // Half a line now, the rest once the socket is registered.
        use std::io::Write;
        c.write_all(b"GET /home?ri").unwrap();
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf = read_now(&s).unwrap();
            if !buf.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(&buf[..], b"GET /home?ri");
        let s = TcpStream::from_std(s).unwrap();
        c.write_all(b"d=7 HTTP/1.1\r\n").unwrap();
        let h = read_head(&s, 8192, false, buf).await.unwrap();
        assert_eq!(h.target(), b"/home?rid=7");

        // A whole line read at once is decided without waiting for the socket.
        let mut whole = BytesMut::new();
        whole.extend_from_slice(b"GET /a HTTP/1.1\r\n");
        let h = read_head(&s, 8192, false, whole).await.unwrap();
        assert_eq!(h.path(), b"/a");

        // A client that leaves before sending anything.
        let (c2, s2) = {
            let c2 = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s2, _) = l.accept().unwrap();
            (c2, s2)
        };
        s2.set_nonblocking(true).unwrap();
        drop(c2);
        let mut closed = false;
        for _ in 0..100 {
            match read_now(&s2) {
                Err(SniffError::Closed) => {
                    closed = true;
                    break;
                }
                Ok(b) if b.is_empty() => std::thread::sleep(std::time::Duration::from_millis(5)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(closed);
    }
}
