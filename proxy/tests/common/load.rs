//! Helpers of the reliability suite (`tests/reliability_*.rs`):
//!
//! - [`Launch`]: starts ringlb with what `common::Ringlb::start` does not offer: its log in a
//!   file, a fixed data port (two instances on one port), an open-file limit (`prlimit`), and the
//!   release binary when a fresh one exists.
//! - readers of `/proc` (descriptors, RSS, CPU time, children) and of `/metrics`;
//! - [`Baseline`]: what every test checks at its end — ringlb still runs, logged no panic, and
//!   its descriptors, open-connection gauge, active connections and RSS are back near where they
//!   were before the load, within 5 s;
//! - a load generator on its own tokio threads ([`Load::rate`]: an open-loop rate of new
//!   connections, one GET each; [`Load::streams`]: keep-alive connections sending a request at a
//!   fixed interval). The test process is a separate process from ringlb, so ringlb's
//!   descriptors and memory are its own. Every loop is bounded in time and count.
//!
//! Included by each reliability test file with `#[path = "common/load.rs"] mod load;`, next to
//! `mod common;`.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{free_port, try_call, Ringlb};

/// The tests of one file run one at a time: each measures timing, memory and descriptors of its
/// own ringlb, and two loads at once on two cores would spoil both.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises this process's open-file limit to its hard limit (the slowloris and cap tests hold
/// thousands of sockets); returns the new soft limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

// ---------------------------------------------------------------------------------------------
// Launching ringlb

/// How to start ringlb.
pub struct Launch {
    args: Vec<String>,
    listen: Option<SocketAddr>,
    nofile: Option<u64>,
    release: bool,
    log_filter: String,
}

/// A running ringlb with its log file; killed (with its replicas) when dropped.
pub struct Lb {
    pub lb: Ringlb,
    pub log: PathBuf,
    pub binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl Deref for Lb {
    type Target = Ringlb;
    fn deref(&self) -> &Ringlb {
        &self.lb
    }
}

impl Launch {
    /// How many data-plane workers ringlb will run: `--workers` or `RINGLB_WORKERS` if given,
    /// else one per CPU, as ringlb decides.
    fn expected_workers(&self) -> usize {
        let mut args = self.args.iter();
        while let Some(a) = args.next() {
            let value = match a.strip_prefix("--workers") {
                Some("") => args.next().map(String::as_str),
                Some(v) => v.strip_prefix('='),
                None => None,
            };
            if let Some(n) = value.and_then(|v| v.parse().ok()) {
                return n;
            }
        }
        std::env::var("RINGLB_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            })
    }

    /// ringlb with `args` (besides `--listen`, `--control` and `--log`).
    pub fn new(args: &[&str]) -> Launch {
        Launch {
            args: args.iter().map(|s| s.to_string()).collect(),
            listen: None,
            nofile: None,
            release: false,
            log_filter: "warn".into(),
        }
    }

    /// Listen on this data address instead of a free port (a second instance on the same port).
    pub fn listen(mut self, addr: SocketAddr) -> Launch {
        self.listen = Some(addr);
        self
    }

    /// Run under `prlimit --nofile=N:N`.
    pub fn nofile(mut self, n: u64) -> Launch {
        self.nofile = Some(n);
        self
    }

    /// Use `target/release/ringlb` when it is newer than every source file.
    pub fn prefer_release(mut self) -> Launch {
        self.release = true;
        self
    }

    /// The `--log` filter (default `warn`).
    pub fn log(mut self, filter: &str) -> Launch {
        self.log_filter = filter.into();
        self
    }

    /// Starts it and waits until `/readyz` answers 200 (up to 20 s) and its data-plane worker
    /// threads run (up to 5 s more); retries on other ports if one was taken meanwhile.
    pub fn start(self) -> Lb {
        let binary = if self.release {
            binary()
        } else {
            PathBuf::from(env!("CARGO_BIN_EXE_ringlb"))
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("ringlb.log");
        for _ in 0..5 {
            let data = self
                .listen
                .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
            let control: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut cmd = match self.nofile {
                Some(n) => {
                    let mut c = Command::new("prlimit");
                    c.arg(format!("--nofile={n}:{n}")).arg("--").arg(&binary);
                    c
                }
                None => Command::new(&binary),
            };
            cmd.args(["--listen", &data.to_string()])
                .args(["--control", &control.to_string()])
                .args(["--log", &self.log_filter])
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"));
            let child = cmd.spawn().expect("ringlb starts");
            let mut lb = Ringlb {
                child,
                data,
                control,
            };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = lb.child.try_wait() {
                    break;
                }
                // `/readyz` turns 200 as soon as a replica is up, which happens while ringlb
                // still starts: it builds the data-plane workers' runtimes (their epoll, event
                // and signal descriptors) right after. Connections that come first wait in the
                // listen queue, but a descriptor baseline taken then misses those descriptors.
                // So wait (at most 5 s more) for the workers' threads.
                if let Ok((200, _)) = try_call(control, "GET", "/readyz", None) {
                    let (pid, workers, since) =
                        (lb.child.id(), self.expected_workers(), Instant::now());
                    while data_threads(pid) < workers && since.elapsed() < Duration::from_secs(5) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    return Lb {
                        lb,
                        log,
                        binary,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = lb.child.kill();
            let _ = lb.child.wait();
        }
        panic!(
            "ringlb did not become ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Lb {
    /// ringlb's pid.
    pub fn pid(&self) -> u32 {
        self.lb.child.id()
    }

    /// Everything ringlb logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether ringlb still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.lb.child.try_wait(), Ok(None))
    }

    /// Pids of the replicas, by name (process runtime).
    pub fn replica_pids(&self) -> Vec<(String, u32)> {
        self.details()
            .iter()
            .filter_map(|d| Some((d["name"].as_str()?.to_string(), d["pid"].as_u64()? as u32)))
            .collect()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; `None` if it is still running.
    pub fn terminate_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        signal(self.pid(), "TERM");
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(status)) = self.lb.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

/// `target/release/ringlb` if it exists and is newer than every source file and the lock file,
/// else the debug binary cargo built for this test. `RINGLB_TEST_BUILD=debug` forces the debug
/// binary.
pub fn binary() -> PathBuf {
    let debug = PathBuf::from(env!("CARGO_BIN_EXE_ringlb"));
    if std::env::var("RINGLB_TEST_BUILD").as_deref() == Ok("debug") {
        return debug;
    }
    let release = debug
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("release").join("ringlb"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fresh = |p: &Path| {
        let Ok(built) = p.metadata().and_then(|m| m.modified()) else {
            return false;
        };
        let mut newest = mtime(&root.join("Cargo.lock"));
        for dir in ["core/src", "proxy/src", "control/src", "replica/src"] {
            newest = newest.max(newest_in(&root.join(dir)));
        }
        built >= newest
    };
    match release {
        Some(r) if fresh(&r) => r,
        _ => debug,
    }
}

fn mtime(p: &Path) -> SystemTime {
    p.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_in(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for e in entries.flatten() {
        let p = e.path();
        newest = newest.max(if p.is_dir() { newest_in(&p) } else { mtime(&p) });
    }
    newest
}

/// Which build a test ran against, for its report line.
pub fn build_name(binary: &Path) -> &'static str {
    if binary.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "debug"
    }
}

/// `kill -<sig> <pid>`.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Replicas stopped with SIGSTOP; continued (SIGCONT) when dropped, so a failing test never
/// leaves a stopped process behind (a stopped replica cannot notice that ringlb is gone).
pub struct Paused(pub Vec<u32>);

impl Paused {
    pub fn stop(pids: &[u32]) -> Paused {
        for &p in pids {
            signal(p, "STOP");
        }
        Paused(pids.to_vec())
    }

    pub fn resume(mut self) {
        for p in std::mem::take(&mut self.0) {
            signal(p, "CONT");
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            signal(p, "CONT");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// Open descriptors of `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of `pid` that run a data-plane worker (named `ringlb-data-N`). Each is spawned after
/// its worker's runtime is built.
pub fn data_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.starts_with("ringlb-data-"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Open descriptors of `pid` that are not pipes: sockets, the epoll and event fds, files.
///
/// Pipes are counted apart because ringlb keeps up to [`PIPE_POOL`] empty splice pipes for
/// reuse after connections end, by design.
pub fn non_pipe_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|t| !t.to_string_lossy().starts_with("pipe:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Empty pipes the splice module keeps for reuse (`POOL_MAX` in `proxy/src/splice.rs`).
pub const PIPE_POOL: usize = 128;

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&k| f.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Pids whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// /metrics and /replicas

/// `GET /metrics`.
pub fn scrape(lb: &Ringlb) -> String {
    let (status, body) = lb.call("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of every series of `name` whose labels include `labels` (0 when none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let ok = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Connections spliced to replicas right now (the sum of `/replicas` `active_connections`).
pub fn active(lb: &Ringlb) -> u64 {
    lb.details()
        .iter()
        .filter_map(|d| d["active_connections"].as_u64())
        .sum()
}

/// Connections ever routed to replicas (the sum of `/replicas` `total_connections`).
pub fn routed(lb: &Ringlb) -> u64 {
    lb.details()
        .iter()
        .filter_map(|d| d["total_connections"].as_u64())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The end-of-test check

/// ringlb's resources before the load.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub fds: usize,
    /// Descriptors other than pipes.
    pub sockets: usize,
    pub rss_kib: u64,
    pub open: f64,
    pub active: u64,
}

/// Where they were when they settled (or the 5 s ran out).
#[derive(Clone, Copy, Debug)]
pub struct Settled {
    pub fds: usize,
    pub sockets: usize,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub open: f64,
    pub active: u64,
    pub took: Duration,
}

/// Descriptors may differ by this many from the baseline (a health check or a control
/// connection in flight, a respawned replica's pipes).
pub const FD_SLACK: usize = 5;
/// RSS may stay this far above the baseline: memory the allocator keeps for reuse.
pub const RSS_SLACK_KIB: u64 = 5 * 1024;

impl Baseline {
    /// Measures `lb` now (after its warm-up).
    pub fn take(lb: &Lb) -> Baseline {
        Baseline {
            fds: fds(lb.pid()),
            sockets: non_pipe_fds(lb.pid()),
            rss_kib: rss_kib(lb.pid()),
            open: metric(&scrape(lb), "ringlb_connections_open", &[]),
            active: active(lb),
        }
    }

    /// Asserts that ringlb runs, logged no panic, and is back near this baseline within 5 s
    /// (RSS within `rss_slack_kib`); returns what it measured.
    pub fn settle(&self, lb: &mut Lb, rss_slack_kib: u64) -> Settled {
        assert!(lb.running(), "ringlb exited: {}", tail(&lb.log_text(), 20));
        let pid = lb.pid();
        let t = Instant::now();
        let mut peak = 0;
        let s = loop {
            let s = Settled {
                fds: fds(pid),
                sockets: non_pipe_fds(pid),
                rss_kib: rss_kib(pid),
                peak_rss_kib: 0,
                open: metric(&scrape(lb), "ringlb_connections_open", &[]),
                active: active(lb),
                took: t.elapsed(),
            };
            peak = peak.max(s.rss_kib);
            let back = self.fds_back(&s)
                && s.open == self.open
                && s.active == self.active
                && s.rss_kib <= self.rss_kib + rss_slack_kib;
            if back || t.elapsed() >= Duration::from_secs(5) {
                break Settled {
                    peak_rss_kib: peak,
                    ..s
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        println!(
            "settle: fds {} -> {} (not pipes {} -> {}), open {} -> {}, active {} -> {}, \
             RSS {} -> {} KiB, after {:?}",
            self.fds,
            s.fds,
            self.sockets,
            s.sockets,
            self.open,
            s.open,
            self.active,
            s.active,
            self.rss_kib,
            s.rss_kib,
            s.took
        );
        assert!(lb.running(), "ringlb exited: {}", tail(&lb.log_text(), 20));
        let log = lb.log_text();
        assert!(
            !log.contains("panicked"),
            "ringlb panicked: {}",
            tail(&log, 20)
        );
        assert!(
            self.fds_back(&s),
            "descriptors {} -> {} (not pipes {} -> {})",
            self.fds,
            s.fds,
            self.sockets,
            s.sockets
        );
        assert_eq!(s.open, self.open, "ringlb_connections_open");
        assert_eq!(s.active, self.active, "active_connections");
        assert!(
            s.rss_kib <= self.rss_kib + rss_slack_kib,
            "RSS {} -> {} KiB (slack {} KiB)",
            self.rss_kib,
            s.rss_kib,
            rss_slack_kib
        );
        s
    }
}

impl Baseline {
    /// Sockets (and other non-pipe descriptors) within [`FD_SLACK`]; pipes no more than the
    /// pool holds on top.
    fn fds_back(&self, s: &Settled) -> bool {
        s.sockets.abs_diff(self.sockets) <= FD_SLACK && s.fds <= self.fds + FD_SLACK + 2 * PIPE_POOL
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Load

/// How one connection of the load went.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Sequence number (the argument of the path function).
    pub k: u64,
    /// When the connect started, since the load began.
    pub start: Duration,
    /// When the answer was complete (or the failure seen).
    pub end: Duration,
    pub result: Result<Answer, Failure>,
}

/// A complete HTTP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// `n` of `Hello from Server: n`, when the body says so.
    pub server: Option<u32>,
}

/// Why a connection of the load failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Connect(ErrorKind),
    /// A socket error after the connect (usually a reset).
    Io(ErrorKind),
    /// The connection closed before a complete answer.
    Truncated(usize),
    Timeout,
}

impl Outcome {
    /// Succeeded with a 200.
    pub fn ok(&self) -> bool {
        matches!(&self.result, Ok(a) if a.status == 200)
    }
}

/// Upper bound on one connection of the load: connect, request and answer.
pub const PER_CONNECTION: Duration = Duration::from_secs(10);

/// A load running on its own threads; [`Load::stop`] ends it and returns what happened.
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// `per_second` new connections a second (open loop: the schedule does not wait for
    /// answers) for at most `limit`, each sending `GET <path(k)>` with `Connection: close` and
    /// reading the answer to its end.
    pub fn rate(
        addr: SocketAddr,
        per_second: f64,
        limit: Duration,
        path: impl Fn(u64) -> String + Send + Sync + 'static,
    ) -> Load {
        Load::spawn(move |t0, stop| async move {
            let path = Arc::new(path);
            let mut set = tokio::task::JoinSet::new();
            let mut sent = 0u64;
            let mut done = Vec::new();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < limit {
                let due = (t0.elapsed().as_secs_f64() * per_second) as u64;
                while sent < due {
                    let k = sent;
                    let req = request(&path(k), true);
                    set.spawn(async move { one(addr, k, req, t0).await });
                    sent += 1;
                }
                while let Some(r) = set.try_join_next() {
                    done.extend(r.ok());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            while let Some(r) = set.join_next().await {
                done.extend(r.ok());
            }
            done.sort_by_key(|o| o.k);
            done
        })
    }

    /// `n` keep-alive connections, each sending `GET <path(k)>` every `every` and reading the
    /// answer, for at most `limit`. A stream ends at its first failure (recorded); `k` is
    /// `stream * 1_000_000 + request`.
    pub fn streams(
        addr: SocketAddr,
        n: usize,
        every: Duration,
        limit: Duration,
        path: impl Fn(u64) -> String + Send + Sync + 'static,
    ) -> Load {
        Load::spawn(move |t0, stop| async move {
            let path = Arc::new(path);
            let mut set = tokio::task::JoinSet::new();
            for s in 0..n as u64 {
                let (path, stop) = (path.clone(), stop.clone());
                set.spawn(async move { stream(addr, s, every, limit, t0, stop, path).await });
            }
            let mut done = Vec::new();
            while let Some(r) = set.join_next().await {
                done.extend(r.unwrap_or_default());
            }
            done.sort_by_key(|o| o.k);
            done
        })
    }

    fn spawn<F, Fut>(body: F) -> Load
    where
        F: FnOnce(Instant, Arc<AtomicBool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Vec<Outcome>>,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(body(t0, s))
        });
        Load {
            t0,
            stop,
            handle: Some(handle),
        }
    }

    /// Time since the load began (the clock of [`Outcome::start`]).
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Stops scheduling, waits for what is in flight (each bounded by [`PER_CONNECTION`]),
    /// returns every outcome.
    pub fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("load thread")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `GET <path>` with `Host`, and `Connection: close` when `close`.
pub fn request(path: &str, close: bool) -> Vec<u8> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: ringlb\r\n{conn}\r\n").into_bytes()
}

async fn one(addr: SocketAddr, k: u64, req: Vec<u8>, t0: Instant) -> Outcome {
    let start = t0.elapsed();
    let result = match tokio::time::timeout(PER_CONNECTION, exchange(addr, &req)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    };
    Outcome {
        k,
        start,
        end: t0.elapsed(),
        result,
    }
}

async fn exchange(addr: SocketAddr, req: &[u8]) -> Result<Answer, Failure> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::Connect(e.kind()))?;
    let _ = s.set_nodelay(true);
    s.write_all(req).await.map_err(|e| Failure::Io(e.kind()))?;
    let mut buf = Vec::with_capacity(512);
    s.read_to_end(&mut buf)
        .await
        .map_err(|e| Failure::Io(e.kind()))?;
    parse_answer(&buf).ok_or(Failure::Truncated(buf.len()))
}

/// Status and server id of a complete answer (headers plus `Content-Length` bytes of body).
pub fn parse_answer(buf: &[u8]) -> Option<Answer> {
    let (len, status, server) = answer_len(buf)?;
    (buf.len() >= len).then_some(Answer { status, server })
}

/// (total length, status, server id) once the head is complete.
fn answer_len(buf: &[u8]) -> Option<(usize, u16, Option<u32>)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let total = head_end + body_len;
    let server = buf.get(head_end..total).and_then(|body| {
        let text = std::str::from_utf8(body).ok()?;
        let at = text.find("Hello from Server: ")? + "Hello from Server: ".len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    });
    Some((total, status, server))
}

async fn stream(
    addr: SocketAddr,
    s: u64,
    every: Duration,
    limit: Duration,
    t0: Instant,
    stop: Arc<AtomicBool>,
    path: Arc<impl Fn(u64) -> String + Send + Sync>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let start = t0.elapsed();
    let conn = match tokio::time::timeout(PER_CONNECTION, TcpStream::connect(addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.push(Outcome {
                k: s * 1_000_000,
                start,
                end: t0.elapsed(),
                result: Err(Failure::Connect(e.kind())),
            });
            return out;
        }
        Err(_) => {
            out.push(Outcome {
                k: s * 1_000_000,
                start,
                end: t0.elapsed(),
                result: Err(Failure::Timeout),
            });
            return out;
        }
    };
    let _ = conn.set_nodelay(true);
    let mut conn = conn;
    let mut k = 0u64;
    let mut next = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < limit && k < 1_000_000 {
        let start = t0.elapsed();
        let req = request(&path(s * 1_000_000 + k), false);
        let result = tokio::time::timeout(PER_CONNECTION, keepalive_exchange(&mut conn, &req))
            .await
            .unwrap_or(Err(Failure::Timeout));
        let failed = result.is_err();
        out.push(Outcome {
            k: s * 1_000_000 + k,
            start,
            end: t0.elapsed(),
            result,
        });
        if failed {
            break;
        }
        k += 1;
        next += every;
        tokio::time::sleep_until(next).await;
    }
    out
}

async fn keepalive_exchange(conn: &mut TcpStream, req: &[u8]) -> Result<Answer, Failure> {
    conn.write_all(req)
        .await
        .map_err(|e| Failure::Io(e.kind()))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((len, status, server)) = answer_len(&buf) {
            if buf.len() >= len {
                return Ok(Answer { status, server });
            }
        }
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| Failure::Io(e.kind()))?;
        if n == 0 {
            return Err(Failure::Truncated(buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Achieved rate of a finished load: connections started per second over its span.
pub fn achieved_rate(outcomes: &[Outcome]) -> f64 {
    let Some(last) = outcomes.iter().map(|o| o.start).max() else {
        return 0.0;
    };
    outcomes.len() as f64 / last.as_secs_f64().max(1e-9)
}

/// The `q` quantile (0..=1) of the durations of successful outcomes, in milliseconds.
pub fn latency_ms(outcomes: &[Outcome], q: f64) -> f64 {
    let mut d: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.ok())
        .map(|o| (o.end - o.start).as_secs_f64() * 1e3)
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    d[((d.len() - 1) as f64 * q).round() as usize]
}

/// A few failures, for an assertion message.
pub fn sample_failures(outcomes: &[Outcome]) -> Vec<(u64, Duration, Result<Answer, Failure>)> {
    outcomes
        .iter()
        .filter(|o| !o.ok())
        .take(8)
        .map(|o| (o.k, o.start, o.result.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Backends run by the test

/// A replica process started by the test (`ringlb replica`), for `--runtime static`; it exits
/// when dropped (and when the test process dies: its stdin is a pipe from here).
pub struct OwnReplica {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl OwnReplica {
    pub fn start(id: u32, name: &str) -> OwnReplica {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringlb"))
            .args(["replica", "--listen", "127.0.0.1:0", "--announce"])
            .args([
                "--exit-on-stdin-eof",
                "--id",
                &id.to_string(),
                "--name",
                name,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("replica starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("replica announces");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected announce {line:?}"));
        OwnReplica { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OwnReplica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw TCP server on a thread: every accepted connection is handed to `serve` on its own
/// thread. Stops accepting when dropped.
pub struct RawServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> RawServer {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let serve = Arc::new(serve);
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let serve = serve.clone();
                        std::thread::spawn(move || serve(c));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The owner (server id) of each of `rids` through `lb`, asked one by one.
pub fn owners(lb: &Ringlb, rids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    rids.into_iter()
        .map(|r| (r, lb.home(r).expect("a served request")))
        .collect()
}

/// A spread of 6-digit request ids: the `k`-th.
pub fn rid(k: u64) -> u32 {
    100_000 + ((k.wrapping_mul(7_919) + 13) % 900_000) as u32
}
