//! The benchmark harness at a tiny size: `bench/run.sh --quick` starts the nginx backend,
//! HAProxy, nginx and this build of ringlb on loopback, runs 1 s of keep-alive load against two
//! targets, prints the markdown table and stops everything it started. This proves the one
//! command still works; it measures nothing (timing lives in the benchmark itself).
//!
//! Skips with a message when wrk, haproxy or nginx are missing, unless `CI` is set: CI installs
//! them (`.ci/run`), so there a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: [&str; 4] = ["wrk", "haproxy", "nginx", "python3"];
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join(tool).is_file())
            || Path::new("/usr/sbin").join(tool).is_file()
    })
}

/// The repository's root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether python3 is there for the scripts under `bench/`; without it a test skips with a
/// message, except in CI, which installs it.
fn have_python3() -> bool {
    if on_path("python3") {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have python3");
    eprintln!("skipped: no python3");
    false
}

/// Runs `python3 ARGS…` in `root` with `envs` set, and returns its stdout; fails the test if it
/// exits with an error.
fn python3(root: &Path, args: &[String], envs: &[(&str, &str)]) -> String {
    let out = Command::new("python3")
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("python3 {args:?}: {e}"));
    assert!(
        out.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn quick_benchmark_produces_a_table() {
    let mut missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if !Path::new(STREAM_MODULE).is_file() {
        missing.push("libnginx-mod-stream");
    }
    if !missing.is_empty() {
        let msg = format!(
            "bench_smoke: missing {} (apt-get install wrk haproxy nginx libnginx-mod-stream)",
            missing.join(", ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI must install them");
        }
        eprintln!("skipped: {msg}");
        return;
    }

    let root = repo_root();
    let run = tempfile::Builder::new()
        .prefix("ringlb-bench-smoke")
        .tempdir()
        .unwrap();
    // Ports of our own, away from a full benchmark's defaults (27000+, 18081+) and from another
    // concurrent run of this test, and below the ephemeral range (32768+).
    let slot = std::process::id() % 20;
    let port_base = 28_400 + slot * 200;
    let backend_base = port_base + 50;

    let out = Command::new("bash")
        .arg(root.join("bench/run.sh"))
        .arg("--quick")
        .current_dir(&root)
        .env("RUN", run.path())
        .env("PORT_BASE", port_base.to_string())
        .env("BACKEND_BASE", backend_base.to_string())
        .env("RINGLB_BIN", env!("CARGO_BIN_EXE_ringlb"))
        .env("NO_INSTALL", "1")
        .output()
        .expect("bash runs bench/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/run.sh --quick failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // The table: a header and one row per target, with a positive request rate.
    for target in ["ringlb", "hap1-tcp"] {
        let row = stdout
            .lines()
            .find(|l| {
                l.starts_with(&format!("| {target} ")) || l.starts_with(&format!("| **{target}** "))
            })
            .unwrap_or_else(|| panic!("no table row for {target}:\n{stdout}\n{stderr}"));
        let rate: f64 = row
            .split('|')
            .nth(2)
            .unwrap()
            .trim()
            .replace(',', "")
            .parse()
            .unwrap();
        assert!(rate > 0.0, "{target} served nothing: {row}");
    }
    assert!(stdout.contains("| target | req/s (median) |"), "{stdout}");

    // Everything it started is gone: no pid file is left in the run directory.
    let leftovers: Vec<_> = std::fs::read_dir(run.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "pid files left: {leftovers:?}");
}

/// `bench/floor.py` over the eighteen full runs kept in `docs/results` gives the tables committed
/// beside them, which `docs/benchmarks.md` ("What each target leaves the proxy") counts from:
/// each `sh` block of `docs/results/floor/README.md` is one command, `>FILE` at its end.
#[test]
fn floor_table_matches_the_committed_one() {
    if !have_python3() {
        return;
    }
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("docs/results/floor/README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2, "{readme}");
    for block in blocks {
        let mut args: Vec<String> = block
            .replace("\\\n", " ")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let file = args
            .pop()
            .and_then(|a| a.strip_prefix('>').map(str::to_owned))
            .unwrap_or_else(|| panic!("no >FILE at the end of {block}"));
        assert_eq!(
            args.first().map(String::as_str),
            Some("bench/floor.py"),
            "{block}"
        );
        let got = python3(&root, &args, &[]);
        assert_eq!(got.lines().count(), 2 + 18 * 4, "{got}");
        let committed = std::fs::read_to_string(root.join(&file)).unwrap();
        assert_eq!(got, committed, "{file} is not what its command gives");
    }
}

/// `bench/pairs.py` leaves out a round in which either side's kept run was still disturbed, and
/// `ALL=1` keeps every round: on the committed six-round matrix of 2026-12-01 23:00, two ka rounds
/// of HAProxy's splice-auto with two threads lost over 1 s to steal and ringlb's did not, and
/// both files committed beside it are what the script gives.
#[test]
fn pairs_leave_out_disturbed_rounds() {
    if !have_python3() {
        return;
    }
    let root = repo_root();
    let dir = root.join("docs/results/confirm-2026-12-01-2300-intel-v857");
    let tsv = dir.join("confirm.tsv").to_string_lossy().into_owned();
    let pairs = |all: bool, peer: &str| {
        let args = ["bench/pairs.py", tsv.as_str(), peer, "ringlb"].map(str::to_owned);
        python3(&root, &args, &[("ALL", if all { "1" } else { "0" })])
    };
    let clean = pairs(false, "hapD-tcpsplice");
    assert!(
        clean.contains(
            "ka ringlb ÷ hapD-tcpsplice: 4 rounds (2 left out: disturbed), rate median 1.020"
        ),
        "{clean}"
    );
    let all = pairs(true, "hapD-tcpsplice");
    assert!(
        all.contains("ka ringlb ÷ hapD-tcpsplice: 6 rounds, rate median 1.285"),
        "{all}"
    );
    let peers = [
        "ngxD-stream",
        "hap1-tcp",
        "hap1-tcpforce",
        "hapD-tcpsplice",
        "hapD-tcpforce",
        "hap1-http",
    ];
    for (all, file) in [(false, "pairs.txt"), (true, "pairs-all-rounds.txt")] {
        let got: String = peers.iter().map(|p| pairs(all, p)).collect();
        let committed = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(got, committed, "{file} is not what bench/pairs.py gives");
    }
}
