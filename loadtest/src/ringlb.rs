//! Starting and stopping a ringlb of our own, for experiments whose parameters are start-up flags
//! (A-4's hash family) and for the tests.
//!
//! The guard owns the child: dropping it (normal end, `?` on an error, the future dropped by
//! Ctrl-C) sends SIGTERM so ringlb removes its replicas, waits a bounded time, then SIGKILLs.
//! Process-runtime replicas also exit on their own when ringlb's end of their stdin closes; for
//! the Docker runtime, containers carrying this run's instance label are removed as a last resort.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::control::Control;

/// How long a stopping ringlb may take before it is killed: its drain (set to 1 s below) plus
/// removing Docker containers.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Where replicas run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// Child processes (`--runtime process`).
    Process,
    /// Containers of the local engine (`--runtime docker`), on this network.
    Docker { network: String, image: String },
}

/// How to start a ringlb.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `ringlb` binary.
    pub binary: PathBuf,
    /// Replicas at start.
    pub replicas: usize,
    /// Where they run.
    pub runtime: Runtime,
    /// More flags (`--hash`, `--assignment-h`, ...).
    pub args: Vec<String>,
    /// Where ringlb's log goes (stdout and stderr).
    pub log: PathBuf,
}

/// A running ringlb; stopped on drop.
pub struct Ringlb {
    child: Option<Child>,
    /// Its data port.
    pub data: SocketAddr,
    /// Its control port.
    pub control: SocketAddr,
    /// The Docker instance label, when containers are used.
    instance: Option<String>,
    /// Its log file.
    pub log: PathBuf,
}

/// A free loopback port: bind port 0, read the port, release it. Another process could take it
/// in between; ringlb then fails to start and says so in its log.
pub fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?)
}

/// The `ringlb` binary next to the running executable (`target/<profile>/ringlb` for
/// `target/<profile>/loadtest`).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ringlb")))
        .unwrap_or_else(|| PathBuf::from("ringlb"))
}

impl Ringlb {
    /// Starts ringlb on free ports and waits until all its replicas are up.
    pub async fn start(launch: &Launch) -> Result<Ringlb> {
        if !launch.binary.exists() {
            bail!(
                "no ringlb binary at {} (build it with `cargo build -p ringlb-proxy`, or pass --ringlb)",
                launch.binary.display()
            );
        }
        let (data, control) = (free_port()?, free_port()?);
        let mut cmd = Command::new(&launch.binary);
        cmd.arg("--listen")
            .arg(data.to_string())
            .arg("--control")
            .arg(control.to_string())
            .arg("--replicas")
            .arg(launch.replicas.to_string())
            .args(["--log", "warn", "--drain-timeout", "1s"]);
        let mut instance = None;
        match &launch.runtime {
            Runtime::Process => {
                cmd.args(["--runtime", "process"]);
            }
            Runtime::Docker { network, image } => {
                let label = format!("loadtest-{}", control.port());
                cmd.args([
                    "--runtime",
                    "docker",
                    "--network",
                    network,
                    "--image",
                    image,
                ])
                .args(["--instance", &label]);
                instance = Some(label);
            }
        }
        cmd.args(&launch.args);
        let log = File::create(&launch.log)
            .with_context(|| format!("cannot create {}", launch.log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", launch.binary.display()))?;
        let mut me = Ringlb {
            child: Some(child),
            data,
            control,
            instance,
            log: launch.log.clone(),
        };
        let ready = Control::new(control)
            .wait_all_up(launch.replicas, Duration::from_secs(90))
            .await;
        if let Err(e) = ready {
            let exited = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            let tail = tail(&launch.log);
            me.stop();
            bail!("{e} (ringlb exit status: {exited:?}); log tail:\n{tail}");
        }
        Ok(me)
    }

    /// The control-port client.
    pub fn control(&self) -> Control {
        Control::new(self.control)
    }

    /// ringlb's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops ringlb (SIGTERM, bounded wait, SIGKILL) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = signal(child.id(), "TERM");
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(label) = &self.instance {
            remove_containers(label);
        }
    }
}

impl Drop for Ringlb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal with the `kill` utility (the loadtest has no libc binding of its own).
pub fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .context("cannot run kill")?;
    if !st.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Removes containers left with this run's instance label (only if ringlb could not).
fn remove_containers(label: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=ringlb.instance={label}"),
        ])
        .output();
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
