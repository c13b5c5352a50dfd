//! Helpers of the observability tests: the outside tools (Prometheus, promtool, headless
//! Chromium) as child processes that die with the test, a ringlb whose log goes to a file, a
//! replica started by hand, and small readers for what they answer.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{free_port, try_call, Ringlb};

/// The path of `name` on `PATH`. When it is missing the test is skipped (`None`, with a
/// message), except under `CI`, where a missing tool is a failure: CI installs them.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        if ci {
            panic!("`{name}` is not installed; CI needs the Debian package `{package}`");
        }
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: `{name}` is not installed (apt-get install {package}); CI runs this test"
        );
    }
    found
}

/// A child process in its own process group; the whole group is killed when this is dropped
/// (Chromium and the `chromium` wrapper script start several processes).
pub struct Group {
    child: Child,
}

impl Group {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        let child = cmd.process_group(0).spawn()?;
        Ok(Group { child })
    }

    /// Exited yet? (`Some(success)`).
    pub fn exited(&mut self) -> Option<bool> {
        self.child.try_wait().ok().flatten().map(|s| s.success())
    }

    /// Waits for the exit at most `within`; `None` when it is still running.
    pub fn wait(&mut self, within: Duration) -> Option<bool> {
        let t = Instant::now();
        loop {
            if let Some(ok) = self.exited() {
                return Some(ok);
            }
            if t.elapsed() >= within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// `kill -KILL -- -PGID`: the group was created with the child, so its id is the child's pid.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Starts ringlb with `args` (besides --listen and --control) and its log in `log`; retries
/// with other ports when one was taken meanwhile.
pub fn ringlb_logging(args: &[&str], log: &Path) -> Ringlb {
    for _ in 0..5 {
        let data: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let control: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringlb"))
            .args(["--listen", &data.to_string()])
            .args(["--control", &control.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .expect("ringlb starts");
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
            if let Ok((200, _)) = try_call(control, "GET", "/readyz", None) {
                return lb;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!(
        "ringlb did not become ready: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// `GET /metrics` of `lb`.
pub fn scrape(lb: &Ringlb) -> String {
    let (status, body) = lb.call("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body
}

/// One sample of the Prometheus text format: the series (name and labels as written) and the
/// value.
pub fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// The value of the series written exactly as `series` (e.g. `x{a="b"}`), if present.
/// Labels are matched in any order.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(series, _)| {
            let (n, l) = split_series(series);
            let mut want: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            want.sort();
            n == name && l == want
        })
        .map(|(_, v)| v)
}

/// Splits `name{k="v",…}` into the name and its sorted labels.
pub fn split_series(series: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series, Vec::new());
    };
    let mut labels: Vec<(String, String)> = rest
        .trim_end_matches('}')
        .split("\",")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once("=\"").expect("k=\"v\"");
            (k.to_string(), v.trim_end_matches('"').to_string())
        })
        .collect();
    labels.sort();
    (name, labels)
}

/// The metric families a text declares with `# TYPE`: (name, type).
pub fn families(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_string(), t.to_string())
        })
        .collect()
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server with its data in a temporary directory, killed when dropped.
pub struct Prometheus {
    pub addr: SocketAddr,
    _proc: Group,
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts `bin` with the configuration `config` and waits until it is ready.
    pub fn start(bin: &Path, config: &str, dir: &Path) -> Prometheus {
        let config_file = dir.join("prometheus.yml");
        fs::write(&config_file, config).unwrap();
        let log = dir.join("prometheus.log");
        for attempt in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let data = dir.join(format!("data-{attempt}"));
            let mut proc = Group::spawn(
                Command::new(bin)
                    .arg(format!("--config.file={}", config_file.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(fs::File::create(&log).unwrap()),
            )
            .expect("prometheus starts");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) && proc.exited().is_none() {
                if let Ok((200, _)) = try_call(addr, "GET", "/-/ready", None) {
                    return Prometheus {
                        addr,
                        _proc: proc,
                        log,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!(
            "prometheus did not become ready: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `GET /api/v1/<what>`; the `data` member of a successful answer.
    pub fn api(&self, what: &str) -> Value {
        let (status, body) = try_call(self.addr, "GET", &format!("/api/v1/{what}"), None)
            .expect("prometheus answers");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            (status, v["status"].as_str()),
            (200, Some("success")),
            "{body}"
        );
        v["data"].clone()
    }

    /// An instant query; its result vector.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!("query?query={}", urlencode(promql)));
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

/// Headless Chromium, one run per call, with its profile in a temporary directory.
pub struct Chromium {
    bin: PathBuf,
    dir: PathBuf,
}

impl Chromium {
    pub fn new(bin: PathBuf, dir: &Path) -> Chromium {
        fs::create_dir_all(dir).unwrap();
        Chromium {
            bin,
            dir: dir.to_path_buf(),
        }
    }

    fn run(&self, extra: &[String], url: &str) -> Vec<u8> {
        let out = self.dir.join("stdout");
        let err = self.dir.join("stderr");
        let mut proc = Group::spawn(
            Command::new(&self.bin)
                .args([
                    "--headless",
                    // The test runs as root in a container: Chromium's sandbox needs user
                    // namespaces that such a container rarely grants.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--hide-scrollbars",
                ])
                .arg(format!(
                    "--user-data-dir={}",
                    self.dir.join("profile").display()
                ))
                .args(extra)
                .arg(url)
                .stdin(Stdio::null())
                .stdout(fs::File::create(&out).unwrap())
                .stderr(fs::File::create(&err).unwrap()),
        )
        .expect("chromium starts");
        match proc.wait(Duration::from_secs(60)) {
            Some(true) => fs::read(&out).unwrap(),
            other => panic!(
                "chromium {}: {}",
                if other.is_none() {
                    "took over 60 s"
                } else {
                    "failed"
                },
                tail(&fs::read_to_string(&err).unwrap_or_default(), 20)
            ),
        }
    }

    /// The page's DOM after it loaded, as Chromium serializes it.
    pub fn dom(&self, url: &str) -> String {
        String::from_utf8_lossy(&self.run(&["--dump-dom".into()], url)).into_owned()
    }

    /// A PNG screenshot of the page at `width`×`height` into `png`.
    pub fn screenshot(&self, url: &str, png: &Path, width: u32, height: u32) {
        let _ = fs::remove_file(png);
        self.run(
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={width},{height}"),
            ],
            url,
        );
        let bytes = fs::read(png).expect("chromium wrote the screenshot");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    }
}

/// `data-replica` → `data-state` of every row of the status page's table.
pub fn page_states(dom: &str) -> Vec<(String, String)> {
    dom.split("<tr")
        .skip(1)
        .filter_map(|row| {
            let tag = &row[..row.find('>')?];
            Some((attr(tag, "data-replica")?, attr(tag, "data-state")?))
        })
        .collect()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

/// A replica started by hand (for the static runtime), killed when dropped.
pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
}

impl Replica {
    /// Starts `ringlb replica` on `addr`, retrying while the port is still held.
    pub fn start(addr: SocketAddr, id: u32, name: &str) -> Replica {
        let t = Instant::now();
        loop {
            let mut child = Command::new(env!("CARGO_BIN_EXE_ringlb"))
                .args(["replica", "--listen", &addr.to_string()])
                .args(["--id", &id.to_string(), "--name", name])
                .arg("--exit-on-stdin-eof")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("replica starts");
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok((200, _)) = try_call(addr, "GET", "/heartbeat", None) {
                    return Replica { child, addr };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "replica {name} could not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds, polling every `every`, at most `within`.
pub fn eventually<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if t.elapsed() >= within {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
