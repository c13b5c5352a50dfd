//! A client of ringlb's control port: `/rep`, `/replicas`, `/add`, `/rm`, and raw requests for the
//! endpoint checks of A-3.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// How long one control request may take. Adding a Docker replica runs `docker run` and waits
/// for its heartbeat, hence the generous bound.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// One replica as `/replicas` lists it (the fields the experiments read).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Replica {
    pub name: String,
    pub id: u32,
    pub address: Option<String>,
    pub state: String,
    #[serde(default)]
    pub share: f64,
    #[serde(default)]
    pub respawns: u32,
    pub pid: Option<u32>,
    pub last_transition: Option<f64>,
}

/// An answer: status code and body text.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The control port of one ringlb.
#[derive(Clone, Debug)]
pub struct Control {
    pub addr: SocketAddr,
}

impl Control {
    /// A client of the control port at `addr`.
    pub fn new(addr: SocketAddr) -> Control {
        Control { addr }
    }

    /// Sends one request with an optional raw body and returns the status and body.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Answer> {
        tokio::time::timeout(CONTROL_TIMEOUT, self.raw_inner(method.clone(), path, body))
            .await
            .with_context(|| format!("{method} {path} on {} timed out", self.addr))?
    }

    async fn raw_inner(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Answer> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to the control port {}", self.addr))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Sends JSON.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Result<Answer> {
        self.raw(method, path, Some(Bytes::from(body.to_string())))
            .await
    }

    /// `GET /replicas`: every replica with its id, state, pid, ...
    pub async fn replicas(&self) -> Result<Vec<Replica>> {
        let a = self.raw(Method::GET, "/replicas", None).await?;
        if a.status != 200 {
            bail!("GET /replicas answered {}: {}", a.status, a.body);
        }
        let v = a.json();
        let list = v.get("message").cloned().unwrap_or(v);
        serde_json::from_value(list).context("cannot read the /replicas list")
    }

    /// Server id → name, to label "Hello from Server: <id>" counts.
    pub async fn names(&self) -> Result<HashMap<u32, String>> {
        Ok(self
            .replicas()
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect())
    }

    /// `GET /rep`: the replica names.
    pub async fn rep(&self) -> Result<Vec<String>> {
        let a = self.raw(Method::GET, "/rep", None).await?;
        let v = a.json();
        let names = v["message"]["replicas"]
            .as_array()
            .ok_or_else(|| anyhow!("GET /rep answered {}: {}", a.status, a.body))?;
        Ok(names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect())
    }

    /// `POST /add` and check that it succeeded.
    pub async fn add(&self, n: usize, hostnames: &[String]) -> Result<()> {
        let a = self
            .json(
                Method::POST,
                "/add",
                &json!({"n": n, "hostnames": hostnames}),
            )
            .await?;
        if a.status != 200 {
            bail!(
                "POST /add n={n} {hostnames:?} answered {}: {}",
                a.status,
                a.body
            );
        }
        Ok(())
    }

    /// `DELETE /rm` and check that it succeeded.
    pub async fn rm(&self, n: usize, hostnames: &[String]) -> Result<()> {
        let a = self
            .json(
                Method::DELETE,
                "/rm",
                &json!({"n": n, "hostnames": hostnames}),
            )
            .await?;
        if a.status != 200 {
            bail!(
                "DELETE /rm n={n} {hostnames:?} answered {}: {}",
                a.status,
                a.body
            );
        }
        Ok(())
    }

    /// Brings the replica count to `n`: adds unnamed replicas (ringlb names them and gives them
    /// the smallest free ids) or removes the replicas with the largest ids. Removing by name,
    /// not at random, keeps the ids 1..n, which is what the `assignment` family's Φ(i, j) places.
    pub async fn set_replicas(&self, n: usize) -> Result<()> {
        let mut now = self.replicas().await?;
        if now.len() < n {
            self.add(n - now.len(), &[]).await?;
        } else if now.len() > n {
            now.sort_by_key(|r| std::cmp::Reverse(r.id));
            let names: Vec<String> = now[..now.len() - n]
                .iter()
                .map(|r| r.name.clone())
                .collect();
            self.rm(names.len(), &names).await?;
        }
        self.wait_all_up(n, Duration::from_secs(60)).await
    }

    /// Waits until exactly `n` replicas are listed and all are up.
    pub async fn wait_all_up(&self, n: usize, limit: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(list) = self.replicas().await {
                if list.len() == n && list.iter().all(|r| r.state == "up") {
                    return Ok(());
                }
            }
            if start.elapsed() > limit {
                bail!(
                    "ringlb at {} did not reach {n} healthy replicas in {limit:?}",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
