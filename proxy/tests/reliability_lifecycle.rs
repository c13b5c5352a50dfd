//! Reliability suite, lifecycle (G1 of `docs/reliability.md`): SIGTERM under load, and
//! restarting ringlb on the same port under load, with new sockets (SO_REUSEPORT) and with the
//! old one's sockets handed over (`--handover`).
//!
//! Run by `.ci/run`: `cargo test -p ringlb-proxy --test reliability_lifecycle -- --ignored`.

mod common;
#[path = "common/load.rs"]
mod load;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use load::{Launch, Load};

/// G1: SIGTERM (`--drain-timeout 3s`) under 500 new connections a second plus 100 keep-alive
/// streams (a request every 200 ms each). The listener closes at once (a new connect is refused
/// ≤ 100 ms after the signal); every connection that started before the signal succeeds; the
/// streams keep being served through the drain period and are cut at its end; ringlb exits 0
/// ≤ drain + 1 s after the signal.
#[test]
#[ignore = "load test (10 s); run by .ci/run"]
fn g1_sigterm_under_load() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(10_000);
    let drain = Duration::from_secs(3);
    let mut lb = Launch::new(&["--replicas", "3", "--drain-timeout", "3s"]).start();
    let addr = lb.data;
    let streams = Load::streams(
        addr,
        100,
        Duration::from_millis(200),
        Duration::from_secs(30),
        |k| format!("/home?rid={}", load::rid(k / 1_000_000)),
    );
    let load = Load::rate(addr, 500.0, Duration::from_secs(30), |k| {
        format!("/home?rid={}", load::rid(k))
    });
    std::thread::sleep(Duration::from_secs(3));
    let sig_at = load.elapsed();
    let signalled = Instant::now();
    assert!(load::signal(lb.pid(), "TERM"));
    let mut refused_after = None;
    while signalled.elapsed() < Duration::from_secs(2) {
        if TcpStream::connect(addr).is_err() {
            refused_after = Some(signalled.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut exit = None;
    while signalled.elapsed() < drain + Duration::from_secs(3) {
        if let Ok(Some(status)) = lb.lb.child.try_wait() {
            exit = Some((status, signalled.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = load.stop();
    let streamed = streams.stop();

    // Connections that started (connect called) well before the signal.
    let before: Vec<_> = out
        .iter()
        .filter(|o| o.start + Duration::from_millis(5) < sig_at)
        .collect();
    let failed_before = before.iter().filter(|o| !o.ok()).count();
    let after = out.iter().filter(|o| o.start >= sig_at).count();
    let served_after = out.iter().filter(|o| o.start >= sig_at && o.ok()).count();
    // Streams: served until the drain ended, then cut.
    let last_ok = streamed
        .iter()
        .filter(|o| o.ok())
        .map(|o| o.end)
        .max()
        .unwrap_or_default();
    let stream_fail_early = streamed
        .iter()
        .filter(|o| !o.ok() && o.end < sig_at + drain - Duration::from_millis(300))
        .count();
    let cut = streamed.iter().filter(|o| !o.ok()).count();
    println!(
        "G1: SIGTERM at {sig_at:?}: new connects refused after {refused_after:?}; {} \
         connections started before it, {failed_before} failed; {after} started after it \
         ({served_after} served before the close); streams served until {:?} after the signal \
         (drain {drain:?}), {cut} of 100 cut at the end, {stream_fail_early} failed earlier; \
         exit {exit:?}",
        before.len(),
        last_ok.saturating_sub(sig_at),
    );
    assert!(refused_after.expect("listener closed") <= Duration::from_millis(100));
    assert_eq!(failed_before, 0, "{:?}", load::sample_failures(&out));
    assert_eq!(
        stream_fail_early,
        0,
        "{:?}",
        load::sample_failures(&streamed)
    );
    assert!(
        last_ok >= sig_at + drain - Duration::from_millis(500),
        "streams got the drain period"
    );
    let (status, took) = exit.expect("ringlb exited");
    assert!(status.success(), "{status:?}");
    assert!(
        took <= drain + Duration::from_secs(1),
        "exit after {took:?}"
    );
}

/// G1: three restarts under 500 new connections a second. Each time a new ringlb starts on the
/// same data port (SO_REUSEPORT; its own control port and replicas) and becomes ready, then the
/// old one gets SIGTERM and drains. No connection fails. A connection the kernel queues on the
/// old listener between its last accept and its close is reset by the close unless
/// `net.ipv4.tcp_migrate_req = 1` moves it to the new listener; `.ci/run` sets it, as
/// docs/operations.md advises. Even so the race is narrowed, not closed (docs/reliability.md,
/// "Not fixed here"), so this test can fail, rarely; `--handover` closes it (the next test).
#[test]
#[ignore = "restarts under load (25 s); run by .ci/run"]
fn g1_restarts_lose_no_connection() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(10_000);
    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let args = ["--replicas", "2", "--drain-timeout", "3s"];
    let mut old = Launch::new(&args).listen(addr).start();
    let load = Load::rate(addr, 500.0, Duration::from_secs(60), |k| {
        format!("/home?rid={}", load::rid(k))
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut restarts = Vec::new();
    for _ in 0..3 {
        let new = Launch::new(&args).listen(addr).start();
        let t = Instant::now();
        let exit = old.terminate_within(Duration::from_secs(6));
        restarts.push((load.elapsed(), t.elapsed(), exit));
        old = new;
        std::thread::sleep(Duration::from_secs(2));
    }
    let out = load.stop();
    let failed = out.iter().filter(|o| !o.ok()).count();
    println!(
        "G1: 3 restarts on port {port} under {:.0} connections/s: {} connections, {failed} \
         failed; restarts (at, old ringlb exit after, status) {:?}",
        load::achieved_rate(&out),
        out.len(),
        restarts
            .iter()
            .map(|r| (r.0, r.1, r.2.map(|s| s.code())))
            .collect::<Vec<_>>()
    );
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "unreadable".into());
    assert_eq!(
        failed,
        0,
        "{:?} (net.ipv4.tcp_migrate_req = {migrate}; with 0 a connection queued on a closing \
         listener is reset)",
        load::sample_failures(&out)
    );
    for r in &restarts {
        assert!(r.2.is_some_and(|s| s.success()), "{restarts:?}");
    }
    drop(old);
}

/// Sets a sysctl for the life of the guard and puts the old value back (if it could be set).
struct Sysctl {
    path: &'static str,
    old: Option<String>,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Sysctl {
        let old = std::fs::read_to_string(path).ok();
        let old = old.filter(|_| std::fs::write(path, value).is_ok());
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(self.path, old.trim());
        }
    }
}

/// G1 with `--handover`: ten restarts under 500 new connections a second, each new ringlb taking
/// the old one's listening sockets through the handover socket before the old one gets SIGTERM.
/// The sockets never close, so no connection queued on them can be reset, and none may fail,
/// whatever `net.ipv4.tcp_migrate_req` says. The test sets it to 0 for its run where it can
/// (root): the setting under which restarts that bind new sockets reset about one connection in
/// 17 restarts (docs/reliability.md). Each new ringlb must say that it took listeners over, and
/// the last one must have handed them on.
#[test]
#[ignore = "restarts under load (20 s); run by .ci/run"]
fn g1_handover_restarts_lose_no_connection() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(10_000);
    let migrate = Sysctl::set("/proc/sys/net/ipv4/tcp_migrate_req", "0");
    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handover.sock");
    let args = [
        "--replicas",
        "2",
        "--drain-timeout",
        "3s",
        "--handover",
        socket.to_str().unwrap(),
    ];
    let launch = || {
        Launch::new(&args)
            .listen(addr)
            .log("warn,ringlb_proxy::handover=info,ringlb::app=info")
            .start()
    };
    let mut old = launch();
    assert!(
        old.log_text().contains("listeners_taken_over=0"),
        "{}",
        old.log_text()
    );
    let load = Load::rate(addr, 500.0, Duration::from_secs(60), |k| {
        format!("/home?rid={}", load::rid(k))
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut restarts = Vec::new();
    for _ in 0..10 {
        let mut new = launch();
        let log = new.log_text();
        assert!(
            log.contains("listeners_taken_over=") && !log.contains("listeners_taken_over=0"),
            "the new ringlb bound listeners of its own: {log}"
        );
        let t = Instant::now();
        let exit = old.terminate_within(Duration::from_secs(6));
        restarts.push((load.elapsed(), t.elapsed(), exit));
        assert!(
            old.log_text().contains("handed the data listeners over"),
            "{}",
            old.log_text()
        );
        assert!(new.running());
        old = new;
        std::thread::sleep(Duration::from_millis(1000));
    }
    let out = load.stop();
    let failed = out.iter().filter(|o| !o.ok()).count();
    println!(
        "G1 handover: 10 restarts on port {port} under {:.0} connections/s (tcp_migrate_req {}): \
         {} connections, {failed} failed; restarts (at, old ringlb exit after, status) {:?}",
        load::achieved_rate(&out),
        if migrate.old.is_some() {
            "0 for the test"
        } else {
            "unchanged"
        },
        out.len(),
        restarts
            .iter()
            .map(|r| (r.0, r.1, r.2.map(|s| s.code())))
            .collect::<Vec<_>>()
    );
    assert_eq!(failed, 0, "{:?}", load::sample_failures(&out));
    for r in &restarts {
        assert!(r.2.is_some_and(|s| s.success()), "{restarts:?}");
    }
    // The last ringlb removes its socket file when it stops.
    assert!(old
        .terminate_within(Duration::from_secs(6))
        .is_some_and(|s| s.success()));
    assert!(!socket.exists(), "the handover socket file was left behind");
}

/// G1, the backlog at the signal: ringlb is stopped (SIGSTOP) while 50 clients connect (the
/// kernel completes their handshakes and queues them in the listen backlog) and send a request;
/// then it gets SIGTERM and SIGCONT. Those 50 connections were accepted by the kernel before
/// the signal: every one is served, none is reset by the listener's close.
#[test]
fn g1_backlog_at_sigterm_is_served() {
    let _serial = load::serial();
    let mut lb = Launch::new(&["--replicas", "1", "--drain-timeout", "5s"]).start();
    let addr = lb.data;
    // ringlb installs its SIGTERM handler just after it reports ready: a signal in between takes
    // the default action (exit without a drain; see docs/reliability.md). Let it get there.
    std::thread::sleep(Duration::from_millis(300));
    let paused = load::Paused::stop(&[lb.pid()]);
    let clients: Vec<_> = (0..50u64)
        .map(|k| {
            std::thread::spawn(move || {
                common::raw_get(addr, &format!("/home?rid={}", load::rid(k)))
                    .map(|r| r.0)
                    .unwrap_or(0)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(load::signal(lb.pid(), "TERM"));
    paused.resume();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let served = statuses.iter().filter(|s| **s == 200).count();
    let exit = lb.terminate_within(Duration::from_secs(8));
    println!("G1: 50 connections in the backlog at SIGTERM: {served} served; exit {exit:?}");
    assert_eq!(served, 50, "{statuses:?}");
    assert!(exit.is_some_and(|s| s.success()));
}
