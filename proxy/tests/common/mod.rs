//! Helpers shared by the integration tests: start the real `ringlb` binary on free ports, call
//! its control API, and speak raw HTTP/1.1 to its data port.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A ringlb process, killed (with its replicas) when dropped.
pub struct Ringlb {
    pub child: Child,
    pub data: SocketAddr,
    pub control: SocketAddr,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Ringlb {
    /// Starts ringlb with `args` (besides --listen/--control) and waits until it is ready.
    pub fn start(args: &[&str]) -> Ringlb {
        for _ in 0..5 {
            let data: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let control: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_ringlb"))
                .args([
                    "--listen",
                    &data.to_string(),
                    "--control",
                    &control.to_string(),
                ])
                .args(["--log", "warn"])
                .args(args)
                .stdin(Stdio::null())
                .spawn()
                .expect("ringlb starts");
            let mut lb = Ringlb {
                child,
                data,
                control,
            };
            if lb.wait_ready(Duration::from_secs(20)) {
                return lb;
            }
            let _ = lb.child.kill();
        }
        panic!("ringlb did not become ready");
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok((200, _)) = try_call(self.control, "GET", "/readyz", None) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A control-plane call: (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        try_call(self.control, method, path, body).expect("control plane answers")
    }

    /// The replica names `/rep` lists.
    pub fn replicas(&self) -> Vec<String> {
        let (status, body) = self.call("GET", "/rep", None);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["message"]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// `/replicas` details.
    pub fn details(&self) -> Vec<serde_json::Value> {
        let (_, body) = self.call("GET", "/replicas", None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["message"].as_array().unwrap().clone()
    }

    /// GET `path` through the proxy: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        raw_get(self.data, path)
    }

    /// The server id that answers `/home?rid=<rid>`.
    pub fn home(&self, rid: u32) -> std::io::Result<u32> {
        let (status, body) = self.get(&format!("/home?rid={rid}"))?;
        server_id(status, &body)
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Ringlb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `Hello from Server: <id>`.
pub fn server_id(status: u16, body: &str) -> std::io::Result<u32> {
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| std::io::Error::other(format!("{status} {body:?}: {e}")))?;
    v["message"]
        .as_str()
        .and_then(|m| m.strip_prefix("Hello from Server: "))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected answer {status} {body}")))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One HTTP call with a JSON body: (status, body).
pub fn try_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), ureq::Error> {
    let url = format!("http://{addr}{path}");
    let agent = agent();
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(&url).call()?,
        ("POST", b) => agent
            .post(&url)
            .header("content-type", "application/json")
            .send(b.unwrap_or(""))?,
        ("DELETE", Some(b)) => agent
            .delete(&url)
            .header("content-type", "application/json")
            .force_send_body()
            .send(b)?,
        ("DELETE", None) => agent.delete(&url).call()?,
        ("PUT", b) => agent.put(&url).send(b.unwrap_or(""))?,
        (m, _) => panic!("method {m} not supported by the helper"),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((status, text))
}

/// Sends raw bytes on a new connection and reads the whole answer (until close or `wait`).
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(bytes)?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(out)
}

/// The status code of a raw HTTP answer.
pub fn status_of(answer: &[u8]) -> u16 {
    std::str::from_utf8(answer.get(9..12).unwrap_or(b"000"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// GET over a fresh connection with `Connection: close`: (status, body).
pub fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: ringlb\r\nConnection: close\r\n\r\n");
    let answer = raw(addr, req.as_bytes(), Duration::from_secs(10))?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "empty answer",
        ));
    }
    let text = String::from_utf8_lossy(&answer);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status_of(&answer), body))
}

/// Runs `n` jobs on `threads` threads and collects their results in order.
pub fn parallel<T: Send + 'static>(
    n: usize,
    threads: usize,
    job: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let job = std::sync::Arc::new(job);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let job = job.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= n {
                        break out;
                    }
                    out.push((k, job(k)));
                }
            })
        })
        .collect();
    let mut all: Vec<(usize, T)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|(k, _)| *k);
    all.into_iter().map(|(_, t)| t).collect()
}

/// Waits (up to two minutes) until the kernel's connection-tracking table has room for `n` more
/// connections. Where conntrack is loaded (a Docker host) every connection, loopback included,
/// holds an entry for a while after it closes; a full table drops SYNs and every connect times
/// out, which would read as a proxy failure.
pub fn wait_for_conntrack_room(n: u64) {
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let t = Instant::now();
    loop {
        let (Some(count), Some(max)) = (read("nf_conntrack_count"), read("nf_conntrack_max"))
        else {
            return;
        };
        if count + n <= max * 9 / 10 {
            return;
        }
        if t.elapsed() > Duration::from_secs(120) {
            eprintln!("conntrack table still at {count}/{max}; going on");
            return;
        }
        if t.elapsed().as_secs().is_multiple_of(10) {
            eprintln!("waiting for room in the conntrack table ({count}/{max}, need {n})");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
