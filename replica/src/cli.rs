//! The replica's command line, shared by the `replica` binary and `ringlb replica`.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};

use crate::{serve, shutdown, Config};

/// Where a replica listens when neither `--listen` nor `PORT` is given: all interfaces, because
/// in a container the proxy reaches the replica through the container network, and port 5000 as
/// in the assignment.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5000);

/// Pending-connection queue length. A replica is the backend of throughput benchmarks that open
/// one connection per request; the usual 128 (or mio's 1024) overflows under such bursts and
/// the kernel then drops SYNs, which shows up as one-second connect stalls. The kernel caps it
/// at `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// Flags of a replica. Every flag but the two switches has an environment fallback, so a
/// container is configured with `-e SERVER_ID=… -e SERVER_NAME=…` alone.
///
/// The listen address is chosen in this order: `--listen`, then `PORT` (or `--port`) on the
/// default address 0.0.0.0, then [`DEFAULT_LISTEN`].
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ReplicaArgs {
    /// Address to listen on, IP:PORT. Port 0 picks a free port (see --announce). Takes
    /// precedence over PORT. [default: 0.0.0.0:5000]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,

    /// Port to listen on at 0.0.0.0 when --listen is not given.
    #[arg(long, env = "PORT", value_name = "PORT")]
    pub port: Option<u16>,

    /// Numeric server ID, reported by GET /home as "Hello from Server: ID".
    #[arg(long, env = "SERVER_ID", default_value_t = 1, value_name = "ID")]
    pub id: u32,

    /// Server name, sent in the X-Server-Name response header. [default: Server-ID]
    #[arg(long, env = "SERVER_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// After binding, print one line "listening on IP:PORT" to stdout (the bound address,
    /// so a parent that passed port 0 learns the port) and nothing else ever.
    #[arg(long)]
    pub announce: bool,

    /// Also shut down gracefully when stdin reaches EOF, so that a child replica dies with the
    /// parent holding its stdin pipe, even when the parent is killed with SIGKILL.
    #[arg(long)]
    pub exit_on_stdin_eof: bool,
}

impl ReplicaArgs {
    /// The address to bind, after applying `--listen` > `PORT` > [`DEFAULT_LISTEN`].
    pub fn listen_addr(&self) -> SocketAddr {
        match (self.listen, self.port) {
            (Some(listen), _) => listen,
            (None, Some(port)) => SocketAddr::new(DEFAULT_LISTEN.ip(), port),
            (None, None) => DEFAULT_LISTEN,
        }
    }

    /// The replica's identity and shutdown behaviour, with the name defaulted to `Server-<id>`
    /// (the name ringlb itself gives its n-th replica).
    pub fn config(&self) -> Config {
        Config {
            id: self.id,
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("Server-{}", self.id)),
            exit_on_stdin_eof: self.exit_on_stdin_eof,
        }
    }
}

/// Runs a replica from parsed flags: installs stderr logging (unless the host program already
/// has a subscriber), binds, prints the announce line when asked, and serves until SIGINT or
/// SIGTERM (or stdin EOF with `--exit-on-stdin-eof`), draining open requests before it returns.
pub async fn run(args: ReplicaArgs) -> anyhow::Result<()> {
    init_logging();
    let config = args.config();
    let addr = args.listen_addr();
    let shutdown = shutdown::signals().context("cannot register for SIGINT/SIGTERM")?;
    let listener = bind(addr).with_context(|| {
        format!("cannot listen on {addr}; is the port taken? choose another with --listen or PORT")
    })?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    if args.announce {
        // One line, flushed at once: the parent blocks on it to learn the port.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {local}")
            .and_then(|()| stdout.flush())
            .context("cannot write the announce line to stdout")?;
    }
    tracing::info!(%local, id = config.id, name = %config.name, "replica listening");
    serve(listener, config, shutdown)
        .await
        .context("replica server failed")
}

/// Binds like `TcpListener::bind` (with `SO_REUSEADDR`, so a restarted replica gets its port
/// back while old connections sit in TIME_WAIT) but with a deeper backlog.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Logs go to stderr only (stdout carries the announce line), at `warn` unless `RUST_LOG` says
/// otherwise: a healthy replica under load says nothing. `try_init` leaves the subscriber of a
/// host program (`ringlb replica`) in place.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplicaArgs,
    }

    fn parse(argv: &[&str]) -> ReplicaArgs {
        Cli::try_parse_from(std::iter::once("replica").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    // Flags only: the env fallbacks are read from the process environment, which tests share
    // and must not modify. `listen_addr` is tested with `port` set directly instead.

    #[test]
    fn listen_beats_port_beats_default() {
        let mut args = parse(&["--listen", "127.0.0.1:7000", "--port", "6000"]);
        assert_eq!(args.listen_addr(), "127.0.0.1:7000".parse().unwrap());
        args.listen = None;
        assert_eq!(args.listen_addr(), "0.0.0.0:6000".parse().unwrap());
        args.port = None;
        assert_eq!(args.listen_addr(), DEFAULT_LISTEN);
    }

    #[test]
    fn name_defaults_from_id() {
        let args = parse(&["--id", "7"]);
        if std::env::var_os("SERVER_NAME").is_none() {
            assert_eq!(args.config().name, "Server-7");
        }
        let args = parse(&["--id", "7", "--name", "S5", "--exit-on-stdin-eof"]);
        assert_eq!(
            args.config(),
            Config {
                id: 7,
                name: "S5".into(),
                exit_on_stdin_eof: true
            }
        );
    }

    #[test]
    fn bad_listen_address_is_rejected() {
        let argv = ["replica", "--listen", "localhost"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
