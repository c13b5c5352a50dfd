//! Bytes through the splice path: 1 MiB each way arrives intact, half-close is passed on in
//! both orders, and bursts of tiny segments that fill more pipe slots than they have bytes to
//! spare arrive whole. The replica here is a raw TCP server in the test (behind `--runtime
//! static`), so the test controls exactly when each side sends and closes.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::Ringlb;
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

fn payload(seed: u8) -> Vec<u8> {
    (0..MIB)
        .map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// What the backend saw: the sha256 of everything it read.
type Seen = std::sync::mpsc::Receiver<[u8; 32]>;

/// A backend that answers health checks, and for other requests either reads everything
/// first and then sends the first `reply_len` bytes of `payload(7)` (`reply_first = false`), or
/// sends them first.
fn backend(reply_first: bool, reply_len: usize) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                let mut first = [0u8; 14];
                if s.read_exact(&mut first).is_err() {
                    return;
                }
                if &first == b"GET /heartbeat" {
                    // Read the whole head first: closing with unread bytes sends a reset that
                    // can beat the answer, and the check would fail.
                    let mut head = first.to_vec();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
                        head.push(byte[0]);
                    }
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                let mut hasher = Sha256::new();
                hasher.update(first);
                let reply = payload(7)[..reply_len].to_vec();
                if reply_first {
                    s.write_all(&reply).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                }
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => hasher.update(&buf[..n]),
                    }
                }
                if !reply_first {
                    s.write_all(&reply).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                }
                let _ = tx.send(hasher.finalize().into());
            });
        }
    });
    (addr, rx)
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// ringlb with one static replica, `addr`, and the given `--splice` mode.
fn ringlb_in_front_of(addr: SocketAddr, splice: &str) -> Ringlb {
    let backend = format!("b1={addr}");
    Ringlb::start(&[
        "--runtime",
        "static",
        "--backend",
        &backend,
        "--splice",
        splice,
    ])
}

fn run(reply_first: bool, splice: &str) {
    run_with_reply(reply_first, splice, MIB);
}

fn run_with_reply(reply_first: bool, splice: &str, reply_len: usize) {
    let (addr, seen) = backend(reply_first, reply_len);
    let lb = ringlb_in_front_of(addr, splice);
    let mut c = TcpStream::connect(lb.data).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sent = b"POST /upload HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    sent.extend(payload(3));
    let mut got = Vec::new();
    if reply_first {
        // Read the whole reply and its EOF while our side is still open.
        c.write_all(&sent[..48]).unwrap();
        c.read_to_end(&mut got).unwrap();
        c.write_all(&sent[48..]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    } else {
        let mut w = c.try_clone().unwrap();
        let s2 = sent.clone();
        let writer = thread::spawn(move || {
            w.write_all(&s2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        c.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
    }
    let backend_saw = seen
        .recv_timeout(Duration::from_secs(20))
        .expect("backend finished");
    assert_eq!(backend_saw, sha(&sent), "client → replica bytes intact");
    assert_eq!(got.len(), reply_len);
    assert_eq!(
        sha(&got),
        sha(&payload(7)[..reply_len]),
        "replica → client bytes intact"
    );
}

#[test]
fn one_mib_each_way_client_closes_first() {
    run(false, "always");
}

#[test]
fn one_mib_each_way_replica_closes_first() {
    run(true, "always");
}

#[test]
fn auto_mode_one_mib_each_way_client_closes_first() {
    run(false, "auto");
}

#[test]
fn auto_mode_one_mib_each_way_replica_closes_first() {
    run(true, "auto");
}

// A short answer sent together with the replica's FIN is the last read of its direction: it
// goes out with MSG_MORE / SPLICE_F_MORE and the FIN right behind it (and in auto mode the EOF
// read is skipped). The client must still get every byte and the EOF, and its own direction
// must stay open for the 1 MiB it sends afterwards.
#[test]
fn short_reply_with_fin_then_the_client_goes_on() {
    for _ in 0..5 {
        run_with_reply(true, "always", 200);
    }
}

#[test]
fn auto_mode_short_reply_with_fin_then_the_client_goes_on() {
    for _ in 0..5 {
        run_with_reply(true, "auto", 200);
    }
}

#[test]
fn auto_mode_serves_keep_alive_requests() {
    use std::io::BufRead;
    let lb = Ringlb::start(&["--replicas", "1", "--splice", "auto"]);
    let c = TcpStream::connect(lb.data).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = std::io::BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    for k in 0..50 {
        write!(
            w,
            "GET /home?rid={} HTTP/1.1\r\nHost: x\r\n\r\n",
            100_000 + k
        )
        .unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("Hello from Server: 1"),
            "request {k}: {text:?}"
        );
    }
}

/// A backend that answers health checks and echoes everything else back as it reads it.
fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                s.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut first = true;
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if first && buf[..n].starts_with(b"GET /heartbeat") {
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    first = false;
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// SIGSTOP for a process, undone (SIGCONT) when dropped, so a failing test leaves none stopped.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        kill(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        kill(self.0, "CONT");
    }
}

fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// Sends `n` one-byte segments, each from its own page of `file` (`sendfile`), so that the
/// receiver cannot merge them: each takes a pipe slot of its own. Returns the bytes sent.
fn send_scattered(c: &TcpStream, file: &std::fs::File, n: usize, round: usize) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut sent = Vec::with_capacity(n);
    for k in 0..n {
        let mut off = (k * 4096) as libc::off_t;
        // SAFETY: both descriptors are open for the call; `off` is a valid, writable offset.
        let r = unsafe { libc::sendfile(c.as_raw_fd(), file.as_raw_fd(), &mut off, 1) };
        assert_eq!(r, 1, "sendfile");
        sent.push(page_byte(k, round));
    }
    sent
}

/// The byte at the start of page `k` of the file for `round`.
fn page_byte(k: usize, round: usize) -> u8 {
    (k * 7 + round) as u8
}

// A splice that returns short is taken to have drained the socket only when it moved fewer
// bytes than the pipe has slots (src/splice.rs). Here ringlb is stopped while the client sends
// a burst of one-byte segments that cannot merge in the receive queue, so the burst waits in
// ringlb's socket in as many pipe slots as it has bytes, up to more than a wide pipe has (256);
// then ringlb goes on and must pass every byte. A burst taken for drained too early would leave
// bytes behind with nothing to wake their reader, and the read of the echo would time out.
fn tiny_segments(splice: &str) {
    let lb = ringlb_in_front_of(echo_backend(), splice);
    let mut c = TcpStream::connect(lb.data).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(head).unwrap();
    let mut got = vec![0u8; head.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, head);
    for (round, burst) in [1, 15, 16, 17, 255, 256, 257, 600].into_iter().enumerate() {
        let mut file = tempfile::tempfile().unwrap();
        let mut pages = vec![0u8; burst * 4096];
        for k in 0..burst {
            pages[k * 4096] = page_byte(k, round);
        }
        file.write_all(&pages).unwrap();
        let stopped = Stopped::new(lb.child.id());
        let sent = send_scattered(&c, &file, burst, round);
        thread::sleep(Duration::from_millis(20));
        drop(stopped);
        let mut back = vec![0u8; burst];
        c.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("burst of {burst} one-byte segments: {e}"));
        assert_eq!(back, sent, "burst of {burst}");
    }
}

#[test]
fn bursts_of_one_byte_segments_arrive_whole() {
    tiny_segments("always");
}

#[test]
fn auto_mode_bursts_of_one_byte_segments_arrive_whole() {
    tiny_segments("auto");
}
