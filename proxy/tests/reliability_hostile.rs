//! Reliability suite, hostile input and odd peers (A2, A3, A6, A7 of `docs/reliability.md`): an
//! oversized request line, malformed lines (a table, and the fuzz corpus replayed), half-close
//! with 1 MiB each way, idle connections and clients that vanish.
//!
//! Every test ends with [`load::Baseline::settle`]: ringlb still runs, logged no panic, and its
//! descriptors, open-connection gauge, active connections and RSS are back within 5 s.

#[path = "../fuzz/check.rs"]
mod check;
mod common;
#[path = "common/load.rs"]
mod load;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{raw, status_of};
use load::{Baseline, Launch, RSS_SLACK_KIB};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// A2

/// A2: a 1 MiB request line with no line end, ten times. Each gets 414 and a close ≤ 100 ms
/// after its bytes crossed the 8 KiB cap; no replica connection is made; ringlb's RSS grows
/// ≤ 1 MiB. A line of cap − 2 bytes plus CRLF is served.
#[test]
fn a2_one_mib_request_line() {
    let _serial = load::serial();
    let cap = 8192;
    let mut lb = Launch::new(&["--replicas", "1"]).start();
    let base = Baseline::take(&lb);
    let routed = load::routed(&lb);
    let mut slowest = Duration::ZERO;
    let mut peak_rss = 0;
    for _ in 0..10 {
        let mut s = TcpStream::connect(lb.data).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let chunk = [b'1'; 4096];
            let mut sent = w.write(b"GET /home?rid=").unwrap_or(0);
            let mut crossed = None;
            while sent < (1 << 20) {
                match w.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
                if sent > cap && crossed.is_none() {
                    crossed = Some(Instant::now());
                }
            }
            crossed
        });
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let closed = Instant::now();
        let crossed = writer.join().unwrap().expect("the line crossed the cap");
        assert_eq!(
            status_of(&answer),
            414,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        slowest = slowest.max(closed.saturating_duration_since(crossed));
        peak_rss = peak_rss.max(load::rss_kib(lb.pid()));
    }
    let attacks_routed = load::routed(&lb) - routed;
    let line = format!("GET /home?rid={} HTTP/1.1\r\n", "5".repeat(cap - 25));
    assert_eq!(line.len(), cap);
    let answer = raw(
        lb.data,
        format!("{line}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .unwrap();
    let growth = peak_rss.saturating_sub(base.rss_kib);
    println!(
        "A2: 10 × 1 MiB lines: 414 and close at most {slowest:?} after crossing the {cap}-byte \
         cap; replica connections {attacks_routed}; RSS growth {growth} KiB; a {}-byte line \
         (cap - 2 + CRLF) got {}",
        line.len(),
        status_of(&answer)
    );
    assert!(slowest <= Duration::from_millis(100), "{slowest:?}");
    assert_eq!(attacks_routed, 0);
    assert!(growth <= 1024, "RSS grew {growth} KiB");
    assert_eq!(status_of(&answer), 200);
    assert_eq!(load::routed(&lb) - routed, 1);
    base.settle(&mut lb, RSS_SLACK_KIB);
}

// ---------------------------------------------------------------------------------------------
// A3

/// A3: malformed first bytes, each answered 400 (or 414 past the cap) ≤ 50 ms after it was sent
/// and closed, never reaching a replica; odd but valid keys (a non-numeric rid, one past 2⁶⁴)
/// are served.
#[test]
fn a3_malformed_lines() {
    let _serial = load::serial();
    let mut lb = Launch::new(&["--replicas", "2"]).start();
    let base = Baseline::take(&lb);
    let routed = load::routed(&lb);
    let hello = [
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x5e, 0x2b,
    ];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty line", b"\r\n".to_vec(), 400),
        ("bare LF", b"\n".to_vec(), 400),
        ("NUL", b"GET /home\0 HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("NUL, no line end yet", b"GET /ho\0".to_vec(), 400),
        ("no version", b"GET /home\r\n\r\n".to_vec(), 400),
        ("TLS ClientHello", hello.to_vec(), 400),
        ("10k spaces", vec![b' '; 10_000], 414),
        ("bad UTF-8", b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("garbage", b"hello there\r\n\r\n".to_vec(), 400),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            400,
        ),
        (
            "rid longer than the line cap",
            format!("GET /home?rid={} HTTP/1.1\r\n\r\n", "7".repeat(9000)).into_bytes(),
            414,
        ),
    ];
    let mut rows = Vec::new();
    for (what, bytes, want) in &cases {
        let t = Instant::now();
        let answer = raw(lb.data, bytes, Duration::from_secs(3)).unwrap();
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), *want, "{what}: {text}");
        assert!(text.contains("\"status\":\"failure\""), "{what}: {text}");
        rows.push((*what, *want, took));
    }
    let slowest = rows.iter().map(|r| r.2).max().unwrap();
    // A client that connects and leaves without a byte is nobody's business.
    drop(TcpStream::connect(lb.data).unwrap());
    let bad_routed = load::routed(&lb) - routed;
    let odd = [
        ("non-numeric rid", "/home?rid=abc"),
        ("rid past 2^64", "/home?rid=18446744073709551616"),
        ("empty rid", "/home?rid="),
    ];
    for (what, path) in odd {
        let (status, body) = lb.get(path).unwrap();
        assert_eq!(status, 200, "{what}: {body}");
    }
    println!(
        "A3: {} malformed inputs answered {:?}; slowest answer and close {slowest:?}; replica \
         connections for them {bad_routed}; non-numeric, 2^64 and empty rids served",
        rows.len(),
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()
    );
    assert!(slowest <= Duration::from_millis(50), "{rows:?}");
    assert_eq!(bad_routed, 0);
    assert_eq!(load::routed(&lb) - routed, odd.len() as u64);
    base.settle(&mut lb, RSS_SLACK_KIB);
}

/// A3, the fuzz corpus (`proxy/fuzz/corpus/sniff`, seeds plus what the fuzzer found) replayed
/// through the fuzz target's oracle (`proxy/fuzz/check.rs`); each input parses in ≤ 10 ms.
#[test]
fn a3_fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sniff");
    let mut n = 0;
    let mut slowest = (Duration::ZERO, String::new());
    for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let t = Instant::now();
        for need_headers in [false, true] {
            let _ = ringlb_proxy::sniff::parse_head(&data, 8192, need_headers);
        }
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (
                took,
                path.file_name().unwrap().to_string_lossy().into_owned(),
            );
        }
        check::check(&data);
        n += 1;
    }
    println!(
        "A3: {n} corpus inputs replayed; slowest parse {:?} ({})",
        slowest.0, slowest.1
    );
    assert!(n >= 40, "only {n} corpus inputs");
    assert!(slowest.0 <= Duration::from_millis(10), "{slowest:?}");
}

// ---------------------------------------------------------------------------------------------
// A6

const MIB: usize = 1 << 20;

fn payload(seed: u8) -> Vec<u8> {
    (0..MIB)
        .map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// What the backend reports about one connection.
struct Seen {
    /// When it read EOF from ringlb.
    eof_at: Instant,
    /// SHA-256 of everything it read.
    digest: [u8; 32],
    /// When it shut down its write half after sending its 1 MiB.
    fin_at: Instant,
}

/// A backend that answers health checks and, for other connections, either reads to EOF and
/// then sends 1 MiB and a FIN (`reply_first = false`), or sends 1 MiB and a FIN at once and then
/// reads to EOF.
fn backend(reply_first: bool) -> (load::RawServer, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = load::RawServer::start(move |mut s| {
        let mut first = [0u8; 14];
        if s.read_exact(&mut first).is_err() {
            return;
        }
        if &first == b"GET /heartbeat" {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        let mut hasher = Sha256::new();
        hasher.update(first);
        let mut fin_at = Instant::now();
        if reply_first {
            s.write_all(&payload(7)).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            fin_at = Instant::now();
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => hasher.update(&buf[..n]),
            }
        }
        let eof_at = Instant::now();
        if !reply_first {
            s.write_all(&payload(7)).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            fin_at = Instant::now();
        }
        let _ = tx.lock().unwrap().send(Seen {
            eof_at,
            digest: hasher.finalize().into(),
            fin_at,
        });
        // Hold the socket until the client is done, so only the FIN travels.
        let _ = s.read(&mut buf);
    });
    (server, rx)
}

/// One half-close exchange: (client FIN → backend EOF, backend FIN → client EOF).
fn half_close(reply_first: bool) -> (Duration, Duration) {
    let (server, seen) = backend(reply_first);
    let mut lb = Launch::new(&[
        "--runtime",
        "static",
        "--backend",
        &format!("b1={}", server.addr),
    ])
    .start();
    let base = Baseline::take(&lb);
    let mut c = TcpStream::connect(lb.data).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sent = b"POST /upload HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    sent.extend(payload(3));
    let mut got = Vec::new();
    let client_fin;
    let client_eof;
    if reply_first {
        c.write_all(&sent[..48]).unwrap();
        c.read_to_end(&mut got).unwrap();
        client_eof = Instant::now();
        c.write_all(&sent[48..]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        client_fin = Instant::now();
    } else {
        let mut w = c.try_clone().unwrap();
        let s2 = sent.clone();
        let writer = thread::spawn(move || {
            w.write_all(&s2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
            Instant::now()
        });
        c.read_to_end(&mut got).unwrap();
        client_eof = Instant::now();
        client_fin = writer.join().unwrap();
    }
    let seen = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("backend finished");
    assert_eq!(seen.digest, sha(&sent), "client → replica bytes intact");
    assert_eq!(got.len(), MIB);
    assert_eq!(sha(&got), sha(&payload(7)), "replica → client bytes intact");
    drop(c);
    base.settle(&mut lb, RSS_SLACK_KIB);
    (
        seen.eof_at.saturating_duration_since(client_fin),
        client_eof.saturating_duration_since(seen.fin_at),
    )
}

/// A6: half-close with 1 MiB each way, in both orders, through the splice path: the FIN of
/// either side reaches the other ≤ 100 ms after it was sent, and every byte arrives intact
/// (SHA-256); then ringlb is back to its baseline.
#[test]
fn a6_half_close_timing() {
    let _serial = load::serial();
    let (up_a, down_a) = half_close(false);
    let (up_b, down_b) = half_close(true);
    println!(
        "A6: client closes first: client FIN → replica EOF {up_a:?}, replica FIN → client EOF \
         {down_a:?}; replica closes first: replica FIN → client EOF {down_b:?}, client FIN → \
         replica EOF {up_b:?}; 1 MiB each way intact"
    );
    for d in [up_a, down_a, up_b, down_b] {
        assert!(d <= Duration::from_millis(100), "{d:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A7

/// Reads until EOF or an error; the time it took.
fn wait_closed(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    s.set_read_timeout(Some(within)).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None
            }
            Err(_) => return Some(t.elapsed()),
        }
    }
}

/// A keep-alive client that got its answer and now idles.
fn served_then_idle(addr: std::net::SocketAddr, rid: u32) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&load::request(&format!("/home?rid={rid}"), false))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while load::parse_answer(&buf).is_none() {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    s
}

/// `SO_LINGER 0` then close: the peer gets a reset.
fn reset(s: TcpStream) {
    let sock = socket2::Socket::from(s);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    drop(sock);
}

/// A7: `--idle-timeout 2s`. 200 idle spliced connections are closed 2 s ± 1 s after their last
/// byte; clients that vanish with a reset (while spliced, while sending the request line,
/// before sending anything) and clients that half-close and never close leave nothing behind;
/// a replica that never closes after the client's FIN is cut at the idle timeout. Afterwards
/// descriptors, gauges and RSS are back to the baseline.
#[test]
fn a7_idle_timeout_and_vanishing_clients() {
    let _serial = load::serial();
    let idle = Duration::from_secs(2);
    let mut lb = Launch::new(&["--replicas", "3", "--idle-timeout", "2s"]).start();
    let base = Baseline::take(&lb);
    let addr = lb.data;

    // Each with the moment its answer was complete: its last byte, where idleness starts.
    let idle_conns: Vec<(TcpStream, Instant)> = (0..200)
        .map(|k| (served_then_idle(addr, load::rid(k)), Instant::now()))
        .collect();
    let idled = Instant::now();
    // Vanishing clients, meanwhile.
    for k in 0..100 {
        reset(served_then_idle(addr, load::rid(1000 + k)));
    }
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /home?ri").unwrap();
        reset(s);
    }
    for _ in 0..50 {
        reset(TcpStream::connect(addr).unwrap());
    }
    let mut half: Vec<TcpStream> = Vec::new();
    for k in 0..50 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&load::request(
            &format!("/home?rid={}", load::rid(2000 + k)),
            false,
        ))
        .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        half.push(s);
    }
    // Each idle connection closes at the idle timeout, counted from its answer.
    let handles: Vec<_> = idle_conns
        .into_iter()
        .map(|(mut s, idle_from)| {
            thread::spawn(move || {
                wait_closed(&mut s, Duration::from_secs(10)).map(|_| idle_from.elapsed())
            })
        })
        .collect();
    let closed: Vec<Option<Duration>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let since_idle = idled.elapsed();
    let all_closed = closed.iter().all(Option::is_some);
    let latest = closed.iter().flatten().max().copied().unwrap_or_default();
    let earliest = closed.iter().flatten().min().copied().unwrap_or_default();
    // The half-closed clients got their answer and a FIN (the replica closes after it).
    let half_closed = half
        .iter_mut()
        .filter_map(|s| wait_closed(s, Duration::from_secs(5)))
        .count();

    // A replica that never closes after the client's FIN.
    let holder = load::RawServer::start(|mut s| {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        if buf[..n].starts_with(b"GET /heartbeat") {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        // Read the FIN, then hold the socket open far longer than the idle timeout.
        let _ = s.read(&mut buf);
        thread::sleep(Duration::from_secs(8));
    });
    let mut lb2 = Launch::new(&[
        "--runtime",
        "static",
        "--backend",
        &format!("holder={}", holder.addr),
        "--idle-timeout",
        "2s",
    ])
    .start();
    let base2 = Baseline::take(&lb2);
    let mut s = TcpStream::connect(lb2.data).unwrap();
    s.write_all(&load::request("/x", false)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let stuck_closed = wait_closed(&mut s, Duration::from_secs(6));

    println!(
        "A7: 200 idle connections closed {earliest:?}..{latest:?} after their last byte (idle \
         timeout {idle:?}), all closed {all_closed} ({since_idle:?} for all); 200 vanishing \
         clients (100 reset while spliced, 50 mid-line, 50 silent); {half_closed} of 50 \
         half-closed clients got their answer and a close; a replica that never closes: the \
         client saw the close after {stuck_closed:?}"
    );
    assert!(all_closed, "some idle connection stayed open");
    assert!(
        earliest >= idle - Duration::from_millis(300),
        "closed early: {earliest:?}"
    );
    assert!(
        latest <= idle + Duration::from_secs(1),
        "closed late: {latest:?}"
    );
    assert_eq!(half_closed, 50);
    let stuck = stuck_closed.expect("cut at the idle timeout");
    assert!(
        stuck >= idle - Duration::from_millis(300) && stuck <= idle + Duration::from_secs(1),
        "{stuck:?}"
    );
    drop(half);
    base.settle(&mut lb, RSS_SLACK_KIB);
    base2.settle(&mut lb2, RSS_SLACK_KIB);
}
