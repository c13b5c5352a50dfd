//! `--runtime docker`: replicas as containers, driven through the `docker` CLI.
//!
//! The CLI rather than the engine's HTTP API: it is what operators already run to look at the same
//! containers, it follows `DOCKER_HOST` and contexts for free, and the static binary fits in the
//! `ringlb` image for the compose deployment (socket mounted).
//!
//! Every container carries the label `ringlb.instance=<instance>` (and `ringlb.id=<id>`), so a
//! restarted ringlb adopts its own running replicas and clears away its dead ones instead of
//! leaking or duplicating them, and never touches containers of another instance.
//!
//! Argument safety: every call is an argument list (no shell ever sees a name). Names and other
//! values go in `--flag=<value>` form, where they cannot become options, and positional names and
//! the image follow a `--`, so even a name such as `--privileged` or `-v/:/host` could only ever be
//! a name. The manager validates names before they get here; [`checked`] refuses a leading `-`
//! anyway.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Found, ReplicaSpec, Runtime, RuntimeError};

mod cli;
mod events;

use cli::{gone, label, CallError, Cli, Inspected, PsLine, INSPECT_FORMAT};

/// Label that ties a container to one ringlb instance.
const INSTANCE_LABEL: &str = "ringlb.instance";
/// Label that carries the replica's server id, so adoption restores it.
const ID_LABEL: &str = "ringlb.id";

/// How to reach Docker and what to run.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The `docker` CLI (a bare name is looked up in `PATH`).
    pub docker: PathBuf,
    /// Replica image, built locally by `make images`.
    pub image: String,
    /// Network the replicas join; created if missing. ringlb must reach it (same network under
    /// compose; the bridge is routable from the host otherwise).
    pub network: String,
    /// Value of the `ringlb.instance` label: which containers this ringlb owns.
    pub instance: String,
    /// Port the replicas listen on inside their containers.
    pub port: u16,
    /// Longest any one docker call may take.
    pub call_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            docker: PathBuf::from("docker"),
            image: "ringlb-replica:latest".into(),
            network: "net1".into(),
            instance: "ringlb".into(),
            port: 5000,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// Replicas as Docker containers.
pub struct DockerRuntime {
    cfg: DockerConfig,
    cli: Cli,
    /// Container id of each replica started or adopted, by name. A `die` event is passed on only
    /// while its id is still the current one, so removing a replica (or the old container of a
    /// respawn) never reads as a crash.
    current: events::Current,
    /// Whether [`Runtime::exits`] was already taken.
    exits_taken: Mutex<bool>,
    /// Stops the `docker events` watcher at shutdown.
    stop_events: CancellationToken,
}

impl DockerRuntime {
    /// Checks the CLI and engine (`docker version`), the image (`docker image inspect`), and
    /// creates the network if missing, so a misconfiguration stops ringlb at start with a message
    /// saying what to do instead of failing at the first replica.
    pub async fn connect(cfg: DockerConfig) -> Result<DockerRuntime, RuntimeError> {
        validate(&cfg)?;
        let cli = Cli {
            path: cfg.docker.clone(),
            timeout: cfg.call_timeout,
            image: cfg.image.clone(),
        };
        let rt = DockerRuntime {
            cfg,
            cli,
            current: Default::default(),
            exits_taken: Mutex::new(false),
            stop_events: CancellationToken::new(),
        };
        let version = rt
            .cli
            .call(&["version", "--format={{.Server.Version}}"])
            .await
            .map_err(|e| rt.cli.meaning("version", e))?;
        let image = ["image", "inspect", "--format={{.Id}}", "--", &rt.cfg.image];
        rt.cli.call(&image).await.map_err(|e| match e {
            // `image inspect` says "No such image", which `meaning` maps to ImageMissing too;
            // spelled out here because this check is what the message is for.
            CallError::Exit(s) if s.to_lowercase().contains("no such image") => {
                RuntimeError::ImageMissing {
                    image: rt.cfg.image.clone(),
                }
            }
            e => rt.cli.meaning("image inspect", e),
        })?;
        rt.ensure_network().await?;
        tracing::info!(engine = version.trim(), image = %rt.cfg.image, network = %rt.cfg.network,
            instance = %rt.cfg.instance, "docker runtime ready");
        Ok(rt)
    }

    /// The `docker run` arguments for one replica (after the CLI path).
    fn run_args(&self, spec: &ReplicaSpec) -> Vec<String> {
        let (c, n) = (&self.cfg, &spec.name);
        vec![
            "run".into(),
            "-d".into(),
            // Never reach for a registry: the image is built locally (`make images`).
            "--pull=never".into(),
            format!("--name={n}"),
            format!("--network={}", c.network),
            format!("--network-alias={n}"),
            format!("--env=SERVER_ID={}", spec.id),
            format!("--env=SERVER_NAME={n}"),
            format!("--env=PORT={}", c.port),
            format!("--label={INSTANCE_LABEL}={}", c.instance),
            format!("--label={ID_LABEL}={}", spec.id),
            "--".into(),
            c.image.clone(),
        ]
    }

    /// `--filter=label=ringlb.instance=<instance>`: this instance's containers and no others.
    fn own_filter(&self) -> String {
        format!("--filter=label={INSTANCE_LABEL}={}", self.cfg.instance)
    }

    /// Creates the network unless it exists (a concurrent creation counts as existing).
    async fn ensure_network(&self) -> Result<(), RuntimeError> {
        let net = &self.cfg.network;
        let inspect = ["network", "inspect", "--format={{.Id}}", "--", net];
        match self.cli.call(&inspect).await {
            Ok(_) => return Ok(()),
            Err(CallError::Exit(s)) if s.contains("not found") || s.contains("No such") => {}
            Err(e) => return Err(self.cli.meaning("network inspect", e)),
        }
        let label = format!("--label={INSTANCE_LABEL}={}", self.cfg.instance);
        match self
            .cli
            .call(&["network", "create", &label, "--", net])
            .await
        {
            Ok(_) => {
                tracing::info!(network = %net, "created docker network");
                Ok(())
            }
            Err(CallError::Exit(s)) if s.contains("already exists") => Ok(()),
            Err(e) => Err(self.cli.meaning("network create", e)),
        }
    }

    /// Inspects one container; `None` if it does not exist.
    async fn inspect(&self, name: &str) -> Result<Option<Inspected>, RuntimeError> {
        let fmt = format!("--format={INSPECT_FORMAT}");
        let args = ["inspect", "--type=container", &fmt, "--", name];
        match self.cli.call(&args).await {
            Ok(out) => serde_json::from_str(out.trim()).map(Some).map_err(|e| {
                RuntimeError::Failed(format!("cannot read `docker inspect {name}`: {e}"))
            }),
            Err(e) if gone(e.stderr()) => Ok(None),
            Err(e) => Err(self.cli.meaning("inspect", e)),
        }
    }

    /// The replica's address on our network, if it has one.
    fn address(&self, found: &Inspected) -> Option<SocketAddr> {
        let ep = found.networks.as_ref()?.get(&self.cfg.network)?;
        let ip: IpAddr = ep.ip.parse().or_else(|_| ep.ipv6.parse()).ok()?;
        Some(SocketAddr::new(ip, self.cfg.port))
    }

    /// `docker rm -f` of the given containers; ones already gone are fine. One call for all: the
    /// CLI removes several containers concurrently.
    async fn remove(&self, names: &[String]) -> Result<(), RuntimeError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rm".to_owned(), "-f".to_owned(), "--".to_owned()];
        args.extend(names.iter().cloned());
        match self.cli.call(&args).await {
            Ok(_) => Ok(()),
            Err(CallError::Exit(s)) if !s.is_empty() && s.lines().all(gone) => Ok(()),
            Err(e) => Err(self.cli.meaning("rm", e)),
        }
    }

    /// Clears a container left with `name` (from a crash, or a respawn racing a removal) if it is
    /// ours, whatever its state: the manager, which knows every live replica, asked for a new one.
    /// A container of another instance or from outside ringlb is never touched.
    async fn clear_name(&self, name: &str) -> Result<(), RuntimeError> {
        let Some(found) = self.inspect(name).await? else {
            return Ok(());
        };
        let owner = found.labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL));
        if owner != Some(&self.cfg.instance) {
            return Err(RuntimeError::Failed(format!(
                "a container named {name} already exists and is not one of ringlb instance {}: \
                 remove it (`docker rm -f {name}`) or choose another name",
                self.cfg.instance
            )));
        }
        tracing::info!(replica = name, "removing a stale container of that name");
        self.remove(&[name.to_owned()]).await
    }

    /// Runs the container, clearing a stale one of the same name or recreating a network removed
    /// behind ringlb's back once. Returns the container id.
    async fn run(&self, spec: &ReplicaSpec) -> Result<String, RuntimeError> {
        let args = self.run_args(spec);
        let mut retried = false;
        loop {
            let err = match self.cli.call(&args).await {
                Ok(out) => return Ok(out.trim().to_owned()),
                Err(e) => e,
            };
            let conflict = err.stderr().contains("is already in use");
            if !conflict {
                // `run` may have created the container before failing to start it.
                let _ = self.remove(std::slice::from_ref(&spec.name)).await;
            }
            let no_network = err.stderr().contains("network") && err.stderr().contains("not found");
            match (retried, conflict, no_network) {
                (false, true, _) => self.clear_name(&spec.name).await?,
                (false, _, true) => self.ensure_network().await?,
                _ => return Err(self.cli.meaning("run", err)),
            }
            retried = true;
        }
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<SocketAddr, RuntimeError> {
        let name = checked(&spec.name)?;
        // Any earlier container of this name is on its way out: its death is no news.
        self.current.lock().expect("current lock").remove(name);
        let id = self.run(spec).await?;
        self.current
            .lock()
            .expect("current lock")
            .insert(name.into(), id);
        let found = self.inspect(name).await?;
        match found.as_ref().and_then(|f| self.address(f)) {
            Some(addr) => {
                tracing::info!(replica = name, id = spec.id, %addr, "started container");
                Ok(addr)
            }
            None => Err(RuntimeError::Failed(format!(
                "container {name} has no address on network {} (did it exit at once? see \
                 `docker logs {name}`)",
                self.cfg.network
            ))),
        }
    }

    async fn stop(&self, name: &str) -> Result<(), RuntimeError> {
        let name = checked(name)?;
        self.current.lock().expect("current lock").remove(name);
        self.remove(&[name.to_owned()]).await?;
        tracing::info!(replica = name, "removed container");
        Ok(())
    }

    /// Adopts running (and paused: the health checker decides about those) containers of this
    /// instance; removes exited, dead and never-started ones, and any without a usable id label or
    /// address on our network, so the manager starts them afresh.
    async fn existing(&self) -> Result<Vec<Found>, RuntimeError> {
        let filter = self.own_filter();
        let ps = ["ps", "-a", "--no-trunc", &filter, "--format={{json .}}"];
        let out = self
            .cli
            .call(&ps)
            .await
            .map_err(|e| self.cli.meaning("ps", e))?;
        let (mut found, mut dead) = (Vec::new(), Vec::new());
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let ps: PsLine = serde_json::from_str(line).map_err(|e| {
                RuntimeError::Failed(format!("cannot read `docker ps` output: {e}"))
            })?;
            let name = ps.names.split(',').next().unwrap_or_default().to_owned();
            let id = label(&ps.labels, ID_LABEL).and_then(|v| v.parse::<u32>().ok());
            let live = matches!(ps.state.as_str(), "running" | "paused" | "restarting");
            let inspected = match (live, id) {
                (true, Some(_)) => self.inspect(&name).await?,
                _ => None,
            };
            let usable = inspected.and_then(|i| Some((self.address(&i)?, i.id)));
            match (id, usable) {
                (Some(id), Some((addr, container))) => {
                    self.current
                        .lock()
                        .expect("current lock")
                        .insert(name.clone(), container);
                    tracing::info!(replica = %name, id, %addr, "adopted running container");
                    found.push(Found { name, id, addr });
                }
                _ if ps.state == "removing" => {}
                _ => {
                    tracing::info!(replica = %name, state = %ps.state, "removing leftover container");
                    dead.push(name);
                }
            }
        }
        self.remove(&dead).await?;
        // `docker ps` lists newest first; the manager gets them in server-id order.
        found.sort_by(|a, b| (a.id, &a.name).cmp(&(b.id, &b.name)));
        Ok(found)
    }

    fn exits(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let mut taken = self.exits_taken.lock().expect("exits lock");
        if std::mem::replace(&mut *taken, true) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let watch = events::Watch {
            docker: self.cfg.docker.clone(),
            filter: self.own_filter(),
            current: self.current.clone(),
            tx,
            stop: self.stop_events.clone(),
        };
        handle.spawn(watch.run());
        Some(rx)
    }

    async fn shutdown(&self, keep: bool) {
        self.stop_events.cancel();
        if keep {
            return;
        }
        let filter = self.own_filter();
        let ids: Vec<String> = match self
            .cli
            .call(&["ps", "-a", "-q", "--no-trunc", &filter])
            .await
        {
            Ok(out) => out.split_whitespace().map(str::to_owned).collect(),
            Err(e) => {
                let e = self.cli.meaning("ps", e);
                tracing::warn!(error = %e, "cannot list replica containers to remove");
                return;
            }
        };
        match self.remove(&ids).await {
            Ok(()) => tracing::info!(removed = ids.len(), "removed replica containers"),
            Err(e) => tracing::warn!(error = %e, "could not remove every replica container"),
        }
    }
}

/// Refuses configuration values that could be read as options or would break label parsing.
fn validate(cfg: &DockerConfig) -> Result<(), RuntimeError> {
    for (what, v) in [("image", &cfg.image), ("network", &cfg.network)] {
        if v.is_empty() || v.starts_with('-') {
            return Err(RuntimeError::Failed(format!(
                "invalid docker {what} {v:?}: it must not be empty or start with '-'"
            )));
        }
    }
    let inst = &cfg.instance;
    let first_ok = inst.starts_with(|c: char| c.is_ascii_alphanumeric());
    let rest_ok = inst
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !(first_ok && rest_ok && inst.len() <= 63) {
        return Err(RuntimeError::Failed(format!(
            "invalid instance label {inst:?}: use 1-63 letters, digits, '_', '.' or '-', starting \
             with a letter or digit"
        )));
    }
    Ok(())
}

/// A replica name, refused if it could pass for an option (defence in depth; see the module doc).
fn checked(name: &str) -> Result<&str, RuntimeError> {
    if name.is_empty() || name.starts_with('-') {
        return Err(RuntimeError::Failed(format!(
            "invalid replica name {name:?}"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_look_like_options_are_refused() {
        let cfg = |instance: &str, image: &str| DockerConfig {
            instance: instance.into(),
            image: image.into(),
            ..DockerConfig::default()
        };
        assert!(validate(&DockerConfig::default()).is_ok());
        assert!(validate(&cfg("a,b", "img")).is_err());
        assert!(validate(&cfg("-x", "img")).is_err());
        assert!(validate(&cfg("", "img")).is_err());
        assert!(validate(&cfg("ok", "--privileged")).is_err());
        assert!(checked("--privileged").is_err());
        assert!(checked("-v/:/host").is_err());
        assert!(checked("S5").is_ok());
    }

    #[test]
    fn run_passes_every_value_after_an_equals_sign() {
        let rt = DockerRuntime {
            cli: Cli {
                path: "docker".into(),
                timeout: Duration::from_secs(1),
                image: "img".into(),
            },
            cfg: DockerConfig::default(),
            current: Default::default(),
            exits_taken: Mutex::new(false),
            stop_events: CancellationToken::new(),
        };
        let args = rt.run_args(&ReplicaSpec {
            name: "S5".into(),
            id: 5,
        });
        let dashdash = args.iter().position(|a| a == "--").expect("--");
        assert_eq!(args[dashdash + 1..], ["ringlb-replica:latest"]);
        for a in &args[2..dashdash] {
            assert!(a.starts_with("--") && a.contains('='), "{a}");
        }
    }
}
