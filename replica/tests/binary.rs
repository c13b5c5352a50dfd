//! The built `replica` binary as the process runtime starts it: port 0, announce line on
//! stdout, and exit when the parent closes the stdin pipe.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hyper::StatusCode;

/// Guards against a hang only; no test asserts on timing.
const EXIT_GUARD: Duration = Duration::from_secs(10);

#[tokio::test]
async fn announces_serves_and_exits_on_stdin_eof() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replica"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--announce",
            "--id",
            "7",
            "--exit-on-stdin-eof",
        ])
        .env_remove("SERVER_NAME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the replica binary starts");

    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected announce line {line:?}"))
        .parse()
        .unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);

    let answer = common::get(addr, "/home").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.contains("Hello from Server: 7"),
        "{}",
        answer.body
    );
    assert_eq!(answer.headers["x-server-name"], "Server-7");

    drop(child.stdin.take());
    let deadline = Instant::now() + EXIT_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the replica did not exit after its stdin closed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");

    // Nothing but the announce line was ever written to stdout.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "");
}

#[cfg(unix)]
#[test]
fn sigterm_exits_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replica"))
        .args(["--listen", "127.0.0.1:0", "--announce"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "), "{line:?}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + EXIT_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the replica did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}
