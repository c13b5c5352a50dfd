//! `loadtest`: parse the flags, run the subcommand, stop on Ctrl-C.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = loadtest::cli::Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let interrupted = rt.block_on(async {
        tokio::select! {
            r = loadtest::app::main(cli.command) => r.map(|()| false),
            _ = tokio::signal::ctrl_c() => Ok(true),
        }
    })?;
    // By now the command's future has been dropped, and with it any ringlb guard (which stops
    // that ringlb and its replicas).
    drop(rt);
    if interrupted {
        eprintln!("interrupted");
        std::process::exit(130);
    }
    Ok(())
}
