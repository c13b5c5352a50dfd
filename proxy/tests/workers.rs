//! The data plane's worker threads (`--workers`): each runs its own listener on the data port,
//! and the connection cap (`--max-conns`) holds for the process as a whole, not per worker.

mod common;
#[path = "common/load.rs"]
mod load;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::Ringlb;

/// Sends one keep-alive request and reads its whole answer; returns the status and the stream.
fn request(addr: SocketAddr, rid: u32) -> (u16, TcpStream) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&load::request(&format!("/home?rid={rid}"), false))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(a) = load::parse_answer(&buf) {
            return (a.status, s);
        }
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (common::status_of(&buf), s),
        }
    }
}

/// Listening TCP sockets on `port` (IPv4), from /proc/net/tcp.
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
        .count()
}

/// Names of the threads of `pid`.
fn threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn three_workers_three_listeners_one_cap() {
    let cap = 8;
    let lb = Ringlb::start(&["--workers", "3", "--max-conns", &cap.to_string()]);
    let data_threads: Vec<String> = threads(lb.child.id())
        .into_iter()
        .filter(|n| n.starts_with("ringlb-data-"))
        .collect();
    assert_eq!(
        data_threads,
        ["ringlb-data-0", "ringlb-data-1", "ringlb-data-2"]
    );
    assert_eq!(listeners_on(lb.data.port()), 3, "one listener per worker");

    // Fill the cap with held keep-alive connections. The kernel spreads them over the three
    // listeners, so with a count per worker, more would be let in below.
    let held: Vec<TcpStream> = (0..cap)
        .map(|k| {
            let (status, s) = request(lb.data, 100_000 + k);
            assert_eq!(status, 200, "connection {k} is under the cap");
            s
        })
        .collect();
    for k in 0..6 {
        let (status, _) = request(lb.data, 200_000 + k);
        assert_eq!(status, 503, "connection {} is over the cap", cap + k);
    }

    // A freed slot is served again, whichever worker takes the next connection.
    drop(held);
    let mut served = false;
    for k in 0..50 {
        if request(lb.data, 300_000 + k).0 == 200 {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "slots are freed when held connections close");
}
