//! The `ringlb` binary: parse flags, set up logging and metrics, bind, run the control plane and
//! the data plane until SIGTERM/SIGINT. `ringlb replica …` runs a replica instead.

mod app;
mod cli;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc. A connection costs about five allocations and as many
/// frees (counted with uprobes on libc): three 128-byte-aligned ones, which are tokio's task and
/// the two sockets' I/O registrations, the request buffer, and one more. A kept-alive request
/// costs none. On the one-connection-per-request workload mimalloc cut ringlb's CPU per
/// connection by 2–3 % (docs/benchmarks.md, "What was changed"), and unlike glibc's malloc it
/// returns the memory of a peak of connections once they are gone (docs/reliability.md, A1).
/// Without transparent huge pages (`no_thp`): with them, an idle ringlb held 10 MiB more.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringlb: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(cli::Command::Replica(replica)) = args.command {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        return match rt.block_on(ringlb_replica::run(replica)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("replica: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    app::init_logging(&args);
    let settings = match app::Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringlb: invalid configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    if settings.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    // The control plane (API, health checks, replica management) runs here; the data plane has
    // threads of its own (`--workers`, see ringlb_proxy::workers), so one worker is plenty.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ringlb-control")
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(app::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ringlb: {e:#}");
            ExitCode::FAILURE
        }
    }
}
