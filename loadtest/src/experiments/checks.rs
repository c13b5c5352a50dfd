//! A-3, first half: every endpoint of ringlb and every error case of the control API, each
//! request checked against the answer the contract (SPEC §3, §4, §6) promises.
//!
//! Data-plane checks use a raw socket, so that malformed and oversized request lines can be sent
//! exactly as written.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Ctx;
use crate::control::Answer;
use crate::report::Table;

/// The replica's exact answer to an unknown path (SPEC §3).
const OTHER: &str = r#"{"message":"<Error> '/other' endpoint does not exist in server replicas","status":"failure"}"#;
const ADD_TOO_MANY: &str = "<Error> Length of hostname list is more than newly added instances";
const RM_TOO_MANY: &str = "<Error> Length of hostname list is more than removable instances";

/// One checked request.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub request: String,
    pub expected: String,
    pub got: String,
    pub pass: bool,
}

/// A raw HTTP exchange on the data port: status, `X-Server-Name`, body.
struct Raw {
    status: u16,
    server: Option<String>,
    body: String,
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> Result<Raw> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(bytes).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), exchange).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let server = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-server-name")
            .then(|| v.trim().to_owned())
    });
    Ok(Raw {
        status,
        server,
        body: body.to_owned(),
    })
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: ringlb\r\nConnection: close\r\n\r\n").into_bytes()
}

fn short(s: &str) -> String {
    let s = s.trim().replace('\n', " ").replace('|', "\\|");
    if s.chars().count() > 110 {
        format!("{}…", s.chars().take(110).collect::<String>())
    } else {
        s
    }
}

/// Collects checks.
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &str, request: &str, expected: &str, got: String, pass: bool) {
        self.0.push(Check {
            name: name.into(),
            request: request.into(),
            expected: expected.into(),
            got: short(&got),
            pass,
        });
    }

    /// A control-plane error answer: this status, `"status":"failure"`, a message starting
    /// with `<Error>` (and equal to `exact` when given).
    fn control_error(
        &mut self,
        name: &str,
        request: &str,
        a: &Answer,
        status: u16,
        exact: Option<&str>,
    ) {
        let v = a.json();
        let msg = v["message"].as_str().unwrap_or("");
        let pass = a.status == status
            && v["status"] == "failure"
            && exact.map_or(msg.starts_with("<Error>"), |e| msg == e);
        let expected = match exact {
            Some(e) => format!("{status}, \"{e}\""),
            None => format!("{status}, \"<Error> …\", failure"),
        };
        self.add(
            name,
            request,
            &expected,
            format!("{} {}", a.status, a.body),
            pass,
        );
    }
}

/// The replicas named in a `{"message":{"N":…,"replicas":[…]}}` answer.
fn listed(v: &Value) -> (u64, Vec<String>) {
    let n = v["message"]["N"].as_u64().unwrap_or(0);
    let names = v["message"]["replicas"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (n, names)
}

/// Runs every check. The replica set is the same afterwards (the one replica added is removed).
pub async fn run(ctx: &Ctx) -> Result<Vec<Check>> {
    let c = &ctx.control;
    let mut k = Checks(Vec::new());
    let replicas = c.replicas().await?;
    let n0 = replicas.len() as u64;

    // Listing.
    let a = c.raw(Method::GET, "/rep", None).await?;
    let (n, names) = listed(&a.json());
    let pass = a.status == 200
        && a.json()["status"] == "successful"
        && n == n0
        && names.len() as u64 == n0;
    k.add(
        "list replicas",
        "GET /rep",
        &format!("200, N = {n0}, {n0} names, successful"),
        a.body.clone(),
        pass,
    );
    let a = c.raw(Method::GET, "/replicas", None).await?;
    let list = a.json()["message"].as_array().map_or(0, Vec::len) as u64;
    k.add(
        "detailed listing",
        "GET /replicas",
        &format!("200, {n0} entries"),
        format!("{} ({list} entries)", a.status),
        a.status == 200 && list == n0,
    );

    // Data plane.
    let r = raw(ctx.target, &get("/home?rid=123456")).await?;
    let id = crate::client::server_id(r.body.as_bytes());
    let named = replicas
        .iter()
        .find(|x| Some(x.id) == id)
        .map(|x| x.name.clone());
    let pass = r.status == 200 && id.is_some() && named.is_some() && r.server == named;
    k.add(
        "request routed by rid",
        "GET /home?rid=123456",
        "200, Hello from Server: <listed id>, X-Server-Name of that id",
        format!(
            "{} {} (X-Server-Name {})",
            r.status,
            r.body,
            r.server.as_deref().unwrap_or("none")
        ),
        pass,
    );
    let r = raw(ctx.target, &get("/home")).await?;
    k.add(
        "request without rid",
        "GET /home",
        "200, Hello from Server: <id>",
        format!("{} {}", r.status, r.body),
        r.status == 200 && r.body.contains("Hello from Server: "),
    );
    let r = raw(ctx.target, &get("/heartbeat")).await?;
    k.add(
        "heartbeat through the proxy",
        "GET /heartbeat",
        "200, empty body",
        format!("{} {:?}", r.status, r.body),
        r.status == 200 && r.body.is_empty(),
    );
    let r = raw(ctx.target, &get("/other")).await?;
    k.add(
        "unknown path",
        "GET /other",
        &format!("400 {OTHER}"),
        format!("{} {}", r.status, r.body),
        r.status == 400 && r.body.trim() == OTHER,
    );
    let r = raw(ctx.target, b"GARBAGE\r\n\r\n").await?;
    k.add(
        "malformed request line",
        "GARBAGE",
        "400 from ringlb",
        format!("{} {}", r.status, r.body),
        r.status == 400,
    );
    let long = format!("GET /home?rid={} HTTP/1.1\r\n\r\n", "9".repeat(9000));
    let r = raw(ctx.target, long.as_bytes()).await?;
    k.add(
        "request line over 8 KiB",
        "GET /home?rid=999… (9000 digits)",
        "414 from ringlb",
        format!("{} {}", r.status, r.body),
        r.status == 414,
    );

    // Control plane: add, its error cases, remove.
    let a = c
        .json(
            Method::POST,
            "/add",
            &json!({"n": 1, "hostnames": ["A3-new"]}),
        )
        .await?;
    let (n, names) = listed(&a.json());
    k.add(
        "add a named replica",
        r#"POST /add {"n":1,"hostnames":["A3-new"]}"#,
        &format!("200, N = {}, A3-new listed", n0 + 1),
        a.body.clone(),
        a.status == 200 && n == n0 + 1 && names.iter().any(|x| x == "A3-new"),
    );
    let a = c
        .json(
            Method::POST,
            "/add",
            &json!({"n": 1, "hostnames": ["A3-new"]}),
        )
        .await?;
    k.control_error(
        "add an existing name",
        r#"POST /add {"n":1,"hostnames":["A3-new"]}"#,
        &a,
        400,
        None,
    );
    let a = c
        .json(
            Method::POST,
            "/add",
            &json!({"n": 1, "hostnames": ["A3-x", "A3-y"]}),
        )
        .await?;
    k.control_error(
        "add: more hostnames than n",
        r#"POST /add {"n":1,"hostnames":["A3-x","A3-y"]}"#,
        &a,
        400,
        Some(ADD_TOO_MANY),
    );
    let a = c
        .json(
            Method::DELETE,
            "/rm",
            &json!({"n": 1, "hostnames": ["A3-x", "A3-y"]}),
        )
        .await?;
    k.control_error(
        "rm: more hostnames than n",
        r#"DELETE /rm {"n":1,"hostnames":["A3-x","A3-y"]}"#,
        &a,
        400,
        Some(RM_TOO_MANY),
    );
    let a = c
        .json(
            Method::DELETE,
            "/rm",
            &json!({"n": 1, "hostnames": ["A3-missing"]}),
        )
        .await?;
    k.control_error(
        "rm an unknown name",
        r#"DELETE /rm {"n":1,"hostnames":["A3-missing"]}"#,
        &a,
        400,
        None,
    );
    let a = c.json(Method::POST, "/add", &json!({"n": 0})).await?;
    k.control_error("add n = 0", r#"POST /add {"n":0}"#, &a, 400, None);
    let a = c.json(Method::POST, "/add", &json!({"n": "two"})).await?;
    k.control_error(
        "add n not an integer",
        r#"POST /add {"n":"two"}"#,
        &a,
        400,
        None,
    );
    let a = c
        .json(
            Method::POST,
            "/add",
            &json!({"n": 1, "hostnames": ["bad name"]}),
        )
        .await?;
    k.control_error(
        "add an invalid hostname",
        r#"POST /add {"n":1,"hostnames":["bad name"]}"#,
        &a,
        400,
        None,
    );
    let a = c
        .raw(Method::POST, "/add", Some(Bytes::from_static(b"{not json")))
        .await?;
    k.control_error("invalid JSON", "POST /add {not json", &a, 400, None);
    let a = c.json(Method::DELETE, "/rm", &json!({"n": 1000})).await?;
    k.control_error(
        "rm more than exist",
        r#"DELETE /rm {"n":1000}"#,
        &a,
        400,
        None,
    );
    let a = c.json(Method::POST, "/add", &json!({"n": 1000})).await?;
    k.control_error(
        "add more than fit",
        r#"POST /add {"n":1000}"#,
        &a,
        400,
        None,
    );
    let big = format!("{{\"n\":1,\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let a = c.raw(Method::POST, "/add", Some(Bytes::from(big))).await?;
    k.control_error("body over 64 KiB", "POST /add (70 KiB body)", &a, 413, None);
    let a = c.raw(Method::GET, "/add", None).await?;
    k.control_error("wrong method", "GET /add", &a, 405, None);
    let a = c.raw(Method::GET, "/nothing", None).await?;
    k.control_error("unknown control path", "GET /nothing", &a, 404, None);
    let a = c
        .json(
            Method::POST,
            "/rm",
            &json!({"n": 1, "hostnames": ["A3-new"]}),
        )
        .await?;
    let (n, names) = listed(&a.json());
    k.add(
        "remove by name (POST accepted)",
        r#"POST /rm {"n":1,"hostnames":["A3-new"]}"#,
        &format!("200, N = {n0}, A3-new gone"),
        a.body.clone(),
        a.status == 200 && n == n0 && !names.iter().any(|x| x == "A3-new"),
    );

    // Operations endpoints.
    for (path, want) in [
        ("/healthz", ""),
        ("/readyz", ""),
        ("/metrics", "ringlb_"),
        ("/status", "<"),
    ] {
        let a = c.raw(Method::GET, path, None).await?;
        let expected = if want.is_empty() {
            "200".to_owned()
        } else {
            format!("200, body contains {want:?}")
        };
        k.add(
            &format!("operations {path}"),
            &format!("GET {path}"),
            &expected,
            format!("{} ({} bytes)", a.status, a.body.len()),
            a.status == 200 && a.body.contains(want),
        );
    }
    Ok(k.0)
}

/// The checks as a table.
pub fn table(checks: &[Check]) -> Table {
    let mut t = Table::new(["#", "check", "request", "expected", "got", "result"]);
    for (i, c) in checks.iter().enumerate() {
        t.row([
            (i + 1).to_string(),
            c.name.clone(),
            format!("`{}`", c.request.replace('|', "\\|")),
            c.expected.replace('|', "\\|"),
            c.got.clone(),
            if c.pass {
                "pass".into()
            } else {
                "**FAIL**".into()
            },
        ]);
    }
    t
}
