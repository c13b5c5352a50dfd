//! Observability through the real binary and real tools: a Prometheus server scrapes ringlb and
//! answers PromQL with the counts the test sent, `promtool check metrics` accepts `/metrics`,
//! 100000 distinct request IDs leave `/metrics` as it was, and headless Chromium renders
//! `/status` with every replica, a killed one down and then up again.
//!
//! `prometheus` and `promtool` come from Debian's package `prometheus`, `chromium` from
//! `chromium`. Without them these tests print why and pass, except under `CI`, where a missing
//! tool fails them.
//!
//! The tests of this file run one at a time: the 100000 connections would otherwise compete for
//! the same two cores as Prometheus and Chromium.

mod common;
#[path = "common/obs.rs"]
mod obs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::Ringlb;
use obs::{eventually, samples, scrape, value};
use ringlb_core::metrics as m;
use serde_json::Value;

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// id → name, from `/replicas`.
fn names_by_id(lb: &Ringlb) -> HashMap<u32, String> {
    lb.details()
        .iter()
        .map(|d| {
            (
                d["id"].as_u64().unwrap() as u32,
                d["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The queries `docs/operations.md` recommends: every line of its `promql` blocks.
fn doc_queries() -> Vec<String> {
    let doc = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    let mut queries = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        match line.trim() {
            "```promql" => inside = true,
            "```" => inside = false,
            q if inside && !q.is_empty() => queries.push(q.to_string()),
            _ => {}
        }
    }
    queries
}

#[test]
fn prometheus_scrapes_the_counts_the_test_sent() {
    let _serial = serial();
    let Some(prometheus) = obs::tool("prometheus", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ringlb.log");
    let lb = obs::ringlb_logging(&["--log", "info", "--log-format", "json"], &log);

    // The example configuration, pointed at this ringlb and scraping every second.
    let example = std::fs::read_to_string(repo("compose/prometheus.yml")).unwrap();
    for needle in [
        "\"127.0.0.1:5001\"",
        "scrape_interval: 5s",
        "job_name: ringlb",
    ] {
        assert!(example.contains(needle), "compose/prometheus.yml: {needle}");
    }
    let config = example
        .replace("127.0.0.1:5001", &lb.control.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    let prom = obs::Prometheus::start(&prometheus, &config, dir.path());
    // A first scrape before the traffic, so that rate() sees the counters grow.
    eventually(Duration::from_secs(20), Duration::from_millis(200), || {
        (!prom.query("up{job=\"ringlb\"}").is_empty()).then_some(())
    })
    .expect("Prometheus scrapes ringlb");

    // 300 requests with distinct IDs, tallied by the replica that answered.
    let names = names_by_id(&lb);
    let requests = 300u64;
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    for rid in 0..requests {
        let id = lb.home(100_000 + rid as u32).expect("answered");
        *sent.entry(names[&id].clone()).or_default() += 1;
    }
    for name in names.values() {
        sent.entry(name.clone()).or_default();
    }

    let promql = "sum by (replica) (ringlb_connections_total)";
    let mut seen = BTreeMap::new();
    let matched = eventually(Duration::from_secs(30), Duration::from_millis(500), || {
        seen = prom
            .query(promql)
            .iter()
            .map(|s| {
                let replica = s["metric"]["replica"].as_str().unwrap().to_string();
                (replica, s["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect::<BTreeMap<String, u64>>();
        (seen == sent).then_some(())
    });
    println!("PromQL {promql}: {seen:?}");
    assert!(
        matched.is_some(),
        "Prometheus answered {seen:?}; the test sent {sent:?}"
    );

    let up = prom.query("up{job=\"ringlb\"}");
    println!("PromQL up{{job=\"ringlb\"}}: {}", Value::from(up.clone()));
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["value"][1], "1");
    let targets = prom.api("targets");
    let active = targets["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{targets}");
    let target = &active[0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    assert!(
        target["scrapeUrl"]
            .as_str()
            .unwrap()
            .contains(&lb.control.to_string()),
        "{target}"
    );
    let scraped = prom.query("scrape_samples_scraped{job=\"ringlb\"}");
    assert!(
        scraped[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 50.0
    );

    // Histograms reach Prometheus as buckets: the p99 connect time once two scrapes span the
    // traffic, and every query the operations guide recommends evaluates.
    let p99 =
        "histogram_quantile(0.99, sum by (le) (rate(ringlb_connect_duration_seconds_bucket[1m])))";
    let quantile = eventually(Duration::from_secs(20), Duration::from_millis(500), || {
        let r = prom.query(p99);
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        v.is_finite().then_some(v)
    });
    println!("PromQL {p99}: {quantile:?} s");
    assert!(quantile.is_some_and(|q| q > 0.0 && q <= 1.0));
    let queries = doc_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for q in &queries {
        let r = prom.query(q);
        println!("PromQL {q}: {}", Value::from(r));
    }

    // One JSON log line per finished connection, with where it went and what it moved.
    let lines = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "ringlb::conn" && v["message"] == "connection closed")
            .collect();
        (lines.len() as u64 >= requests).then_some(lines)
    })
    .expect("a log line per connection");
    assert_eq!(lines.len() as u64, requests);
    for l in &lines {
        assert!(names.values().any(|n| l["replica"] == n.as_str()), "{l}");
        assert!(l["bytes_up"].as_u64().unwrap() > 0, "{l}");
        assert!(l["bytes_down"].as_u64().unwrap() > 0, "{l}");
        assert!(l["duration_ms"].as_f64().is_some(), "{l}");
        assert!(l["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{l}");
        assert_eq!(l["end"], "eof", "{l}");
    }

    // One line per replica state change and per control-plane mutation.
    let (code, body) = lb.call("POST", "/add", Some(r#"{"n":1,"hostnames":["S7"]}"#));
    assert_eq!(code, 200, "{body}");
    let (code, body) = lb.call("DELETE", "/rm", Some(r#"{"n":1,"hostnames":["S7"]}"#));
    assert_eq!(code, 200, "{body}");
    let victim = lb.details()[0].clone();
    let pid = victim["pid"]
        .as_u64()
        .expect("the process runtime reports pids");
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let name = victim["name"].as_str().unwrap();
    let expected = [
        ("control: pool changed", "op", "add"),
        ("control: pool changed", "op", "rm"),
        ("replica is down", "replica", name),
        ("replica is up", "replica", name),
    ];
    let count = |events: &[Value], (message, key, val): (&str, &str, &str)| {
        events
            .iter()
            .filter(|v| v["message"] == message && v[key] == val)
            .count()
    };
    let events = eventually(Duration::from_secs(20), Duration::from_millis(200), || {
        let events: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] != "ringlb::conn")
            .collect();
        expected
            .iter()
            .all(|e| count(&events, *e) > 0)
            .then_some(events)
    })
    .expect("the log tells of the changes");
    for e in expected {
        assert_eq!(count(&events, e), 1, "{e:?}");
    }
}

/// Connections that each send one request with its own ID and read the whole answer.
struct Load {
    ok: usize,
    failed: usize,
    first_error: Option<String>,
    took: Duration,
}

/// Reads one HTTP response (headers, then `Content-Length` bytes) and leaves the connection
/// open, so the client closes first. With `Connection: close` the replica would close first
/// and leave its side of every connection in TIME_WAIT; a later connect from the same port
/// then meets that TIME_WAIT entry and waits a second for a retransmitted SYN.
fn read_response(s: &mut TcpStream, answer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.extend_from_slice(&buf[..n]);
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        if answer.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

fn distinct_ids(data: SocketAddr, n: usize, threads: usize, deadline: Duration) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut first_error) = (0, 0, None);
                let mut answer = Vec::with_capacity(512);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= n || started.elapsed() >= deadline {
                        break (ok, failed, first_error);
                    }
                    answer.clear();
                    let request = format!(
                        "GET /home?rid={} HTTP/1.1\r\nHost: ringlb\r\n\r\n",
                        10_000_000 + k
                    );
                    let r = TcpStream::connect(data).and_then(|mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(10)))?;
                        s.write_all(request.as_bytes())?;
                        read_response(&mut s, &mut answer)
                    });
                    match r {
                        Ok(()) if answer.starts_with(b"HTTP/1.1 200") => ok += 1,
                        other => {
                            failed += 1;
                            first_error.get_or_insert_with(|| {
                                format!("{other:?}: {}", String::from_utf8_lossy(&answer))
                            });
                        }
                    }
                }
            })
        })
        .collect();
    let mut load = Load {
        ok: 0,
        failed: 0,
        first_error: None,
        took: Duration::ZERO,
    };
    for w in workers {
        let (ok, failed, err) = w.join().unwrap();
        load.ok += ok;
        load.failed += failed;
        if load.first_error.is_none() {
            load.first_error = err;
        }
    }
    load.took = started.elapsed();
    load
}

#[test]
fn distinct_request_ids_add_no_series() {
    let _serial = serial();
    // The active checks share two busy cores with 100000 connections; they get room to answer
    // late, since this test is about labels, not about how soon a replica is declared down.
    let lb = Ringlb::start(&["--health-timeout", "3s", "--fall", "10"]);
    // Every replica has had a connection and /metrics has been scraped once, so every series
    // that traffic and scrapes create exists before the measurement.
    for rid in 0..30 {
        lb.home(rid).expect("answered");
    }
    scrape(&lb);
    let before = scrape(&lb);

    let n = 100_000;
    let load = distinct_ids(lb.data, n, 32, Duration::from_secs(120));
    println!(
        "{} connections with distinct request IDs in {:.1} s ({:.0}/s), {} failed (first: {:?})",
        load.ok,
        load.took.as_secs_f64(),
        load.ok as f64 / load.took.as_secs_f64(),
        load.failed,
        load.first_error
    );
    assert_eq!(
        load.ok + load.failed,
        n,
        "only {} IDs were sent within the 120 s bound",
        load.ok + load.failed
    );
    assert!(
        load.failed <= n / 100,
        "{} failed; first error: {:?}",
        load.failed,
        load.first_error
    );

    let after = scrape(&lb);
    let total = |name: &str| -> f64 {
        samples(&after)
            .iter()
            .filter(|(s, _)| obs::split_series(s).0 == name)
            .map(|(_, v)| v)
            .sum()
    };
    println!(
        "connect errors (retried on the next replica): {}, rejected: {}",
        total(m::CONNECT_ERRORS),
        total(m::REJECTED)
    );
    println!(
        "/metrics: {} bytes and {} samples before, {} bytes and {} samples after",
        before.len(),
        samples(&before).len(),
        after.len(),
        samples(&after).len()
    );
    let series =
        |text: &str| -> BTreeSet<String> { samples(text).into_iter().map(|(s, _)| s).collect() };
    assert_eq!(series(&before), series(&after), "the set of series changed");
    // Only the digits of counter values grow.
    assert!(after.len() < before.len() + 2048, "/metrics grew");
    assert_eq!(total(m::ROUTED) as usize, load.ok + 30);
    for (s, _) in samples(&after) {
        for (_, v) in obs::split_series(&s).1 {
            assert!(!v.starts_with("100"), "a label carries a request ID: {s}");
        }
    }
}

fn promtool_check(promtool: &std::path::Path, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `bytes` on a fresh connection (nothing when empty) and returns the status code of the
/// answer.
fn raw_status(data: SocketAddr, bytes: &[u8]) -> u16 {
    let answer = common::raw(data, bytes, Duration::from_secs(5)).unwrap();
    common::status_of(&answer)
}

#[test]
fn metrics_pass_promtool_and_follow_the_conventions() {
    let _serial = serial();
    let Some(promtool) = obs::tool("promtool", "prometheus") else {
        return;
    };
    let status = Command::new(&promtool)
        .args(["check", "config"])
        .arg(repo("compose/prometheus.yml"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "promtool check config compose/prometheus.yml"
    );

    let lb = Ringlb::start(&["--request-timeout", "300ms"]);
    let replicas = lb.replicas();

    // From the start: every family, as described, with every fixed and per-replica series at 0.
    let fresh = scrape(&lb);
    promtool_check(&promtool, &fresh);
    let described: BTreeSet<(String, String)> = m::DESCRIPTIONS
        .iter()
        .map(|(name, kind, _)| {
            let kind = match kind {
                m::Kind::Counter => "counter",
                m::Kind::Gauge => "gauge",
                m::Kind::Histogram => "histogram",
            };
            (name.to_string(), kind.to_string())
        })
        .collect();
    assert_eq!(obs::families(&fresh), described);
    for reason in m::REJECT_REASONS {
        assert_eq!(value(&fresh, m::REJECTED, &[("reason", reason)]), Some(0.0));
    }
    for state in m::REPLICA_STATES {
        let n = if *state == "up" {
            replicas.len() as f64
        } else {
            0.0
        };
        assert_eq!(value(&fresh, m::REPLICAS, &[("state", state)]), Some(n));
    }
    for r in &replicas {
        let r = r.as_str();
        assert_eq!(value(&fresh, m::REPLICA_UP, &[("replica", r)]), Some(1.0));
        assert_eq!(value(&fresh, m::ROUTED, &[("replica", r)]), Some(0.0));
        assert_eq!(value(&fresh, m::RESPAWNS, &[("replica", r)]), Some(0.0));
        for to in ["up", "down"] {
            let labels = [("replica", r), ("to", to)];
            assert_eq!(value(&fresh, m::TRANSITIONS, &labels), Some(0.0));
        }
        let share = value(&fresh, m::RING_SHARE, &[("replica", r)]).unwrap();
        assert!(share > 0.2 && share < 0.5, "{r}: {share}");
        let bucket = format!("{}_bucket", m::CONNECT_SECONDS);
        let inf = [("replica", r), ("le", "+Inf")];
        assert_eq!(value(&fresh, &bucket, &inf), Some(0.0));
    }
    let build = samples(&fresh)
        .into_iter()
        .find(|(s, _)| s.starts_with(m::BUILD_INFO))
        .unwrap();
    assert_eq!(build.1, 1.0);
    assert!(build.0.contains("version=\"") && build.0.contains("hash=\"maglev\""));

    // Traffic, each kind of rejection, and a replica that comes and goes.
    for rid in 0..20 {
        lb.home(rid).expect("answered");
    }
    assert_eq!(raw_status(lb.data, b"garbage\r\n\r\n"), 400);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    assert_eq!(raw_status(lb.data, long.as_bytes()), 414);
    assert_eq!(raw_status(lb.data, b""), 408);
    let (code, body) = lb.call("POST", "/add", Some(r#"{"n":1,"hostnames":["S9"]}"#));
    assert_eq!(code, 200, "{body}");
    assert!(scrape(&lb).contains("replica=\"S9\""));
    let (code, body) = lb.call("DELETE", "/rm", Some(r#"{"n":1,"hostnames":["S9"]}"#));
    assert_eq!(code, 200, "{body}");

    let text = scrape(&lb);
    promtool_check(&promtool, &text);
    assert!(!text.contains("S9"), "a removed replica stays in /metrics");
    for (reason, n) in [("bad_request", 1.0), ("too_long", 1.0), ("timeout", 1.0)] {
        assert_eq!(value(&text, m::REJECTED, &[("reason", reason)]), Some(n));
    }
    assert_eq!(value(&text, m::ACCEPTED, &[]), Some(23.0));
    assert_eq!(value(&text, m::RING_REBUILDS, &[]), Some(3.0));
    assert_eq!(
        value(&text, m::REPLICAS, &[("state", "up")]),
        Some(replicas.len() as f64)
    );
    let add = [("endpoint", "add"), ("status", "200")];
    assert_eq!(value(&text, m::CONTROL_REQUESTS, &add), Some(1.0));
    let routed: f64 = replicas
        .iter()
        .map(|r| value(&text, m::ROUTED, &[("replica", r)]).unwrap())
        .sum();
    assert_eq!(routed, 20.0);

    // Only bounded labels: a replica name or a word from a fixed list.
    let allowed = [
        "replica",
        "direction",
        "reason",
        "kind",
        "state",
        "to",
        "endpoint",
        "status",
        "le",
        "version",
        "hash",
        "runtime",
    ];
    for (s, _) in samples(&text) {
        for (k, _) in obs::split_series(&s).1 {
            assert!(allowed.contains(&k.as_str()), "unexpected label {k} in {s}");
        }
    }
}

fn status_url(lb: &Ringlb) -> String {
    format!("http://{}/status", lb.control)
}

#[test]
fn status_page_in_chromium_lists_every_replica() {
    let _serial = serial();
    let Some(chromium) = obs::tool("chromium", "chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let browser = obs::Chromium::new(chromium, &dir.path().join("chromium"));
    let lb = Ringlb::start(&[]);
    for rid in 0..120 {
        lb.home(rid).expect("answered");
    }
    // A replica killed under the process runtime is back before a browser could look: the page
    // shows it up again, respawned once.
    let victim = lb.details()[1].clone();
    let name = victim["name"].as_str().unwrap().to_string();
    let pid = victim["pid"]
        .as_u64()
        .expect("the process runtime reports pids");
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        lb.details()
            .iter()
            .any(|d| d["name"] == name.as_str() && d["respawns"] == 1 && d["state"] == "up")
            .then_some(())
    })
    .expect("the killed replica is respawned");
    for rid in 120..180 {
        lb.home(rid).expect("answered");
    }

    let dom = browser.dom(&status_url(&lb));
    let rows = obs::page_states(&dom);
    let want: Vec<(String, String)> = lb
        .replicas()
        .into_iter()
        .map(|r| (r, "up".to_string()))
        .collect();
    assert_eq!(rows, want, "{dom}");
    assert!(dom.contains("hash <b id=\"hash\">maglev</b>"), "{dom}");
    for link in ["href=\"/rep\"", "href=\"/metrics\""] {
        assert!(dom.contains(link), "{link}: {dom}");
    }
    assert!(dom.contains("http-equiv=\"refresh\""));

    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status.png");
    browser.screenshot(&status_url(&lb), &png, 1400, 300);
    println!("screenshot: {}", png.display());
    // `RINGLB_UPDATE_DOCS=1 cargo test -p ringlb-proxy --test observability` refreshes the
    // picture the README shows; other runs leave the work tree alone.
    if std::env::var_os("RINGLB_UPDATE_DOCS").is_some() {
        std::fs::copy(&png, repo("docs/status.png")).unwrap();
        println!("updated docs/status.png");
    }
}

#[test]
fn status_page_in_chromium_shows_a_killed_replica_down_then_up() {
    let _serial = serial();
    let Some(chromium) = obs::tool("chromium", "chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let browser = obs::Chromium::new(chromium, &dir.path().join("chromium"));
    // Static replicas: ringlb does not replace them, so the one the test kills stays down
    // until the test starts it again on the same address.
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| {
            format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap()
        })
        .collect();
    let mut replicas: Vec<Option<obs::Replica>> = addrs
        .iter()
        .enumerate()
        .map(|(k, a)| {
            Some(obs::Replica::start(
                *a,
                k as u32 + 1,
                &format!("S{}", k + 1),
            ))
        })
        .collect();
    let backends: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(k, a)| format!("S{}={a}", k + 1))
        .collect();
    let mut args = vec!["--runtime", "static", "--health-interval", "200ms"];
    for b in &backends {
        args.extend(["--backend", b.as_str()]);
    }
    let lb = Ringlb::start(&args);
    let url = status_url(&lb);
    let state_of = |name: &str| {
        obs::page_states(&browser.dom(&url))
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    };
    assert_eq!(
        obs::page_states(&browser.dom(&url)),
        vec![
            ("S1".to_string(), "up".to_string()),
            ("S2".to_string(), "up".to_string()),
            ("S3".to_string(), "up".to_string()),
        ]
    );

    replicas[1] = None; // killed
    eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        (state_of("S2")? == "down").then_some(())
    })
    .expect("the page shows S2 down");
    assert_eq!(state_of("S1").as_deref(), Some("up"));

    replicas[1] = Some(obs::Replica::start(addrs[1], 2, "S2"));
    eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        (state_of("S2")? == "up").then_some(())
    })
    .expect("the page shows S2 up again");
    let text = scrape(&lb);
    let labels = [("replica", "S2"), ("to", "down")];
    assert_eq!(value(&text, m::TRANSITIONS, &labels), Some(1.0));
    let labels = [("replica", "S2"), ("to", "up")];
    assert_eq!(value(&text, m::TRANSITIONS, &labels), Some(1.0));
}
