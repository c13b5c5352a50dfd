//! A small version of every experiment against real ringlb processes: 500 requests, N up to 4,
//! a short kill and hang. Checks that the reports and charts are written and that the counts
//! add up (per-replica answers + failures + not sent = requests).
//!
//! It needs the `ringlb` binary in `target/debug`. `cargo test --workspace` builds it (the
//! proxy crate is a workspace member); with `cargo test -p loadtest` alone the test builds it
//! first with `cargo build -p ringlb-proxy`. Every ringlb started here is stopped by its guard,
//! also when an assertion fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadtest::experiments::fault::Timing;
use loadtest::experiments::{a1, a2, a3, a4, comparison, Ctx, Killer};
use loadtest::progress;
use loadtest::report::Out;
use loadtest::ringlb::{Launch, Ringlb, Runtime};
use serde_json::Value;

const REQUESTS: usize = 500;

/// `target/debug/ringlb`, built if it is missing.
fn ringlb_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("ringlb");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "ringlb-proxy"])
            .current_dir(&root)
            .status()
            .expect("run cargo build -p ringlb-proxy");
        assert!(st.success(), "cargo build -p ringlb-proxy failed");
    }
    bin
}

/// A fresh output directory under the system temp dir.
fn out_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("loadtest-exp-{}-{nanos}", std::process::id()))
}

/// Asserts that a run's counts add up.
fn adds_up(run: &Value) {
    let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}"));
    let per: u64 = run["per_replica"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    let errors: u64 = run["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per, n("ok"), "{run}");
    assert_eq!(errors, n("failed"), "{run}");
    assert_eq!(
        n("ok") + n("failed") + n("not_sent"),
        n("requests"),
        "{run}"
    );
}

fn svg_with_labels(path: &Path, label: &str) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.starts_with("<svg"), "{}", path.display());
    assert!(svg.contains("<text"), "{} has no text", path.display());
    assert!(svg.contains(label), "{} lacks {label:?}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_experiment_writes_its_report_and_counts_add_up() {
    let binary = ringlb_binary();
    let dir = out_dir();
    let launch = |args: &[&str], name: &str| Launch {
        binary: binary.clone(),
        replicas: 3,
        runtime: Runtime::Process,
        args: args.iter().map(|s| s.to_string()).collect(),
        log: dir.join(format!("{name}.log")),
    };
    let out = Out::new(&dir).unwrap();
    // A hung replica is replaced after --respawn-after; 1 s keeps the hang run short.
    let rl = Ringlb::start(&launch(&["--respawn-after", "1s"], "ringlb"))
        .await
        .expect("start ringlb");
    let ctx = Ctx {
        target: rl.data,
        control: rl.control(),
        out,
        requests: REQUESTS,
        concurrency: 16,
        seed: 7,
        progress: progress::Mode::Quiet,
        killer: Killer::Process,
        runtime: "process".into(),
        prefix: String::new(),
        rate: None,
        fault_rate: 500.0,
    };

    let r1 = a1::measure(&ctx).await.unwrap();
    a1::write(&ctx, &r1).unwrap();
    adds_up(&r1.run);
    assert_eq!(r1.served.len(), 3);

    let r2 = a2::measure(&ctx, &[2, 3, 4]).await.unwrap();
    a2::write(&ctx, &r2).unwrap();
    assert_eq!(
        r2.iter().map(|s| s.served.len()).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    r2.iter().for_each(|s| adds_up(&s.run));
    assert_eq!(
        ctx.control.replicas().await.unwrap().len(),
        3,
        "A-2 restores N"
    );

    let timing = |secs: u64| Timing {
        duration: Duration::from_secs(secs),
        inject_at: Duration::from_secs(1),
        poll: Duration::from_millis(5),
        timeout: Duration::from_secs(1),
    };
    let s3 = a3::Settings {
        kill: timing(3),
        kills: 1,
        hang: Some(timing(5)),
        bucket_ms: 50.0,
    };
    let r3 = a3::measure(&ctx, &s3).await.unwrap();
    a3::write(&ctx, &r3, &s3).unwrap();
    let failing: Vec<_> = r3.checks.iter().filter(|c| !c.pass).collect();
    assert!(failing.is_empty(), "failing checks: {failing:#?}");
    adds_up(&r3.kill.run);
    assert!(
        r3.kill.replaced_ms.is_some(),
        "the killed replica was replaced"
    );
    assert!(r3.kill.first_success_ms.is_some(), "its id answered again");
    let hang = r3.hang.as_ref().unwrap();
    adds_up(&hang.run);
    assert!(hang.detected_ms.is_some(), "the hung replica was detected");
    drop(rl);

    let variants: Vec<_> = a4::variants()
        .into_iter()
        .filter(|v| v.key == "assignment" || v.key == "maglev")
        .collect();
    let s4 = a4::Settings {
        ringlb: binary.clone(),
        extra_args: vec![],
        runtime: Runtime::Process,
        variants,
        ns: vec![2, 3, 4],
        log_dir: dir.clone(),
    };
    let r4 = a4::measure(&ctx, &s4).await.unwrap();
    comparison::write(&ctx, &r4).unwrap();
    for r in &r4 {
        adds_up(&r.a1.run);
        r.a2.iter().for_each(|s| adds_up(&s.run));
        assert!(r.add.compared > 0 && r.rm.compared > 0);
    }
    // The assignment's map sends most IDs to server 1 (84 % of all 900000).
    let assignment = &r4[0].a1.served;
    assert!(
        assignment[0].id == 1 && assignment[0].requests * 10 > REQUESTS * 7,
        "{assignment:?}"
    );

    for (file, label) in [
        ("a1.svg", "Server-1"),
        ("a2.svg", "replicas N"),
        ("a3.svg", "succeeded"),
        ("a3-zoom.svg", "first success"),
        ("a3-hang.svg", "hung"),
        ("a4-a1.svg", "maglev"),
        ("a4-a2.svg", "assignment"),
        ("a4-moved.svg", "minimum"),
    ] {
        svg_with_labels(&dir.join(file), label);
    }
    for md in ["a1.md", "a2.md", "a3.md", "a4.md"] {
        let text = std::fs::read_to_string(dir.join(md)).unwrap();
        assert!(
            text.contains("| ---") || text.contains("|---"),
            "{md} has a table"
        );
    }
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    for key in ["a1", "a2", "a3", "a4"] {
        assert!(
            results[key]["result"].is_object() || results[key]["result"].is_array(),
            "{key}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
