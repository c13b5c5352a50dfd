//! The control-plane HTTP API: one `match` on (method, path).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/rep` | `{"message":{"N":3,"replicas":[…]},"status":"successful"}` (`?verbose=1` adds details) |
//! | GET | `/replicas` | name, id, address, state, ring share and counters of every replica |
//! | POST | `/add` | `{"n":2,"hostnames":["S5"]}`: start replicas (all or nothing) |
//! | DELETE, POST | `/rm` | `{"n":2,"hostnames":["S5"]}`: remove replicas (all or nothing) |
//! | GET | `/healthz` | the control plane runs |
//! | GET | `/readyz` | at least one replica is up |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/status` | a small HTML page |
//!
//! Errors use the assignment's envelope `{"message":"<Error> …","status":"failure"}`: 400 for bad
//! input, 401 for a missing or wrong token, 404 for an unknown path, 405 for a wrong method, 413
//! for a body over the limit, 503 when the runtime cannot carry out a valid request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use ringlb_core::metrics as m;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::manager::{Manager, Phase};
use crate::ControlError;

/// Largest accepted request body: far more than any `/add` needs (64 names of 63 bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// API settings.
#[derive(Clone, Default)]
pub struct ApiConfig {
    /// Bearer token that guards mutations; `None`: mutations are open (loopback only).
    pub token: Option<String>,
    /// Renders `/metrics`; `None`: `/metrics` is empty.
    pub metrics: Option<PrometheusHandle>,
    /// Slow clients are cut off when their headers take longer than this.
    pub header_timeout: Option<Duration>,
    /// Ring family name, for the status page.
    pub hash: String,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("header_timeout", &self.header_timeout)
            .finish_non_exhaustive()
    }
}

struct Ctx {
    manager: Manager,
    cfg: ApiConfig,
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    manager: Manager,
    cfg: ApiConfig,
    shutdown: CancellationToken,
) {
    let header_timeout = cfg.header_timeout.unwrap_or(Duration::from_secs(5));
    let ctx = Arc::new(Ctx { manager, cfg });
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

async fn handle(req: Request<Incoming>, ctx: &Ctx) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let get = method == Method::GET || method == Method::HEAD;
    let (endpoint, resp) = match path.as_str() {
        "/rep" if get => ("rep", rep(ctx, query_flag(&query, "verbose"))),
        "/replicas" if get => ("replicas", ok_json(json!(details(&ctx.manager)))),
        "/add" if method == Method::POST => ("add", mutate(req, ctx, Op::Add).await),
        "/rm" if method == Method::DELETE || method == Method::POST => {
            ("rm", mutate(req, ctx, Op::Remove).await)
        }
        "/healthz" if get => ("healthz", text(StatusCode::OK, "ok\n")),
        "/readyz" if get => ("readyz", readyz(ctx)),
        "/metrics" if get => ("metrics", metrics(ctx)),
        "/status" if get => ("status", status_page(ctx)),
        "/rep" | "/replicas" | "/healthz" | "/readyz" | "/metrics" | "/status" => {
            (endpoint_name(&path), not_allowed(&method, "GET, HEAD"))
        }
        "/add" => ("add", not_allowed(&method, "POST")),
        "/rm" => ("rm", not_allowed(&method, "DELETE, POST")),
        _ => (
            "other",
            error(
                StatusCode::NOT_FOUND,
                &format!("'{}' is not a control-plane endpoint", short(&path)),
            ),
        ),
    };
    ::metrics::counter!(m::CONTROL_REQUESTS, "endpoint" => endpoint,
        "status" => resp.status().as_str().to_string())
    .increment(1);
    resp
}

fn endpoint_name(path: &str) -> &'static str {
    match path {
        "/rep" => "rep",
        "/replicas" => "replicas",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        _ => "status",
    }
}

fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
        k == name && !matches!(v, "0" | "false" | "no")
    })
}

fn rep(ctx: &Ctx, verbose: bool) -> Resp {
    let listing = ctx.manager.listing();
    let mut message = json!({ "N": listing.replicas.len(), "replicas": listing.replicas });
    if verbose {
        message["details"] = json!(details(&ctx.manager));
    }
    ok_json(message)
}

/// One replica in the detailed listing.
pub(crate) fn details(manager: &Manager) -> Vec<Value> {
    let routes = manager.inner.directory.load();
    let shares = routes.ring.shares();
    let st = manager.state();
    st.replicas
        .iter()
        .map(|r| {
            let share = routes
                .ring
                .members()
                .iter()
                .position(|mb| mb.name == r.name)
                .and_then(|k| shares.get(k).copied())
                .unwrap_or(0.0);
            let h = &r.health;
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            json!({
                "name": r.name,
                "id": r.id,
                "address": r.addr.to_string(),
                "state": state_word(r.phase, h.is_up()),
                "share": share,
                "active_connections": load(&h.active),
                "total_connections": load(&h.total),
                "bytes_to_replica": load(&h.bytes_to_replica),
                "bytes_to_client": load(&h.bytes_to_client),
                "respawns": r.respawns,
                "pid": manager.inner.runtime.pid(&r.name),
                "last_check": r.last_check.map(unix),
                "last_check_ok": r.last_check_ok,
                "last_transition": r.last_transition.map(unix),
            })
        })
        .collect()
}

pub(crate) fn state_word(phase: Phase, up: bool) -> &'static str {
    match (phase, up) {
        (Phase::Respawning, _) => "respawning",
        (_, true) => "up",
        (_, false) => "down",
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

fn readyz(ctx: &Ctx) -> Resp {
    if ctx.manager.inner.directory.load().any_up() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "no replica is up\n")
    }
}

/// The state gauges are set from the manager's view first; series of replicas no longer in the
/// pool are left out (see [`m::retain_replicas`]).
fn metrics(ctx: &Ctx) -> Resp {
    let pool = crate::status::refresh_gauges(&ctx.manager);
    let body = ctx
        .cfg
        .metrics
        .as_ref()
        .map(|h| m::retain_replicas(&h.render(), |r| pool.contains(r)).into_owned())
        .unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn status_page(ctx: &Ctx) -> Resp {
    let html = crate::status::render(&ctx.manager, &ctx.cfg.hash);
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Remove,
}

/// `/add` and `/rm`: token, body limit, JSON, then the manager.
async fn mutate(req: Request<Incoming>, ctx: &Ctx, op: Op) -> Resp {
    if let Some(token) = &ctx.cfg.token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "Missing or wrong bearer token (send Authorization: Bearer <token>)",
            );
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Could not read the body: {e}"),
            )
        }
    };
    let (n, hostnames) = match parse_payload(&body) {
        Ok(p) => p,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    let result = match op {
        Op::Add => ctx.manager.add(n, &hostnames).await,
        Op::Remove => ctx.manager.remove(n, &hostnames).await,
    };
    let verb = match op {
        Op::Add => "add",
        Op::Remove => "rm",
    };
    match result {
        Ok(listing) => {
            tracing::info!(op = verb, n, hostnames = ?hostnames, replicas = listing.replicas.len(), "control: pool changed");
            ok_json(json!({ "N": listing.replicas.len(), "replicas": listing.replicas }))
        }
        Err(ControlError::BadRequest(msg)) => {
            tracing::info!(op = verb, error = %msg, "control: request refused");
            error(StatusCode::BAD_REQUEST, &msg)
        }
        Err(ControlError::Runtime(e)) => {
            tracing::warn!(op = verb, error = %e, "control: runtime failed; nothing changed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{e}; nothing was changed"),
            )
        }
    }
}

/// `{"n": <int>, "hostnames": [<string>…]}`; `hostnames` may be absent or null.
fn parse_payload(body: &[u8]) -> Result<(i64, Vec<String>), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("Missing JSON payload: send {\"n\": <count>, \"hostnames\": [...]}".into());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(
            "Payload must be a JSON object such as {\"n\": 2, \"hostnames\": [\"S5\"]}".into(),
        );
    };
    if let Some(k) = obj.keys().find(|k| *k != "n" && *k != "hostnames") {
        return Err(format!(
            "Unknown field '{}' (expected n and hostnames)",
            short(k)
        ));
    }
    let hostnames = match obj.get("hostnames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|h| match h {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "hostnames must be strings, got {}",
                    short(&other.to_string())
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "hostnames must be a list of strings, got {}",
                short(&other.to_string())
            ))
        }
    };
    let n = match obj.get("n") {
        None | Some(Value::Null) => return Err("n is required: the number of replicas".into()),
        Some(Value::Number(num)) => match num.as_i64() {
            Some(n) => n,
            None if num.is_u64() => i64::MAX,
            None => return Err(format!("n must be an integer, got {num}")),
        },
        Some(other) => {
            return Err(format!(
                "n must be an integer, got {}",
                short(&other.to_string())
            ))
        }
    };
    Ok((n, hostnames))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

fn ok_json(message: Value) -> Resp {
    json_response(
        StatusCode::OK,
        &json!({ "message": message, "status": "successful" }),
    )
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_response(
        status,
        &json!({ "message": format!("<Error> {msg}"), "status": "failure" }),
    )
}

fn too_large() -> Resp {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request body is larger than {} KiB", MAX_BODY / 1024),
    )
}

fn not_allowed(method: &Method, allow: &'static str) -> Resp {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method {method} is not allowed here (allowed: {allow})"),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn json_response(status: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::parse_payload;

    #[test]
    fn payloads() {
        assert_eq!(
            parse_payload(br#"{"n":2,"hostnames":["S5"]}"#).unwrap(),
            (2, vec!["S5".to_string()])
        );
        assert_eq!(parse_payload(br#"{"n":1}"#).unwrap(), (1, vec![]));
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"n":"2"}"#,
            br#"{"n":2.5}"#,
            br#"{"hostnames":[]}"#,
            br#"{"n":1,"hostnames":"S5"}"#,
            br#"{"n":1,"hostnames":[5]}"#,
            br#"{"n":1,"extra":true}"#,
        ] {
            assert!(
                parse_payload(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
