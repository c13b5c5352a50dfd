//! Bad input on the data port through the real binary: each gets its answer, never reaches a
//! replica, and the proxy keeps serving others meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{raw, status_of, Ringlb};

fn replica_connections(lb: &Ringlb) -> u64 {
    lb.details()
        .iter()
        .map(|d| d["total_connections"].as_u64().unwrap())
        .sum()
}

#[test]
fn malformed_lines_get_400_and_never_reach_a_replica() {
    let lb = Ringlb::start(&["--replicas", "2"]);
    let before = replica_connections(&lb);
    let wait = Duration::from_secs(3);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty line", b"\r\n".to_vec(), 400),
        ("bare LF", b"\n".to_vec(), 400),
        ("NUL", b"GET /home\0 HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("no version", b"GET /home\r\n\r\n".to_vec(), 400),
        (
            "TLS ClientHello",
            vec![
                0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ],
            400,
        ),
        ("bad UTF-8", b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("garbage", b"hello there\r\n\r\n".to_vec(), 400),
        ("10k spaces", vec![b' '; 10_000], 414),
        (
            "rid longer than the cap",
            format!("GET /home?rid={} HTTP/1.1\r\n\r\n", "7".repeat(9000)).into_bytes(),
            414,
        ),
    ];
    for (what, bytes, want) in cases {
        let answer = raw(lb.data, &bytes, wait).unwrap();
        assert_eq!(
            status_of(&answer),
            want,
            "{what}: {}",
            String::from_utf8_lossy(&answer)
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("\"status\":\"failure\""), "{what}: {text}");
    }
    // A non-numeric rid is a valid key.
    assert_eq!(lb.get("/home?rid=abc").unwrap().0, 200);
    assert_eq!(
        replica_connections(&lb),
        before + 1,
        "only the valid request reached a replica"
    );
}

#[test]
fn one_mib_request_line_gets_414_fast() {
    let lb = Ringlb::start(&["--replicas", "1"]);
    let before = replica_connections(&lb);
    let mut s = TcpStream::connect(lb.data).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let line = format!("GET /home?rid={}", "1".repeat(1 << 20));
    let t = Instant::now();
    // The proxy answers after 8 KiB and closes; the rest of the write may fail: that is fine.
    let _ = s.write_all(line.as_bytes());
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert_eq!(
        status_of(&answer),
        414,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    // Just under the cap works.
    let ok = format!("GET /home?rid={} HTTP/1.1\r\n\r\n", "5".repeat(8192 - 27));
    assert!(ok.find("\r\n").unwrap() < 8192);
    let answer = raw(lb.data, ok.as_bytes(), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&answer), 200);
    assert_eq!(replica_connections(&lb), before + 1);
}

#[test]
fn silent_client_gets_408_while_others_are_served() {
    let lb = Ringlb::start(&["--replicas", "1", "--request-timeout", "1s"]);
    let before = replica_connections(&lb);
    let mut silent = TcpStream::connect(lb.data).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    // Meanwhile others are served.
    for k in 0..20 {
        assert!(lb.home(100_000 + k).is_ok());
    }
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer);
    let waited = t.elapsed();
    assert_eq!(
        status_of(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(replica_connections(&lb), before + 20);
}
