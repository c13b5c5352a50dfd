//! Taking the request key from a request.
//!
//! The key is the bytes the ring hashes. Values are used as they appear on the wire (no
//! percent-decoding), so `rid=12%33` and `rid=123` are different keys; a numeric `rid` is the
//! assignment's request ID. When the configured source is absent (no `rid` parameter, no such
//! header) the key is a random 6-digit ID, the assignment's model of a request.

use std::io::Write;
use std::net::IpAddr;

use crate::config::KeySpec;
use crate::sniff::Head;

/// Room for a generated key: a 6-digit ID or an IPv6 address.
pub type Scratch = [u8; 48];

/// The key for this request. Generated keys are written into `scratch`.
pub fn extract<'a>(
    spec: &KeySpec,
    head: &'a Head,
    peer: IpAddr,
    scratch: &'a mut Scratch,
) -> &'a [u8] {
    let found = match spec {
        KeySpec::Query(name) => head.query().and_then(|q| query_param(q, name.as_bytes())),
        KeySpec::Path => Some(head.path()),
        KeySpec::Uri => Some(head.target()),
        KeySpec::Header(name) => head.header(name),
        KeySpec::ClientIp => {
            let mut w = &mut scratch[..];
            let _ = write!(w, "{peer}");
            let n = 48 - w.len();
            return &scratch[..n];
        }
    };
    match found {
        Some(v) if !v.is_empty() => v,
        _ => random_id(scratch),
    }
}

/// The value of `name` in a query string `a=1&rid=2`; a bare `rid` counts as empty.
pub fn query_param<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (k == name).then_some(v)
    })
}

/// A random ID in 100000..=999999, as the assignment models requests.
fn random_id(scratch: &mut Scratch) -> &[u8] {
    let id: u32 = rand::random_range(100_000..=999_999);
    let mut w = &mut scratch[..];
    let _ = write!(w, "{id}");
    &scratch[..6]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Head {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut slots);
        req.parse(raw).unwrap();
        let buf = bytes::BytesMut::from(raw);
        let span = |p: &[u8]| {
            let s = p.as_ptr() as usize - raw.as_ptr() as usize;
            s..s + p.len()
        };
        Head {
            method: span(req.method.unwrap().as_bytes()),
            target: span(req.path.unwrap().as_bytes()),
            headers: req
                .headers
                .iter()
                .map(|h| (span(h.name.as_bytes()), span(h.value)))
                .collect(),
            buf,
        }
    }

    #[test]
    fn sources() {
        let h = head(b"GET /home?x=1&rid=424242 HTTP/1.1\r\nX-User: ann\r\n\r\n");
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let mut s = [0; 48];
        assert_eq!(
            extract(&KeySpec::Query("rid".into()), &h, ip, &mut s),
            b"424242"
        );
        assert_eq!(extract(&KeySpec::Query("x".into()), &h, ip, &mut s), b"1");
        assert_eq!(extract(&KeySpec::Path, &h, ip, &mut s), b"/home");
        assert_eq!(
            extract(&KeySpec::Uri, &h, ip, &mut s),
            b"/home?x=1&rid=424242"
        );
        assert_eq!(
            extract(&KeySpec::Header("x-user".into()), &h, ip, &mut s),
            b"ann"
        );
        assert_eq!(extract(&KeySpec::ClientIp, &h, ip, &mut s), b"127.0.0.7");
    }

    #[test]
    fn random_fallback_is_six_digits() {
        let h = head(b"GET /home HTTP/1.1\r\n\r\n");
        let ip: IpAddr = "::1".parse().unwrap();
        for spec in [
            KeySpec::Query("rid".into()),
            KeySpec::Header("x-user".into()),
        ] {
            let mut s = [0; 48];
            let k = extract(&spec, &h, ip, &mut s);
            assert_eq!(k.len(), 6);
            let n: u32 = std::str::from_utf8(k).unwrap().parse().unwrap();
            assert!((100_000..=999_999).contains(&n));
        }
        let h = head(b"GET /home?rid= HTTP/1.1\r\n\r\n");
        let mut s = [0; 48];
        assert_eq!(
            extract(&KeySpec::Query("rid".into()), &h, ip, &mut s).len(),
            6
        );
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(b"a=1&rid=2", b"rid"), Some(&b"2"[..]));
        assert_eq!(query_param(b"rid", b"rid"), Some(&b""[..]));
        assert_eq!(query_param(b"xrid=2", b"rid"), None);
    }
}
