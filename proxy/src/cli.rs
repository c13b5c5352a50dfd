//! Command-line flags, `RINGLB_*` environment variables and the optional TOML file.
//!
//! Precedence: a flag on the command line, then its environment variable, then the config
//! file, then the built-in default. The config file uses the flags' long names as keys
//! (`health-interval = "500ms"` or `health_interval = "500ms"`); an unknown key is an error.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ringlb_core::{Family, Probe};
use ringlb_proxy::KeySpec;

/// ringlb: a layer-4 consistent-hashing load balancer for HTTP replicas.
///
/// Reads the first request line of each connection, hashes its request ID onto a ring of
/// replicas and splices the bytes both ways. The control API (/rep, /add, /rm, /metrics,
/// /status) lists, adds and removes replicas.
#[derive(Parser, Debug)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Data port: clients connect here.
    #[arg(long, env = "RINGLB_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// Control port: /rep, /add, /rm, /healthz, /readyz, /metrics, /status.
    #[arg(long, env = "RINGLB_CONTROL", default_value = "127.0.0.1:5001")]
    pub control: SocketAddr,
    /// Also answer /rep, /add and /rm on the data port (the assignment's single port).
    #[arg(long, env = "RINGLB_ADMIN_ON_DATA_PORT")]
    pub admin_on_data_port: bool,
    /// Bearer token required for /add and /rm.
    #[arg(long, env = "RINGLB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow a non-loopback control address without a token (e.g. inside a container whose
    /// port is published on the host's loopback only).
    #[arg(long, env = "RINGLB_ALLOW_INSECURE_CONTROL")]
    pub allow_insecure_control: bool,

    /// Where replicas run.
    #[arg(long, env = "RINGLB_RUNTIME", value_enum, default_value_t = RuntimeKind::Process)]
    pub runtime: RuntimeKind,
    /// Replicas a managed runtime starts with.
    #[arg(long, env = "RINGLB_REPLICAS", default_value_t = 3)]
    pub replicas: usize,
    /// Generated replica names are <prefix><id>. Docker container names are engine-wide, so two
    /// ringlb instances on one engine need different prefixes.
    #[arg(long, env = "RINGLB_NAME_PREFIX", default_value = "Server-")]
    pub name_prefix: String,
    /// Most replicas at once (the ring may allow fewer: 56 for the assignment's map).
    #[arg(long, env = "RINGLB_MAX_REPLICAS", default_value_t = 64)]
    pub max_replicas: usize,
    /// With --runtime static: a server as NAME=HOST:PORT (repeat, or comma-separate in the env).
    #[arg(long = "backend", env = "RINGLB_BACKENDS", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// With --runtime docker: the replica image.
    #[arg(long, env = "RINGLB_IMAGE", default_value = "ringlb-replica:latest")]
    pub image: String,
    /// With --runtime docker: the network replicas join (created if missing).
    #[arg(long, env = "RINGLB_NETWORK", default_value = "net1")]
    pub network: String,
    /// With --runtime docker: label value that marks this ringlb's containers.
    #[arg(long, env = "RINGLB_INSTANCE", default_value = "ringlb")]
    pub instance: String,
    /// With --runtime docker: the docker CLI.
    #[arg(long, env = "RINGLB_DOCKER", default_value = "docker")]
    pub docker: PathBuf,
    /// Leave the replica containers running when ringlb exits (a restart adopts them).
    #[arg(long, env = "RINGLB_KEEP_REPLICAS")]
    pub keep_replicas: bool,

    /// Hash family.
    #[arg(long, env = "RINGLB_HASH", default_value = "maglev")]
    pub hash: Family,
    /// Maglev table size (a prime, at least 100 × replicas).
    #[arg(long, env = "RINGLB_TABLE_SIZE", default_value_t = 65537)]
    pub table_size: usize,
    /// Virtual nodes per replica (ring: 160, assignment: 9).
    #[arg(long, env = "RINGLB_VNODES")]
    pub vnodes: Option<u32>,
    /// Slots of the assignment's map.
    #[arg(long, env = "RINGLB_SLOTS", default_value_t = 512)]
    pub slots: usize,
    /// Probing of the assignment's map on virtual-server collisions.
    #[arg(long, env = "RINGLB_PROBE", default_value = "linear")]
    pub probe: Probe,
    /// Assignment map request hash H(i) = a·i² + b·i + c, as "a,b,c".
    #[arg(long, env = "RINGLB_ASSIGNMENT_H", default_value = "1,2,17")]
    pub assignment_h: String,
    /// Assignment map virtual-server hash Φ(i, j) = a·i² + b·j² + c·j + d, as "a,b,c,d".
    #[arg(long, env = "RINGLB_ASSIGNMENT_PHI", default_value = "1,1,2,25")]
    pub assignment_phi: String,

    /// Request key: query:NAME, path, uri, client-ip or header:NAME.
    #[arg(long, env = "RINGLB_KEY", default_value = "query:rid")]
    pub key: KeySpec,
    /// Deadline for the request line (408 after it).
    #[arg(long, env = "RINGLB_REQUEST_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Size cap of the request line (414 over it).
    #[arg(long, env = "RINGLB_MAX_REQUEST_LINE", default_value_t = 8192)]
    pub max_request_line: usize,
    /// Timeout of one connect to a replica.
    #[arg(long, env = "RINGLB_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Other replicas to try after a failed connect.
    #[arg(long, env = "RINGLB_RETRIES", default_value_t = 2)]
    pub retries: u32,
    /// Close connections with no bytes moving for this long.
    #[arg(long, env = "RINGLB_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most open connections [default: derived from the open-file limit, 6 descriptors each].
    #[arg(long, env = "RINGLB_MAX_CONNS")]
    pub max_conns: Option<usize>,
    /// After SIGTERM/SIGINT, how long open connections may finish.
    #[arg(long, env = "RINGLB_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// UNIX socket for restarts without a lost connection: at start, if an older ringlb serves
    /// this path, take its data listeners (the same sockets, queued connections included)
    /// instead of binding new ones; once serving, hand them to the next ringlb started with the
    /// same path. Without it a restart binds new sockets beside the old (SO_REUSEPORT).
    #[arg(long, env = "RINGLB_HANDOVER")]
    pub handover: Option<PathBuf>,
    /// Forwarding: `always` splices every byte (zero-copy); `auto` copies small messages through
    /// a per-thread buffer and splices once a direction carries bulk data.
    #[arg(long, env = "RINGLB_SPLICE", default_value = "always")]
    pub splice: ringlb_proxy::splice::Mode,
    /// Worker threads of the data plane, each with its own event loop and its own listener on the
    /// data port (SO_REUSEPORT) [default: one per core].
    #[arg(long, env = "RINGLB_WORKERS")]
    pub workers: Option<usize>,
    /// After its last work a worker keeps polling for events this long, yielding its core to
    /// other threads in between, before it sleeps: fewer sleeps and wake-ups, more CPU. 0 (the default)
    /// sleeps at once; at most 10ms.
    #[arg(long, env = "RINGLB_BUSY_POLL", default_value = "0s", value_parser = humantime::parse_duration)]
    pub busy_poll: Duration,
    /// Pin data-plane worker i to the i-th CPU this process may run on, for a machine or cpuset
    /// given to ringlb [default: off: the kernel places the threads].
    #[arg(long, env = "RINGLB_PIN_WORKERS")]
    pub pin_workers: bool,

    /// Time between two active health checks of a replica.
    #[arg(long, env = "RINGLB_HEALTH_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// How long one health check may take.
    #[arg(long, env = "RINGLB_HEALTH_TIMEOUT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub health_timeout: Duration,
    /// Failed checks (or connects) in a row that take a replica down.
    #[arg(long, env = "RINGLB_FALL", default_value_t = 2)]
    pub fall: u32,
    /// Passed checks in a row that bring a replica back.
    #[arg(long, env = "RINGLB_RISE", default_value_t = 2)]
    pub rise: u32,
    /// Name of a respawned replica: the same (its keys come back) or a random one.
    #[arg(long, env = "RINGLB_RESPAWN_NAME", value_enum, default_value_t = RespawnNameArg::Same)]
    pub respawn_name: RespawnNameArg,
    /// A replica that is down but still exists (hung, paused) is replaced after this long.
    #[arg(long, env = "RINGLB_RESPAWN_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    pub respawn_after: Duration,
    /// Cap of the respawn back-off for crash-looping replicas.
    #[arg(long, env = "RINGLB_RESPAWN_BACKOFF_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
    pub respawn_backoff_max: Duration,

    /// Log format.
    #[arg(long, env = "RINGLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing's env-filter syntax), e.g. "info" or "warn,ringlb::conn=info".
    #[arg(long, env = "RINGLB_LOG", default_value = "info")]
    pub log: String,
    /// TOML config file; keys are the long flag names.
    #[arg(long, env = "RINGLB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit (0: valid).
    #[arg(long)]
    pub check: bool,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a replica web server (what the process runtime starts).
    Replica(ringlb_replica::ReplicaArgs),
}

/// `--runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Child processes on loopback ports.
    Process,
    /// Docker containers through the docker CLI.
    Docker,
    /// A fixed list of servers (--backend).
    Static,
}

/// `--respawn-name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RespawnNameArg {
    /// Keep the name.
    Same,
    /// A random new name.
    Random,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colour on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses the process's arguments, folding in the config file when one is named.
pub fn parse() -> anyhow::Result<Args> {
    parse_from(std::env::args_os().collect())
}

/// Parses `argv` (with the program name first).
pub fn parse_from(argv: Vec<OsString>) -> anyhow::Result<Args> {
    let first = Args::try_parse_from(&argv).unwrap_or_else(|e| e.exit());
    let Some(path) = first.config.clone() else {
        return Ok(first);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file_args = file_to_args(&text).with_context(|| format!("in {}", path.display()))?;
    // File values go before the command line; `args_override_self` lets the later flag win.
    let mut merged: Vec<OsString> = vec![argv[0].clone()];
    merged.extend(file_args.into_iter().map(OsString::from));
    merged.extend(argv.into_iter().skip(1));
    let matches = Args::command()
        .try_get_matches_from(merged)
        .unwrap_or_else(|e| e.exit());
    Ok(Args::from_arg_matches(&matches)?)
}

/// Turns a TOML table into flags, refusing unknown keys; a key whose environment variable is
/// set is left to the environment.
fn file_to_args(text: &str) -> anyhow::Result<Vec<String>> {
    let table: toml::Table = text.parse().context("invalid TOML")?;
    let cmd = Args::command();
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = cmd.get_arguments().find(|a| {
            a.get_long() == Some(long.as_str())
                && !matches!(long.as_str(), "config" | "check" | "help" | "version")
        }) else {
            bail!("unknown key '{key}' in the config file (keys are the long flag names, e.g. health-interval)");
        };
        if arg.get_env().is_some_and(|e| std::env::var_os(e).is_some()) {
            continue;
        }
        let flag = format!("--{long}");
        match value {
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => out.extend([flag, s]),
            toml::Value::Integer(i) => out.extend([flag, i.to_string()]),
            toml::Value::Array(items) => {
                for item in items {
                    let s = match item {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.extend([flag.clone(), s]);
                }
            }
            other => bail!("key '{key}': unsupported value {other}"),
        }
    }
    Ok(out)
}

/// Parses "a,b,c" into exactly `N` integers.
pub fn coefficients<const N: usize>(s: &str, what: &str) -> anyhow::Result<[u64; N]> {
    let parts: Vec<u64> = s
        .split(',')
        .map(|p| p.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!("{what} must be {N} comma-separated non-negative integers, got {s:?}")
        })?;
    parts
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} must be {N} comma-separated integers, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("ringlb")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn defaults() {
        let a = parse_from(argv(&[])).unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(a.control.to_string(), "127.0.0.1:5001");
        assert_eq!(a.replicas, 3);
        assert_eq!(a.hash, Family::Maglev);
        assert_eq!(a.health_interval, Duration::from_millis(500));
    }

    #[test]
    fn file_then_flags() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "replicas = 5\nhash = \"ring\"\nhealth_interval = \"250ms\"\nadmin-on-data-port = true\nbackend = [\"a=127.0.0.1:1\", \"b=127.0.0.1:2\"]").unwrap();
        let p = f.path().to_str().unwrap();
        let a = parse_from(argv(&["--config", p, "--replicas", "4"])).unwrap();
        assert_eq!(a.replicas, 4, "the flag wins over the file");
        assert_eq!(a.hash, Family::Ring);
        assert_eq!(a.health_interval, Duration::from_millis(250));
        assert!(a.admin_on_data_port);
        assert_eq!(a.backends.len(), 2);
    }

    #[test]
    fn unknown_file_key() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "replicaz = 5").unwrap();
        let err = parse_from(argv(&["--config", f.path().to_str().unwrap()])).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key 'replicaz'"),
            "{err:#}"
        );
    }

    #[test]
    fn coefficient_lists() {
        assert_eq!(coefficients::<3>("1, 2,17", "h").unwrap(), [1, 2, 17]);
        assert!(coefficients::<3>("1,2", "h").is_err());
        assert!(coefficients::<4>("1,2,x,4", "phi").is_err());
    }
}
