//! One call of the docker CLI: an argument list under a time limit, and what its stderr and its
//! JSON output mean.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::runtime::RuntimeError;

/// The docker CLI as the runtime calls it.
#[derive(Debug)]
pub(super) struct Cli {
    /// Path or bare name of the CLI.
    pub(super) path: PathBuf,
    /// Longest any one call may take.
    pub(super) timeout: Duration,
    /// The replica image, named in [`RuntimeError::ImageMissing`].
    pub(super) image: String,
}

/// How one docker call went wrong, before it is given meaning.
#[derive(Debug)]
pub(super) enum CallError {
    /// The CLI could not be started.
    Spawn(std::io::Error),
    /// The call outlived the limit (the child is killed on drop).
    Timeout,
    /// The CLI exited non-zero; its stderr, tidied.
    Exit(String),
}

impl CallError {
    /// The CLI's complaint, or "" when it never got to say anything.
    pub(super) fn stderr(&self) -> &str {
        match self {
            CallError::Exit(s) => s,
            _ => "",
        }
    }
}

impl Cli {
    /// Runs one call and returns its stdout. No shell is involved: `args` reach the CLI as they
    /// are.
    pub(super) async fn call<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, CallError> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => return Err(CallError::Timeout),
            Ok(Err(e)) => return Err(CallError::Spawn(e)),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(CallError::Exit(tidy(&String::from_utf8_lossy(&out.stderr))))
    }

    /// Gives a failed call (`docker <what>`) its operator-facing meaning.
    pub(super) fn meaning(&self, what: &str, e: CallError) -> RuntimeError {
        match e {
            CallError::Spawn(e) => RuntimeError::Unavailable(format!(
                "cannot run the docker CLI `{}` ({e}): is Docker installed and the Docker engine \
                 running?",
                self.path.display()
            )),
            CallError::Timeout => RuntimeError::Timeout(format!(
                "`docker {what}` (limit {:?}; is the Docker engine overloaded or stuck?)",
                self.timeout
            )),
            CallError::Exit(s) if engine_down(&s) => RuntimeError::Unavailable(format!(
                "`docker {what}`: {s}. Is the Docker engine running, and its socket reachable \
                 (mounted at /var/run/docker.sock under compose)?"
            )),
            CallError::Exit(s) if s.to_lowercase().contains("no such image") => {
                RuntimeError::ImageMissing {
                    image: self.image.clone(),
                }
            }
            CallError::Exit(s) => RuntimeError::Failed(format!("`docker {what}` failed: {s}")),
        }
    }
}

/// The `--format` of `docker inspect` that gives [`Inspected`]: id, networks and labels as one
/// JSON object, so one call answers all that adoption and start need.
pub(super) const INSPECT_FORMAT: &str = r#"{"id":{{json .Id}},"networks":{{json .NetworkSettings.Networks}},"labels":{{json .Config.Labels}}}"#;

/// What `docker inspect` tells about one container.
#[derive(Debug, Deserialize)]
pub(super) struct Inspected {
    /// Full container id.
    pub(super) id: String,
    /// Endpoint per network name (`null` when attached to none).
    pub(super) networks: Option<HashMap<String, Endpoint>>,
    /// The container's labels (`null` when it has none).
    pub(super) labels: Option<HashMap<String, String>>,
}

/// A container's endpoint on one network.
#[derive(Debug, Deserialize)]
pub(super) struct Endpoint {
    /// IPv4 address, empty when the container is not running.
    #[serde(rename = "IPAddress", default)]
    pub(super) ip: String,
    /// IPv6 address on an IPv6-enabled network.
    #[serde(rename = "GlobalIPv6Address", default)]
    pub(super) ipv6: String,
}

/// The fields of a `docker ps --format '{{json .}}'` line that adoption needs.
#[derive(Debug, Deserialize)]
pub(super) struct PsLine {
    /// Container names, comma-separated.
    #[serde(rename = "Names")]
    pub(super) names: String,
    /// `running`, `paused`, `exited`, `dead`, `created`, `restarting` or `removing`.
    #[serde(rename = "State")]
    pub(super) state: String,
    /// Labels rendered as `k=v,k=v`.
    #[serde(rename = "Labels", default)]
    pub(super) labels: String,
}

/// One label's value from `docker ps`'s `k=v,k=v` rendering. Only label values without commas
/// (ids, validated instance names) can be read back this way.
pub(super) fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Whether stderr says the container does not exist.
pub(super) fn gone(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("no such container") || s.contains("no such object")
}

/// Whether stderr says the engine cannot be reached.
fn engine_down(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    let markers = [
        "cannot connect to the docker daemon",
        "error during connect",
        "is the docker daemon running",
    ];
    markers.iter().any(|m| s.contains(m))
        || (s.contains("permission denied") && s.contains("docker"))
}

/// Stderr without the CLI's usage hints and blank lines.
fn tidy(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Run '") && !l.starts_with("See '"))
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_from_ps_output() {
        let l = "ringlb.id=12,ringlb.instance=x,ringlb.idx=3";
        assert_eq!(label(l, "ringlb.id"), Some("12"));
        assert_eq!(label(l, "ringlb.instance"), Some("x"));
        assert_eq!(label("", "ringlb.id"), None);
    }

    #[test]
    fn stderr_is_classified() {
        assert!(engine_down(
            "Cannot connect to the Docker daemon at unix:///x. Is the docker daemon running?"
        ));
        assert!(!engine_down("Error response from daemon: No such image: x"));
        assert!(gone("Error response from daemon: No such container: S5"));
        assert!(gone("Error: No such object: S5"));
        assert_eq!(
            tidy("docker: boom\n\nRun 'docker run --help' for more information\n"),
            "docker: boom"
        );
    }
}
