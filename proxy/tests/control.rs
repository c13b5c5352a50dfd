//! The control API through the real binary: /add and /rm change who answers, every bad request
//! gets its status and message and changes nothing, the token guards mutations.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Ringlb;

fn answering_ids(lb: &Ringlb, n: u32) -> BTreeSet<u32> {
    (0..n)
        .filter_map(|k| lb.home(100_000 + k * 4_447).ok())
        .collect()
}

#[test]
fn add_and_rm_change_who_answers_within_a_second() {
    let lb = Ringlb::start(&[]);
    let t = Instant::now();
    let (status, body) = lb.call("POST", "/add", Some(r#"{"n":2,"hostnames":["S5"]}"#));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "successful");
    assert_eq!(v["message"]["N"], 5);
    assert_eq!(
        v["message"]["replicas"],
        serde_json::json!(["Server-1", "Server-2", "Server-3", "S5", "Server-5"])
    );
    let ids = answering_ids(&lb, 200);
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(
        ids,
        BTreeSet::from([1, 2, 3, 4, 5]),
        "the new replicas answer"
    );

    let details = lb.details();
    let s5 = details.iter().find(|d| d["name"] == "S5").unwrap();
    let s5_id = s5["id"].as_u64().unwrap() as u32;
    let (status, body) = lb.call("DELETE", "/rm", Some(r#"{"n":1,"hostnames":["S5"]}"#));
    assert_eq!(status, 200, "{body}");
    assert!(!lb.replicas().contains(&"S5".to_string()));
    let ids = answering_ids(&lb, 200);
    assert!(!ids.contains(&s5_id), "S5 no longer answers: {ids:?}");
    assert_eq!(ids.len(), 4);

    // The unnamed rest is chosen at random; POST is accepted for /rm too.
    let (status, body) = lb.call("POST", "/rm", Some(r#"{"n":2}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(lb.replicas().len(), 2);
}

#[test]
fn every_bad_request_is_refused_and_changes_nothing() {
    let lb = Ringlb::start(&["--replicas", "3"]);
    let before = lb.replicas();
    let huge = format!(r#"{{"n":1,"hostnames":["{}"]}}"#, "a".repeat(70 * 1024));
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        (
            "POST",
            "/add",
            Some(r#"{"n":2,"hostnames":["S5","S4","S10","S11"]}"#),
            400,
            "<Error> Length of hostname list is more than newly added instances",
        ),
        (
            "DELETE",
            "/rm",
            Some(r#"{"n":2,"hostnames":["S5","S4","S10","S11"]}"#),
            400,
            "<Error> Length of hostname list is more than removable instances",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"n":1,"hostnames":["Server-2"]}"#),
            400,
            "already exists",
        ),
        (
            "DELETE",
            "/rm",
            Some(r#"{"n":1,"hostnames":["Nope"]}"#),
            400,
            "is not a replica",
        ),
        ("POST", "/add", Some(r#"{"n":0}"#), 400, "positive integer"),
        ("POST", "/add", Some(r#"{"n":-1}"#), 400, "positive integer"),
        ("DELETE", "/rm", Some(r#"{"n":0}"#), 400, "positive integer"),
        (
            "POST",
            "/add",
            Some(r#"{"n":"2"}"#),
            400,
            "must be an integer",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"n":1.5}"#),
            400,
            "must be an integer",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"hostnames":["S5"]}"#),
            400,
            "n is required",
        ),
        ("DELETE", "/rm", Some(r#"{"n":4}"#), 400, "only 3 exist"),
        ("POST", "/add", Some(r#"{"n":1000}"#), 400, "at most"),
        (
            "POST",
            "/add",
            Some(r#"{"n":1,"hostnames":["bad name"]}"#),
            400,
            "Invalid hostname",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"n":1,"hostnames":["--privileged"]}"#),
            400,
            "Invalid hostname",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"n":2,"hostnames":["S7","S7"]}"#),
            400,
            "appears twice",
        ),
        (
            "POST",
            "/add",
            Some(r#"{"n":1,"hostnames":"S5"}"#),
            400,
            "list of strings",
        ),
        ("POST", "/add", Some("{not json"), 400, "Invalid JSON"),
        ("POST", "/add", Some(""), 400, "Missing JSON payload"),
        (
            "POST",
            "/add",
            Some(r#"{"n":1,"extra":1}"#),
            400,
            "Unknown field",
        ),
        (
            "POST",
            "/add",
            Some(huge.as_str()),
            413,
            "larger than 64 KiB",
        ),
        ("GET", "/add", None, 405, "not allowed"),
        ("GET", "/rm", None, 405, "not allowed"),
        ("POST", "/rep", Some("{}"), 405, "not allowed"),
        ("GET", "/nope", None, 404, "not a control-plane endpoint"),
    ];
    for (method, path, body, want_status, want_text) in cases {
        let (status, text) = lb.call(method, path, body);
        assert_eq!(status, want_status, "{method} {path} {body:?} → {text}");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert_eq!(v["status"], "failure", "{text}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with("<Error> "), "{msg}");
        assert!(
            msg.contains(want_text),
            "{method} {path} {body:?}: {msg:?} lacks {want_text:?}"
        );
        assert_eq!(
            lb.replicas(),
            before,
            "{method} {path} {body:?} changed the pool"
        );
    }
    // Exact messages of the assignment.
    let (_, text) = lb.call(
        "POST",
        "/add",
        Some(r#"{"n":2,"hostnames":["S5","S4","S10","S11"]}"#),
    );
    assert_eq!(
        text,
        r#"{"message":"<Error> Length of hostname list is more than newly added instances","status":"failure"}"#
    );
}

#[test]
fn token_guards_mutations() {
    let lb = Ringlb::start(&["--token", "s3cret", "--replicas", "1"]);
    let url = format!("http://{}/add", lb.control);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for auth in [None, Some("Bearer wrong"), Some("s3cret")] {
        let mut req = agent.post(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send(r#"{"n":1}"#).unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
    }
    assert_eq!(lb.replicas().len(), 1);
    let resp = agent
        .post(&url)
        .header("authorization", "Bearer s3cret")
        .send(r#"{"n":1}"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(lb.replicas().len(), 2);
    // Reads need no token.
    assert_eq!(lb.call("GET", "/rep", None).0, 200);
}

#[test]
fn non_loopback_control_without_token_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringlb"))
        .args(["--control", "0.0.0.0:5999", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_ringlb"))
        .args(["--control", "0.0.0.0:5999", "--token", "t", "--check"])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn readyz_and_healthz() {
    let lb = Ringlb::start(&["--replicas", "1"]);
    assert_eq!(lb.call("GET", "/healthz", None).0, 200);
    assert_eq!(lb.call("GET", "/readyz", None).0, 200);
    let (status, _) = lb.call("DELETE", "/rm", Some(r#"{"n":1}"#));
    assert_eq!(status, 200);
    assert_eq!(lb.call("GET", "/readyz", None).0, 503);
    let (status, body) = lb.get("/home").unwrap();
    assert_eq!(status, 503, "{body}");
}
