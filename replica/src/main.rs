//! `replica`: the web server that ringlb balances across (the `ringlb-replica` image's command).

#![forbid(unsafe_code)]

use clap::Parser;
use ringlb_replica::ReplicaArgs;

/// The ringlb replica: GET /home names the server, GET /heartbeat answers health checks.
#[derive(Parser, Debug)]
#[command(name = "replica", version)]
struct Cli {
    #[command(flatten)]
    replica: ReplicaArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ringlb_replica::run(cli.replica).await
}
