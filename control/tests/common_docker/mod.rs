//! Helpers for tests against the real Docker engine: a skip when none runs, the replica image
//! (built when missing), and a guard that removes everything a test created, pass or fail.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The image the docker runtime starts.
pub const IMAGE: &str = "ringlb-replica:latest";

/// Whether `docker version` reaches an engine. Tests that need one return early (a skip, with a
/// message saying why) when it does not.
pub fn engine_or_skip(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format={{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: `docker version` cannot reach a Docker engine");
    }
    ok
}

/// Makes sure the replica image exists, building it with `compose/build-images.sh replica` once
/// per test binary when it does not (CI builds images first, so this is for a fresh checkout).
pub fn ensure_replica_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if docker_ok(&["image", "inspect", "--format={{.Id}}", IMAGE]) {
            return;
        }
        let script = repo_root().join("compose/build-images.sh");
        eprintln!("building {IMAGE} with {} replica", script.display());
        let status = Command::new("bash").arg(&script).arg("replica").status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "image {IMAGE} is missing and `{} replica` failed: run `make images`",
            script.display()
        );
    });
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs docker and tells whether it succeeded.
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs docker and returns its stdout (empty on failure).
pub fn docker_out(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Names of all containers (any state) with `ringlb.instance=<instance>`, sorted.
pub fn containers_of(instance: &str) -> Vec<String> {
    let filter = format!("--filter=label=ringlb.instance={instance}");
    let out = docker_out(&["ps", "-a", &filter, "--format={{.Names}}"]);
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// A unique instance label and network for one test; dropping it removes every container with
/// one of its labels and the network, whether the test passed or panicked.
pub struct Scratch {
    /// Unique `ringlb.instance` label value.
    pub instance: String,
    /// Unique network name.
    pub network: String,
    /// More instance labels the test used, cleaned up too.
    pub also: Vec<String>,
}

impl Scratch {
    /// Unique names from the test's name, the pid and a random suffix.
    pub fn new(test: &str) -> Scratch {
        let tag = format!(
            "{test}-{}-{:06x}",
            std::process::id(),
            rand::random::<u32>() >> 8
        );
        Scratch {
            instance: format!("t-{tag}"),
            network: format!("ringlb-t-{tag}"),
            also: vec![],
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for instance in std::iter::once(&self.instance).chain(&self.also) {
            let filter = format!("--filter=label=ringlb.instance={instance}");
            let ids = docker_out(&["ps", "-aq", &filter]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "--"];
                args.extend(ids);
                docker_ok(&args);
            }
        }
        docker_ok(&["network", "rm", &self.network]);
    }
}
