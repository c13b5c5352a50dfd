//! Command-line flags. Every flag has a help text; the addresses and the output directory also
//! read `LOADTEST_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator and the assignment's experiments (A-1..A-4) for ringlb.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send N requests at a concurrency and report per-replica counts, throughput and latency.
    Run(RunArgs),
    /// 10000 requests on N = 3; requests per replica (bar chart).
    A1(ExpArgs),
    /// N = 2..6 through /add and /rm, 10000 requests each; load per replica (line chart).
    A2(ExpArgs),
    /// check every endpoint, then kill a replica under load and time its recovery.
    A3 {
        #[command(flatten)]
        common: ExpArgs,
        #[command(flatten)]
        a3: A3Args,
    },
    /// A-4: A-1 and A-2 for every hash family, each on a ringlb this command starts.
    A4 {
        #[command(flatten)]
        common: ExpArgs,
        #[command(flatten)]
        a4: A4Args,
    },
    /// against the target, then A-4.
    All {
        #[command(flatten)]
        common: ExpArgs,
        #[command(flatten)]
        a3: A3Args,
        #[command(flatten)]
        a4: A4Args,
    },
}

/// Flags of `loadtest run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Data port of ringlb.
    #[arg(long, env = "LOADTEST_TARGET", default_value = "127.0.0.1:5000")]
    pub target: SocketAddr,
    /// Requests to send.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Reuse connections. ringlb routes per connection, so then only each connection's first
    /// rid picks the replica.
    #[arg(long)]
    pub keep_alive: bool,
    /// Request path; `?rid=<random 6-digit id>` is appended.
    #[arg(long, default_value = "/home")]
    pub path: String,
    /// Control port, to name replicas ("Hello from Server: 3" → Server-3) from /replicas.
    #[arg(long, env = "LOADTEST_CONTROL")]
    pub control: Option<SocketAddr>,
    /// Stop starting new requests after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub duration_limit: f64,
    /// Start at most this many requests per second [default: as fast as --concurrency allows].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Time limit of one request, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Seed of the request IDs (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the result as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Where replicas run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// Child processes of ringlb (kill -9 <pid> in A-3).
    Process,
    /// Docker containers (docker kill <name> in A-3).
    Docker,
}

/// Flags every experiment shares.
#[derive(Clone, Debug, Args)]
pub struct ExpArgs {
    /// Data port of the ringlb under test (ignored with --spawn and by a4).
    #[arg(long, env = "LOADTEST_TARGET", default_value = "127.0.0.1:5000")]
    pub target: SocketAddr,
    /// Control port of the ringlb under test.
    #[arg(long, env = "LOADTEST_CONTROL", default_value = "127.0.0.1:5001")]
    pub control: SocketAddr,
    /// Directory for charts, tables and results.json.
    #[arg(long, env = "LOADTEST_OUT", default_value = "docs/results")]
    pub out: PathBuf,
    /// Requests per measurement (the assignment's 10000).
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seed of the request IDs: the same seed sends the same IDs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests per second of each measurement [default: as fast as --concurrency allows].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Where the replicas run: decides how A-3 kills one and how a4/--spawn start ringlb.
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: RuntimeArg,
    /// Prefix of the files written [default: none for process, "docker-" for docker].
    #[arg(long)]
    pub prefix: Option<String>,
    /// Start a ringlb of our own (3 replicas, on free ports) instead of using --target/--control.
    #[arg(long)]
    pub spawn: bool,
    /// Hash family of the ringlb that --spawn starts.
    #[arg(long, default_value = "maglev")]
    pub hash: String,
    /// The ringlb binary that a4 and --spawn start [default: `ringlb` next to this binary].
    #[arg(long, env = "LOADTEST_RINGLB")]
    pub ringlb: Option<PathBuf>,
    /// One more flag for the ringlbs that a4 and --spawn start (repeat it), e.g.
    /// `--ringlb-arg=--connect-timeout=3s`.
    #[arg(long, allow_hyphen_values = true)]
    pub ringlb_arg: Vec<String>,
    /// Docker network of ringlbs started with --runtime docker.
    #[arg(long, default_value = "ringlb-loadtest")]
    pub network: String,
    /// Replica image of ringlbs started with --runtime docker.
    #[arg(long, default_value = "ringlb-replica:latest")]
    pub image: String,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of A-3.
#[derive(Clone, Debug, Args)]
pub struct A3Args {
    /// Length of the load run during which the replica is killed, in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub a3_duration: f64,
    /// When the replica is killed, in seconds into the run.
    #[arg(long, default_value_t = 2.0)]
    pub kill_at: f64,
    /// Interval of the /replicas polls that time detection and replacement, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub poll_ms: u64,
    /// Requests per second during A-3's fault runs. They last seconds, and every request opens
    /// two connections that the kernel's conntrack table keeps for 120 s after they close.
    #[arg(long, default_value_t = 1000.0)]
    pub fault_rate: f64,
    /// How many times the kill is repeated (the first is charted, all are tabled).
    #[arg(long, default_value_t = 3)]
    pub kills: usize,
    /// Skip the hung-replica run (it lasts --hang-duration, since ringlb replaces a hung replica
    /// only after its --respawn-after, 10 s by default).
    #[arg(long)]
    pub no_hang: bool,
    /// Length of the hung-replica run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub hang_duration: f64,
}

/// Flags of A-4.
#[derive(Clone, Debug, Args)]
pub struct A4Args {
    /// Variants to run, comma-separated (assignment, primes, perm, ring, maglev, rendezvous,
    /// jump) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Replica counts of A-2, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,5,6")]
    pub ns: Vec<usize>,
}
