//! Operating the binary: env fallbacks, the TOML file, `--check`, and the assignment's single
//! port (`--admin-on-data-port`).

mod common;

use std::io::Write;
use std::process::Command;

use common::{free_port, try_call, Ringlb};

fn ringlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlb"))
}

#[test]
fn admin_on_data_port_answers_rep_add_and_rm() {
    let lb = Ringlb::start(&["--admin-on-data-port", "--replicas", "2"]);
    let (status, body) = try_call(lb.data, "GET", "/rep", None).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"message":{"N":2,"replicas":["Server-1","Server-2"]},"status":"successful"}"#
    );
    let (status, body) = try_call(
        lb.data,
        "POST",
        "/add",
        Some(r#"{"n":1,"hostnames":["S9"]}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(lb.replicas().contains(&"S9".to_string()));
    let (status, _) = try_call(
        lb.data,
        "DELETE",
        "/rm",
        Some(r#"{"n":1,"hostnames":["S9"]}"#),
    )
    .unwrap();
    assert_eq!(status, 200);
    // Everything else still goes to a replica.
    assert_eq!(lb.get("/home").unwrap().0, 200);
    // Without the flag, /rep on the data port is a replica's 400.
    let plain = Ringlb::start(&["--replicas", "1"]);
    let (status, body) = plain.get("/rep").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("'/rep' endpoint does not exist in server replicas"));
}

#[test]
fn check_validates_and_exits() {
    assert!(ringlb().arg("--check").status().unwrap().success());
    for bad in [
        &["--hash", "nope", "--check"][..],
        &["--replicas", "57", "--hash", "assignment", "--check"],
        &["--runtime", "static", "--check"],
        &["--backend", "a=127.0.0.1:1", "--check"],
        &["--table-size", "65536", "--check"],
        &["--assignment-h", "1,2", "--check"],
        &["--fall", "0", "--check"],
        &["--busy-poll", "1s", "--check"],
        &["--busy-poll", "soon", "--check"],
    ] {
        let out = ringlb().args(bad).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{bad:?} says why");
    }
}

#[test]
fn env_and_config_file() {
    // RINGLB_* variables stand in for flags.
    let (data, control) = (free_port(), free_port());
    let mut child = ringlb()
        .env("RINGLB_LISTEN", format!("127.0.0.1:{data}"))
        .env("RINGLB_CONTROL", format!("127.0.0.1:{control}"))
        .env("RINGLB_REPLICAS", "2")
        .env("RINGLB_LOG", "warn")
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{control}").parse().unwrap();
    let mut names = None;
    for _ in 0..200 {
        if let Ok((200, body)) = try_call(addr, "GET", "/rep", None) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["message"]["N"] == 2 {
                names = Some(body);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(names.is_some(), "two replicas from RINGLB_REPLICAS");

    // A TOML file with flag names as keys; unknown keys are refused.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "replicas = 1\nhash = \"rendezvous\"\nhealth-interval = \"200ms\""
    )
    .unwrap();
    let path = f.path().to_str().unwrap().to_string();
    let lb = Ringlb::start(&["--config", &path]);
    assert_eq!(lb.replicas(), ["Server-1"]);
    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad, "replicas = 1\ncolour = \"blue\"").unwrap();
    let out = ringlb()
        .args(["--config", bad.path().to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key 'colour'"));
}

#[test]
fn name_prefix_names_the_replicas() {
    let lb = Ringlb::start(&["--name-prefix", "web-", "--replicas", "2"]);
    assert_eq!(lb.replicas(), ["web-1", "web-2"]);
    let (status, body) = lb.call("POST", "/add", Some(r#"{"n":1}"#));
    assert_eq!(status, 200, "{body}");
    assert_eq!(lb.replicas(), ["web-1", "web-2", "web-3"]);
    let out = ringlb()
        .args(["--name-prefix", "a b", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `--handover` refuses what it cannot use, with a reason, and leaves the ringlb there alone: a
/// path that is not a socket or is in no directory (exit 2, like every bad flag), and listeners
/// bound to another address than `--listen` (the new ringlb stops, exit 1; the old one serves on
/// and keeps its socket file).
#[test]
fn handover_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "x").unwrap();
    for (path, why) in [
        (file.clone(), "not a socket"),
        (dir.path().join("missing/h.sock"), "not a directory"),
    ] {
        let out = ringlb()
            .args(["--handover", path.to_str().unwrap(), "--check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--handover") && stderr.contains(why),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");

    let socket = dir.path().join("h.sock");
    let sock = socket.to_str().unwrap();
    let old = Ringlb::start(&["--replicas", "1", "--handover", sock]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no handover socket");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = ringlb()
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--control", &format!("127.0.0.1:{}", free_port())])
        .args(["--replicas", "1", "--handover", sock])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("bound to {}, not to --listen", old.data)),
        "{stderr}"
    );
    assert!(
        socket.exists(),
        "the refused ringlb touched the socket file"
    );
    assert_eq!(old.get("/home").unwrap().0, 200);
}

/// `--handover` across worker counts: a ringlb with one worker takes the two listeners of a
/// ringlb with two and accepts on both; a ringlb with three takes those two and binds a third.
/// After each old ringlb stops, every connection is served: the kernel spreads connections over
/// all of the port's sockets, so a socket nobody accepted on would leave some of them hanging.
#[test]
fn handover_across_worker_counts() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("h.sock");
    let sock = socket.to_str().unwrap();
    let mut old = Ringlb::start(&["--replicas", "1", "--workers", "2", "--handover", sock]);
    let addr = old.data;
    let listen = addr.to_string();
    let served_by_the_port = || {
        (0..40)
            .filter(|i| {
                let req = format!(
                    "GET /home?rid={i} HTTP/1.1\r\nHost: ringlb\r\nConnection: close\r\n\r\n"
                );
                let answer = common::raw(addr, req.as_bytes(), std::time::Duration::from_secs(2))
                    .unwrap_or_default();
                answer.starts_with(b"HTTP/1.1 200")
            })
            .count()
    };
    for workers in ["1", "3"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !socket.exists() {
            assert!(std::time::Instant::now() < deadline, "no handover socket");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // A later --listen overrides the one Ringlb::start passes.
        let new = Ringlb::start(&[
            "--replicas",
            "1",
            "--workers",
            workers,
            "--handover",
            sock,
            "--listen",
            &listen,
        ]);
        assert!(old.terminate().success());
        assert_eq!(served_by_the_port(), 40, "--workers {workers}");
        old = new;
    }
}
