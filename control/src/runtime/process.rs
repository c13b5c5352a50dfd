//! `--runtime process` (the default): each replica is a child process on a loopback port.
//!
//! The child is started as `<program> <args…> --listen 127.0.0.1:0 --announce
//! --exit-on-stdin-eof --id <i> --name <n>` (by default `<program>` is ringlb itself and `<args>`
//! is `replica`, so one build is enough). It binds a free port and prints `listening on
//! <addr>` as its only line on stdout; that line is how ringlb learns the port, with no race for
//! a port number. Its stdin is a pipe that ringlb holds open: when ringlb exits, even by SIGKILL,
//! the pipe closes and the replica exits too, so replicas never outlive their balancer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Found, ReplicaSpec, Runtime, RuntimeError};

/// How replicas are started.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The program: ringlb itself by default.
    pub program: PathBuf,
    /// Arguments before the replica flags (`["replica"]` for ringlb itself).
    pub args: Vec<String>,
    /// How long a child may take to announce its address.
    pub start_timeout: Duration,
}

impl ProcessConfig {
    /// Re-executes the running binary as `<exe> replica …`.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(ProcessConfig {
            program: std::env::current_exe()?,
            args: vec!["replica".into()],
            start_timeout: Duration::from_secs(5),
        })
    }
}

struct Child {
    pid: Option<u32>,
    stop: oneshot::Sender<()>,
    waiter: JoinHandle<()>,
}

/// The process runtime.
pub struct ProcessRuntime {
    cfg: ProcessConfig,
    children: Mutex<HashMap<String, Child>>,
    exits_tx: mpsc::UnboundedSender<String>,
    exits_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl ProcessRuntime {
    /// A runtime that starts replicas as `cfg` says.
    pub fn new(cfg: ProcessConfig) -> Self {
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        ProcessRuntime {
            cfg,
            children: Mutex::new(HashMap::new()),
            exits_tx,
            exits_rx: Mutex::new(Some(exits_rx)),
        }
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Child>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<SocketAddr, RuntimeError> {
        self.stop(&spec.name).await?;
        let mut cmd = Command::new(&self.cfg.program);
        cmd.args(&self.cfg.args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--announce",
                "--exit-on-stdin-eof",
            ])
            .arg("--id")
            .arg(spec.id.to_string())
            .arg("--name")
            .arg(&spec.name)
            .env_remove("PORT")
            .env_remove("SERVER_ID")
            .env_remove("SERVER_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C on the terminal reaches ringlb, which drains and
            // then stops the replicas, instead of killing them under open connections.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            RuntimeError::Unavailable(format!("cannot run {}: {e}", self.cfg.program.display()))
        })?;
        let stdin: ChildStdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let announced =
            tokio::time::timeout(self.cfg.start_timeout, stdout.read_line(&mut line)).await;
        let addr = match announced {
            Ok(Ok(_)) => line
                .trim()
                .strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok()),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            return Err(RuntimeError::Failed(format!(
                "replica {} did not announce its address (got {:?}, exit {:?})",
                spec.name,
                line.trim(),
                status
            )));
        };
        let pid = child.id();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let exits = self.exits_tx.clone();
        let name = spec.name.clone();
        let waiter = tokio::spawn(async move {
            // Nothing more is expected on stdout; drain it so a stray write never blocks.
            let drain = tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = stdout.read_to_end(&mut sink).await;
            });
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(replica = %name, status = ?status.ok(), "replica process exited");
                    let _ = exits.send(name);
                }
                _ = stop_rx => {
                    // Closing stdin asks the replica to finish; kill it if it lingers.
                    drop(stdin);
                    if tokio::time::timeout(Duration::from_millis(500), child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                }
            }
            drain.abort();
        });
        self.children().insert(
            spec.name.clone(),
            Child {
                pid,
                stop: stop_tx,
                waiter,
            },
        );
        Ok(addr)
    }

    async fn stop(&self, name: &str) -> Result<(), RuntimeError> {
        let child = self.children().remove(name);
        if let Some(child) = child {
            let _ = child.stop.send(());
            let _ = child.waiter.await;
        }
        Ok(())
    }

    async fn existing(&self) -> Result<Vec<Found>, RuntimeError> {
        // Children never outlive the ringlb that started them: nothing to adopt.
        Ok(Vec::new())
    }

    fn pid(&self, name: &str) -> Option<u32> {
        self.children().get(name).and_then(|c| c.pid)
    }

    fn exits(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.exits_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    async fn shutdown(&self, _keep: bool) {
        let names: Vec<String> = self.children().keys().cloned().collect();
        for name in names {
            let _ = self.stop(&name).await;
        }
    }
}
