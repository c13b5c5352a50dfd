//! The data plane's worker threads (`--workers`): each runs its own listener on the data port,
//! and the connection cap (`--max-conns`) holds for the process as a whole, not per worker.
//! With `--busy-poll`, a worker stays awake between requests that come close together, and
//! sleeps once they stop.

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

/// Voluntary context switches and CPU ticks (user + system) of the data-plane threads of `pid`.
fn data_threads_sched(pid: u32) -> (u64, u64) {
    let (mut voluntary, mut ticks) = (0, 0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ringlb-data-") {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap();
        voluntary += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .unwrap();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        ticks += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    }
    (voluntary, ticks)
}

/// 200 requests on one keep-alive connection, 2 ms apart; returns the data threads' voluntary
/// context switches over them, and their CPU ticks over one quiet second that follows.
fn trickle(busy_poll: &str) -> (u64, u64) {
    let lb = Ringlb::start(&["--workers", "1", "--busy-poll", busy_poll]);
    let pid = lb.child.id();
    let (status, mut s) = request(lb.data, 7);
    assert_eq!(status, 200);
    let (v0, _) = data_threads_sched(pid);
    let mut chunk = [0u8; 1024];
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(2));
        s.write_all(&load::request("/home?rid=7", false)).unwrap();
        let mut buf = Vec::new();
        while load::parse_answer(&buf).is_none() {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the connection stays open");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(load::parse_answer(&buf).unwrap().status, 200);
    }
    let (v1, _) = data_threads_sched(pid);
    std::thread::sleep(Duration::from_millis(300));
    let (_, t0) = data_threads_sched(pid);
    std::thread::sleep(Duration::from_secs(1));
    let (_, t1) = data_threads_sched(pid);
    (v1 - v0, t1 - t0)
}

#[test]
fn busy_poll_stays_awake_between_requests_and_sleeps_when_they_stop() {
    // Without it the worker sleeps in epoll_wait between requests: at least one voluntary
    // switch each. With a 10 ms window, a request every 2 ms finds the worker polling, not
    // asleep (a sleep comes only when the client is held up past the window).
    let (sleeps_off, idle_off) = trickle("0s");
    let (sleeps_on, idle_on) = trickle("10ms");
    eprintln!(
        "voluntary switches: {sleeps_off} off, {sleeps_on} on; idle ticks: {idle_off}, {idle_on}"
    );
    assert!(
        sleeps_off >= 200,
        "without --busy-poll the worker sleeps between requests ({sleeps_off} voluntary switches)"
    );
    assert!(
        sleeps_on < 100,
        "--busy-poll 10ms keeps the worker awake ({sleeps_on} voluntary switches in 200 requests)"
    );
    // Once the requests stop it sleeps: no more CPU than without (a tick is 10 ms; a worker that
    // kept polling would use about 100 in the second).
    assert!(
        idle_off <= 5 && idle_on <= 5,
        "idle workers use no CPU ({idle_off} and {idle_on} ticks in 1 s)"
    );
}

/// The CPUs in a `Cpus_allowed_list` line of /proc/…/status ("0-3,6").
fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// The CPUs that the thread or process whose status file this is may run on.
fn allowed_cpus(status_path: &str) -> Vec<usize> {
    let status = std::fs::read_to_string(status_path).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in status");
    cpu_list(line)
}

/// Each thread of `pid` by name, with the CPUs it may run on.
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let cpus = allowed_cpus(t.path().join("status").to_str()?);
            Some((name.trim().to_string(), cpus))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn pinned_workers_each_get_one_cpu_in_order_and_the_rest_stays_free() {
    // ringlb inherits this process's CPUs; worker i gets the i-th of them, wrapping around.
    let ours = allowed_cpus("/proc/self/status");
    let lb = Ringlb::start(&["--workers", "3", "--pin-workers"]);
    let threads = thread_cpus(lb.child.id());
    let data: Vec<&(String, Vec<usize>)> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("ringlb-data-"))
        .collect();
    assert_eq!(data.len(), 3, "{threads:?}");
    for (i, (name, cpus)) in data.iter().enumerate() {
        assert_eq!(name, &format!("ringlb-data-{i}"));
        assert_eq!(
            cpus,
            &vec![ours[i % ours.len()]],
            "{name} is pinned to one CPU"
        );
    }
    // the other threads (control plane, main) keep every CPU
    for (name, cpus) in threads
        .iter()
        .filter(|(n, _)| !n.starts_with("ringlb-data-"))
    {
        assert_eq!(cpus, &ours, "{name} is not pinned");
    }
    // and the pinned workers serve
    assert_eq!(request(lb.data, 123_456).0, 200);
}

#[test]
fn workers_are_not_pinned_by_default() {
    let ours = allowed_cpus("/proc/self/status");
    let lb = Ringlb::start(&["--workers", "2"]);
    for (name, cpus) in thread_cpus(lb.child.id()) {
        assert_eq!(cpus, ours, "{name} may run on every CPU");
    }
}
