//! Wiring: validated settings, listeners, the runtime, the manager, the API and the data plane.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use ringlb_control::runtime::docker::{DockerConfig, DockerRuntime};
use ringlb_control::runtime::fixed::FixedRuntime;
use ringlb_control::runtime::process::{ProcessConfig, ProcessRuntime};
use ringlb_control::runtime::Runtime;
use ringlb_control::{ApiConfig, HealthConfig, Manager, ManagerConfig, RespawnConfig, RespawnName};
use ringlb_core::{metrics as m, Directory, Poly, Ring, RingConfig, Routes};
use ringlb_proxy::{
    config::{max_conns_for, FDS_PER_CONN, FD_RESERVE},
    ProxyConfig,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::{Args, LogFormat, RespawnNameArg, RuntimeKind};

/// The longest `--busy-poll`. The benchmark measured windows of 20 µs to 1 ms (docs/benchmarks.md),
/// with no clear best among them; a longer window only burns more CPU.
const MAX_BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Everything `run` needs, checked once.
pub struct Settings {
    pub check: bool,
    pub workers: Option<usize>,
    pin_workers: bool,
    listen: SocketAddr,
    control: SocketAddr,
    token: Option<String>,
    runtime: RuntimeKind,
    backends: Vec<(String, SocketAddr)>,
    docker: DockerConfig,
    keep_replicas: bool,
    manager: ManagerConfig,
    proxy: ProxyConfig,
    max_conns_given: bool,
    handover: Option<std::path::PathBuf>,
}

impl Settings {
    /// Validates the flags; every error names the flag to fix.
    pub fn from_args(a: Args) -> anyhow::Result<Settings> {
        if a.control.port() != 0 && a.control == a.listen {
            bail!("--listen and --control must differ (both are {})", a.listen);
        }
        let token = a.token.filter(|t| !t.is_empty());
        if !a.control.ip().is_loopback() && token.is_none() && !a.allow_insecure_control {
            bail!(
                "--control {} is not a loopback address: set --token (RINGLB_TOKEN) so that /add and /rm are guarded, \
                 or pass --allow-insecure-control if the port is only reachable from a trusted host",
                a.control
            );
        }
        let ring = RingConfig {
            family: a.hash,
            table_size: a.table_size,
            vnodes: a.vnodes,
            slots: a.slots,
            probe: a.probe,
            poly: Poly {
                h: crate::cli::coefficients::<3>(&a.assignment_h, "--assignment-h")?,
                phi: crate::cli::coefficients::<4>(&a.assignment_phi, "--assignment-phi")?,
            },
        };
        Ring::build(&ring, Vec::new()).map_err(|e| anyhow::anyhow!("ring settings: {e}"))?;
        let capacity = Ring::capacity(&ring)
            .unwrap_or(usize::MAX)
            .min(a.max_replicas);
        if a.runtime != RuntimeKind::Static && a.replicas > capacity {
            bail!(
                "--replicas {} is more than the ring holds ({capacity})",
                a.replicas
            );
        }
        if a.fall == 0 || a.rise == 0 {
            bail!("--fall and --rise must be at least 1");
        }
        if a.health_interval.is_zero() || a.health_timeout.is_zero() {
            bail!("--health-interval and --health-timeout must be positive");
        }
        if a.max_request_line < 16 {
            bail!("--max-request-line must be at least 16 bytes");
        }
        if a.max_conns == Some(0) || a.workers == Some(0) {
            bail!("--max-conns and --workers must be at least 1");
        }
        if a.busy_poll > MAX_BUSY_POLL {
            bail!(
                "--busy-poll {} is longer than {} (it is how long an idle worker keeps polling \
                 before it sleeps; longer only burns CPU)",
                humantime::format_duration(a.busy_poll),
                humantime::format_duration(MAX_BUSY_POLL)
            );
        }
        if let Some(path) = &a.handover {
            ringlb_proxy::handover::check_path(path)
                .map_err(|e| anyhow::anyhow!("--handover {}: {e}", path.display()))?;
        }
        // The prefix plus an id must pass the hostname rule.
        ringlb_control::names::check(&format!("{}1", a.name_prefix))
            .map_err(|e| anyhow::anyhow!("--name-prefix: {e}"))?;
        if a.name_prefix.len() > 50 {
            bail!("--name-prefix is longer than 50 characters");
        }
        let mut backends = Vec::new();
        for b in &a.backends {
            let (name, addr) = b
                .split_once('=')
                .with_context(|| format!("--backend {b:?}: expected NAME=HOST:PORT"))?;
            ringlb_control::names::check(name).map_err(|e| anyhow::anyhow!("--backend: {e}"))?;
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--backend {b:?}: {addr:?} is not an IP:PORT address"))?;
            if backends.iter().any(|(n, _)| n == name) {
                bail!("--backend: the name {name} appears twice");
            }
            backends.push((name.to_string(), addr));
        }
        match a.runtime {
            RuntimeKind::Static if backends.is_empty() => {
                bail!("--runtime static needs at least one --backend NAME=HOST:PORT")
            }
            RuntimeKind::Static if backends.len() > capacity => {
                bail!(
                    "{} backends are more than the ring holds ({capacity})",
                    backends.len()
                )
            }
            RuntimeKind::Process | RuntimeKind::Docker if !backends.is_empty() => {
                bail!("--backend is only for --runtime static")
            }
            _ => {}
        }
        let admin = a.admin_on_data_port.then(|| {
            let ip = if a.control.ip().is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                a.control.ip()
            };
            SocketAddr::new(ip, a.control.port())
        });
        Ok(Settings {
            check: a.check,
            workers: a.workers,
            pin_workers: a.pin_workers,
            listen: a.listen,
            control: a.control,
            token,
            runtime: a.runtime,
            backends,
            docker: DockerConfig {
                docker: a.docker,
                image: a.image,
                network: a.network,
                instance: a.instance,
                ..DockerConfig::default()
            },
            keep_replicas: a.keep_replicas,
            manager: ManagerConfig {
                ring,
                replicas: a.replicas,
                max_replicas: a.max_replicas,
                health: HealthConfig {
                    interval: a.health_interval,
                    timeout: a.health_timeout,
                    fall: a.fall,
                    rise: a.rise,
                },
                respawn: RespawnConfig {
                    name: match a.respawn_name {
                        RespawnNameArg::Same => RespawnName::Same,
                        RespawnNameArg::Random => RespawnName::Random,
                    },
                    after: a.respawn_after,
                    backoff_max: a.respawn_backoff_max,
                    ..RespawnConfig::default()
                },
                name_prefix: a.name_prefix,
            },
            proxy: ProxyConfig {
                key: a.key,
                request_timeout: a.request_timeout,
                max_request_line: a.max_request_line,
                connect_timeout: a.connect_timeout,
                retries: a.retries,
                idle_timeout: a.idle_timeout,
                max_conns: a.max_conns.unwrap_or(0),
                admin,
                fall: a.fall,
                drain_timeout: a.drain_timeout,
                splice: a.splice,
                busy_poll: a.busy_poll,
            },
            max_conns_given: a.max_conns.is_some(),
            handover: a.handover,
        })
    }
}

/// Sets up `tracing`: text (colour only on a terminal) or JSON, filtered by `--log`.
pub fn init_logging(a: &Args) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&a.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match a.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Installs the Prometheus recorder with explicit histogram buckets.
fn install_metrics(hash: &str, runtime: &str) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::CONNECT_SECONDS.into()), m::CONNECT_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(m::CONNECTION_SECONDS.into()),
            m::DURATION_BUCKETS,
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    m::describe();
    m::register_fixed();
    ::metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"),
        "hash" => hash.to_string(), "runtime" => runtime.to_string())
    .set(1.0);
    Ok(handle)
}

/// Binds a listener with a deep backlog. With `reuse_port` (the data port) several listeners
/// share the port, one per data-plane worker, and a new ringlb can bind the same port and take
/// over while the old one drains. The control port is bound without it, so a second ringlb
/// started by mistake with the same ports fails at once instead of silently sharing them.
fn bind_std(
    addr: SocketAddr,
    what: &str,
    reuse_port: bool,
) -> anyhow::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).with_context(|| {
        format!("cannot bind the {what} port {addr} (is another ringlb running?)")
    })?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Binds the control port (on the current runtime).
fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::from_std(bind_std(addr, what, false)?)?)
}

/// Binds one data listener per worker on the same port. With port 0 the first one picks the
/// port and the others join it.
///
/// The listeners carry `TCP_NODELAY`: Linux copies it to every socket they accept, which saves
/// a `setsockopt` per connection (see [`crate::conn::serve`]).
fn bind_data(addr: SocketAddr, workers: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let bind_one = |addr| -> anyhow::Result<std::net::TcpListener> {
        let l = bind_std(addr, "data", true)?;
        socket2::SockRef::from(&l).set_tcp_nodelay(true)?;
        Ok(l)
    };
    let first = bind_one(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(bind_one(addr)?);
    }
    Ok(all)
}

/// The data listeners, in one group per worker, and how many of them an older ringlb handed
/// over: with `--handover`, the listeners of the ringlb serving that path if there is one
/// (spread over the workers, plus new ones if it had fewer than this ringlb has workers);
/// otherwise new ones.
fn data_listeners(
    s: &Settings,
    workers: usize,
) -> anyhow::Result<(Vec<Vec<std::net::TcpListener>>, usize)> {
    let fresh = || -> anyhow::Result<_> {
        let listeners = bind_data(s.listen, workers)?;
        Ok((listeners.into_iter().map(|l| vec![l]).collect(), 0))
    };
    let Some(path) = &s.handover else {
        return fresh();
    };
    let taken = ringlb_proxy::handover::take(path).with_context(|| {
        format!(
            "--handover {}: cannot take the listeners of the ringlb there",
            path.display()
        )
    })?;
    let Some(taken) = taken else {
        return fresh();
    };
    let count = taken.len();
    let addr = taken[0].local_addr()?;
    for l in &taken {
        let got = l.local_addr()?;
        let wanted = if s.listen.port() == 0 {
            got.ip() == s.listen.ip()
        } else {
            got == s.listen
        };
        if !wanted || got != addr {
            bail!(
                "--handover {}: the listeners handed over are bound to {got}, not to --listen {}",
                path.display(),
                s.listen
            );
        }
    }
    let mut groups: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, l) in taken.into_iter().enumerate() {
        groups[i % workers].push(l);
    }
    for g in groups.iter_mut().filter(|g| g.is_empty()) {
        g.extend(bind_data(addr, 1)?);
    }
    Ok((groups, count))
}

/// Runs ringlb until SIGTERM or SIGINT.
pub async fn run(mut s: Settings) -> anyhow::Result<()> {
    let signal = shutdown_signal().context("cannot install the signal handlers")?;
    let hash = s.manager.ring.family.to_string();
    let runtime_name = format!("{:?}", s.runtime).to_lowercase();
    let metrics = install_metrics(&hash, &runtime_name)?;
    // Histogram samples wait in lock-free buckets until they are folded in; do it every few
    // seconds so memory stays flat when nothing scrapes /metrics.
    tokio::spawn({
        let handle = metrics.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        }
    });
    // Raise the soft open-file limit to the hard one whatever --max-conns says: replicas'
    // pipes, health checks and the pipe pool need descriptors too.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    if !s.max_conns_given {
        s.proxy.max_conns = max_conns_for(nofile);
    } else if s.proxy.max_conns > max_conns_for(nofile) {
        // Taken as given (the operator may raise the limit of a running process with prlimit),
        // but said once, as HAProxy does for a maxconn beyond its ulimit-n.
        tracing::warn!(
            max_conns = s.proxy.max_conns,
            open_files = nofile,
            "--max-conns {} needs about {} open files and the limit is {nofile}: past about \
             {} connections, new ones wait or fail until others close; raise the hard limit \
             (ulimit -Hn) or lower --max-conns",
            s.proxy.max_conns,
            s.proxy.max_conns as u64 * FDS_PER_CONN + FD_RESERVE,
            max_conns_for(nofile)
        );
    }
    let control = bind(s.control, "control")?;
    let workers = s.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (data, taken) = data_listeners(&s, workers)?;
    // The handover server's own references to the listeners (see `ringlb_proxy::handover`).
    let handed = match &s.handover {
        Some(_) => data
            .iter()
            .flatten()
            .map(|l| l.try_clone().map(std::os::fd::OwnedFd::from))
            .collect::<std::io::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let runtime: Arc<dyn Runtime> = match s.runtime {
        RuntimeKind::Process => Arc::new(ProcessRuntime::new(ProcessConfig::current_exe()?)),
        RuntimeKind::Static => Arc::new(FixedRuntime::new(s.backends.clone())),
        RuntimeKind::Docker => Arc::new(DockerRuntime::connect(s.docker.clone()).await?),
    };
    let directory = Arc::new(Directory::new(Routes::empty(&s.manager.ring)));
    let manager = Manager::new(s.manager.clone(), runtime, directory.clone());
    let shutdown = CancellationToken::new();

    let api = tokio::spawn(ringlb_control::serve(
        control,
        manager.clone(),
        ApiConfig {
            token: s.token.clone(),
            metrics: Some(metrics),
            header_timeout: None,
            hash: hash.clone(),
        },
        shutdown.clone(),
    ));
    let listing = match manager.bootstrap().await {
        Ok(l) => l,
        Err(e) => {
            manager.shutdown(s.keep_replicas).await;
            bail!("could not start the replicas: {e}");
        }
    };
    tracing::info!(
        data = %s.listen, control = %s.control, hash = %hash, runtime = %runtime_name,
        replicas = ?listing.replicas, max_conns = s.proxy.max_conns, workers,
        listeners_taken_over = taken, "ringlb is serving"
    );
    let health = tokio::spawn({
        let manager = manager.clone();
        let stop = shutdown.clone();
        async move { manager.run_health(stop).await }
    });
    let data_plane = match ringlb_proxy::start(
        data,
        directory,
        s.proxy.clone(),
        s.pin_workers,
        shutdown.clone(),
    ) {
        Ok(plane) => plane,
        Err(e) => {
            shutdown.cancel();
            let _ = health.await;
            let _ = api.await;
            manager.shutdown(s.keep_replicas).await;
            bail!("cannot start the data-plane workers: {e}");
        }
    };

    // Serve the handover socket only now: until this ringlb serves, the one before it keeps
    // answering there, so a restart that fails leaves the next attempt something to take.
    let handover = match &s.handover {
        Some(path) => match ringlb_proxy::handover::Server::bind(path) {
            Ok(server) => Some(tokio::spawn(server.serve(handed, shutdown.clone()))),
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot serve the handover socket; the next restart will bind new listeners");
                None
            }
        },
        None => None,
    };

    signal.await;
    tracing::info!("shutting down: no new connections; draining");
    shutdown.cancel();
    if let Some(h) = handover {
        let _ = h.await;
    }
    data_plane.wait().await;
    let _ = health.await;
    let _ = api.await;
    manager.shutdown(s.keep_replicas).await;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that resolves on the first
/// signal. Installing first thing means a signal sent while ringlb starts up is held for the
/// drain instead of killing the process.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data listeners skip a `setsockopt` per connection because accepted sockets inherit
    /// TCP_NODELAY from them; this checks that the kernel does so.
    #[test]
    fn accepted_sockets_have_nodelay() {
        let listeners = bind_data("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let accepted = loop {
            if let Some((s, _)) = listeners.iter().find_map(|l| l.accept().ok()) {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "no listener accepted");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(
            accepted.nodelay().unwrap(),
            "the accepted socket has no TCP_NODELAY"
        );
    }
}
