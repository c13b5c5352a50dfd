//! What each subcommand does, given its parsed flags.

use std::time::Duration;

use anyhow::{bail, Result};
use rand::Rng;

use crate::cli::{A3Args, A4Args, Command, ExpArgs, RunArgs, RuntimeArg};
use crate::control::Control;
use crate::experiments::fault::Timing;
use crate::experiments::{a1, a2, a3, a4, comparison, Ctx, Killer};
use crate::progress;
use crate::report::Out;
use crate::ringlb::{default_binary, Launch, Ringlb, Runtime};
use crate::run::{self, Plan};

/// Runs one subcommand. Any ringlb it started is stopped when this returns or is dropped.
pub async fn main(command: Command) -> Result<()> {
    match command {
        Command::Run(a) => run_cmd(a).await,
        Command::A1(c) => experiments(&c, None, None, &["a1"]).await,
        Command::A2(c) => experiments(&c, None, None, &["a2"]).await,
        Command::A3 { common, a3 } => experiments(&common, Some(&a3), None, &["a3"]).await,
        Command::A4 { common, a4 } => experiments(&common, None, Some(&a4), &["a4"]).await,
        Command::All { common, a3, a4 } => {
            experiments(&common, Some(&a3), Some(&a4), &["a1", "a2", "a3", "a4"]).await
        }
    }
}

async fn run_cmd(a: RunArgs) -> Result<()> {
    if a.requests == 0 || a.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let seed = a.seed.unwrap_or_else(|| rand::rng().random());
    let mut plan = Plan::new(a.target, run::rids(a.requests, seed), a.concurrency);
    plan.path = a.path;
    plan.keep_alive = a.keep_alive;
    plan.timeout = Duration::from_secs_f64(a.timeout);
    plan.time_limit = Some(Duration::from_secs_f64(a.duration_limit));
    plan.rate = a.rate;
    plan.progress = if a.quiet {
        progress::Mode::Quiet
    } else {
        progress::Mode::Auto
    };
    let mut report = run::execute(&plan).await?;
    if let Some(c) = a.control {
        report.name_replicas(&Control::new(c).names().await?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

fn runtime(c: &ExpArgs) -> Runtime {
    match c.runtime {
        RuntimeArg::Process => Runtime::Process,
        RuntimeArg::Docker => Runtime::Docker {
            network: c.network.clone(),
            image: c.image.clone(),
        },
    }
}

/// Runs the named experiments in order, against the target or a ringlb started here.
async fn experiments(
    c: &ExpArgs,
    a3: Option<&A3Args>,
    a4: Option<&A4Args>,
    which: &[&str],
) -> Result<()> {
    let binary = c.ringlb.clone().unwrap_or_else(default_binary);
    let out = Out::new(&c.out)?;
    let (killer, name) = match c.runtime {
        RuntimeArg::Process => (Killer::Process, "process"),
        RuntimeArg::Docker => (Killer::Docker, "docker"),
    };
    let prefix = c.prefix.clone().unwrap_or_else(|| match c.runtime {
        RuntimeArg::Process => String::new(),
        RuntimeArg::Docker => "docker-".into(),
    });
    let mut ctx = Ctx {
        target: c.target,
        control: Control::new(c.control),
        out,
        requests: c.requests,
        concurrency: c.concurrency,
        seed: c.seed,
        progress: if c.quiet {
            progress::Mode::Quiet
        } else {
            progress::Mode::Auto
        },
        killer,
        runtime: name.into(),
        prefix,
        rate: c.rate,
        fault_rate: a3.map_or(1000.0, |a| a.fault_rate),
    };
    // Kept alive until the experiments against it are done; dropping it stops ringlb.
    let mut own: Option<Ringlb> = None;
    let live: Vec<&str> = which.iter().copied().filter(|w| *w != "a4").collect();
    if !live.is_empty() && c.spawn {
        let rl = Ringlb::start(&Launch {
            binary: binary.clone(),
            replicas: a1::N,
            runtime: runtime(c),
            args: [vec!["--hash".into(), c.hash.clone()], c.ringlb_arg.clone()].concat(),
            log: std::env::temp_dir().join(format!("ringlb-loadtest-{}.log", std::process::id())),
        })
        .await?;
        ctx.target = rl.data;
        ctx.control = rl.control();
        own = Some(rl);
    }
    for w in live {
        eprintln!("{w}: against {} (control {})", ctx.target, ctx.control.addr);
        match w {
            "a1" => {
                let r = a1::measure(&ctx).await?;
                a1::write(&ctx, &r)?;
                println!("{}", a1::table(&r).markdown());
            }
            "a2" => {
                let ns: Vec<usize> = a4.map_or(a2::NS.collect(), |a| a.ns.clone());
                let r = a2::measure(&ctx, &ns).await?;
                a2::write(&ctx, &r)?;
                println!("{}", a2::table(&r).markdown());
            }
            "a3" => {
                let s = a3.map(settings).unwrap_or_default();
                let r = a3::measure(&ctx, &s).await?;
                a3::write(&ctx, &r, &s)?;
                println!("{}", a3::recovery_table(&r.kill).markdown());
                println!("{}", a3::repeats_table(&r).markdown());
                if let Some(h) = &r.hang {
                    println!("{}", a3::recovery_table(h).markdown());
                }
                let failed: Vec<&str> = r
                    .checks
                    .iter()
                    .filter(|k| !k.pass)
                    .map(|k| k.name.as_str())
                    .collect();
                println!(
                    "checks: {} of {} pass{}; failed in the window: {}",
                    r.checks.len() - failed.len(),
                    r.checks.len(),
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!(" (failing: {})", failed.join(", "))
                    },
                    r.kill.failed_in_window
                );
            }
            _ => unreachable!("only a1, a2, a3 are live"),
        }
    }
    drop(own);
    if which.contains(&"a4") {
        let a = a4.cloned().unwrap_or(A4Args {
            families: vec![],
            ns: a2::NS.collect(),
        });
        let all = a4::variants();
        let variants = if a.families.is_empty() {
            all
        } else {
            let unknown: Vec<&String> = a
                .families
                .iter()
                .filter(|f| !all.iter().any(|v| &v.key == *f))
                .collect();
            if !unknown.is_empty() {
                bail!(
                    "unknown --families {unknown:?} (known: {})",
                    all.iter()
                        .map(|v| v.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            all.into_iter()
                .filter(|v| a.families.contains(&v.key))
                .collect()
        };
        let s = a4::Settings {
            ringlb: binary,
            extra_args: c.ringlb_arg.clone(),
            runtime: runtime(c),
            variants,
            ns: a.ns.clone(),
            log_dir: std::env::temp_dir(),
        };
        let rs = a4::measure(&ctx, &s).await?;
        comparison::write(&ctx, &rs)?;
        println!("{}", comparison::a1_table(&rs).markdown());
        println!("{}", comparison::moved_table(&rs).markdown());
    }
    Ok(())
}

fn settings(a: &A3Args) -> a3::Settings {
    let d = a3::Settings::default();
    let poll = Duration::from_millis(a.poll_ms);
    let inject_at = Duration::from_secs_f64(a.kill_at);
    a3::Settings {
        kill: Timing {
            duration: Duration::from_secs_f64(a.a3_duration),
            inject_at,
            poll,
            ..d.kill
        },
        kills: a.kills.max(1),
        hang: (!a.no_hang).then(|| Timing {
            duration: Duration::from_secs_f64(a.hang_duration),
            inject_at,
            poll,
            timeout: Duration::from_secs(2),
        }),
        ..d
    }
}
