//! The data plane's threads.
//!
//! Each worker is an OS thread with its own current-thread tokio runtime and its own listener on
//! the data port. The listeners share the port through `SO_REUSEPORT`, so the kernel spreads new
//! connections over them, and a connection lives and dies on the thread that accepted it: no work
//! stealing, no wake-ups sent from one thread to another, no task moving between cores. It is the
//! layout of HAProxy's threads and nginx's workers.
//!
//! Why not tokio's multi-thread scheduler: with it, a worker that finds new events wakes a sleeping
//! sibling to share them (a `futex` call, and a context switch for the sibling, which usually finds
//! nothing to do). On a proxy, where each event is a few microseconds of work, that cost is of the
//! same order as the work; `docs/benchmarks.md` has the measurements.
//!
//! The connection cap is one count for the whole process, shared by the workers.
//!
//! With `--busy-poll`, a worker that just had work polls for events for that long before it
//! sleeps ([`crate::busy`]).
//!
//! `--pin-workers` ties worker `i` to the `i`-th CPU the process may run on (wrapping around when
//! there are more workers than CPUs), as nginx's `worker_cpu_affinity auto` and HAProxy's
//! `cpu-map` do. Without it the kernel places the threads, and on a 2-core machine shared with
//! the load generator it now and then queues both workers on one core, where one waits for the
//! other for milliseconds with all its connections; those waits set ringlb's keep-alive p99, and
//! pinning keeps the workers apart (`docs/benchmarks.md`, "Two workers on one core"). It is off
//! by default because a pinned thread cannot move away from a core that something else keeps
//! busy (bulk transfers lost 5-10 % on the benchmark's shared cores): it suits a machine or a
//! cpuset given to ringlb.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use ringlb_core::Directory;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::busy;
use crate::config::ProxyConfig;
use crate::listener;

/// The running data plane.
#[derive(Debug)]
pub struct DataPlane {
    /// One per worker, resolved when its listener has drained.
    done: Vec<oneshot::Receiver<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts one worker thread per group of listeners; a worker accepts on every listener of its
/// group (one, unless it took over more sockets from an older ringlb than it has workers, see
/// [`crate::handover`]). Every listener must be bound to the data port (with `SO_REUSEPORT` when
/// there is more than one), be listening, and be non-blocking.
///
/// `shutdown` stops every worker: each stops accepting, serves its listen backlogs, and drains
/// its own connections for `cfg.drain_timeout`.
///
/// With `pin`, worker `i` runs on CPU `cpus[i % cpus.len()]` of the CPUs the calling thread may
/// run on (see [`pin_plan`]). A CPU list that cannot be read, or a pin that the kernel refuses,
/// is logged and leaves the worker unpinned: it is a placement hint, not a reason to stop.
pub fn start(
    listeners: Vec<Vec<std::net::TcpListener>>,
    directory: Arc<Directory>,
    cfg: ProxyConfig,
    pin: bool,
    shutdown: CancellationToken,
) -> std::io::Result<DataPlane> {
    let plan = if pin {
        let allowed = core_affinity::get_core_ids().unwrap_or_default();
        let plan = pin_plan(&allowed, listeners.len());
        if plan.is_empty() {
            tracing::warn!(
                "--pin-workers: cannot read the CPUs this process may use; workers are not pinned"
            );
        } else {
            let cpus: Vec<usize> = plan.iter().map(|c| c.id).collect();
            tracing::info!(
                ?cpus,
                "data-plane workers pinned, worker i to the i-th CPU listed"
            );
        }
        plan
    } else {
        Vec::new()
    };
    let served = Arc::new(AtomicUsize::new(0));
    let mut plane = DataPlane {
        done: Vec::with_capacity(listeners.len()),
        threads: Vec::with_capacity(listeners.len()),
    };
    for (i, group) in listeners.into_iter().enumerate() {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        let busy = !cfg.busy_poll.is_zero();
        if busy {
            let window = cfg.busy_poll;
            builder.on_thread_park(move || busy::before_park(window));
        }
        let rt = builder.build()?;
        let (tx, rx) = oneshot::channel();
        let (directory, cfg, served, shutdown) = (
            directory.clone(),
            cfg.clone(),
            served.clone(),
            shutdown.clone(),
        );
        let cpu = plan.get(i).copied();
        let thread = std::thread::Builder::new()
            .name(format!("ringlb-data-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if !core_affinity::set_for_current(cpu) {
                        tracing::warn!(
                            worker = i,
                            cpu = cpu.id,
                            "the kernel refused to pin this worker; it is not pinned"
                        );
                    }
                }
                // The accept loops run as tasks, not as the `block_on` future itself: a wake-up
                // of that future goes through the runtime's eventfd (a `write` and one more
                // event), a task's does not.
                rt.block_on(async move {
                    if busy {
                        tokio::spawn(busy::spinner());
                    }
                    let loops: Vec<_> = group
                        .into_iter()
                        .map(|l| {
                            let serving = listener::run(
                                l,
                                directory.clone(),
                                cfg.clone(),
                                served.clone(),
                                shutdown.clone(),
                            );
                            tokio::spawn(busy::counted(serving))
                        })
                        .collect();
                    for l in loops {
                        let _ = l.await;
                    }
                });
                // Tasks cut by the drain period are dropped with the runtime, before `done`.
                drop(rt);
                let _ = tx.send(());
            })?;
        plane.done.push(rx);
        plane.threads.push(thread);
    }
    Ok(plane)
}

impl DataPlane {
    /// Resolves once every worker has stopped (after `shutdown` and the drain).
    pub async fn wait(self) {
        for rx in self.done {
            // An error means the worker's thread ended without saying so (a panic): it is over
            // either way.
            let _ = rx.await;
        }
        // Each thread has sent its last word, so these joins return at once.
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The CPU of each of `workers` workers: worker `i` gets `allowed[i % allowed.len()]`, so the
/// workers spread over the allowed CPUs in order and share them only when there are more
/// workers than CPUs. Empty when `allowed` is.
pub fn pin_plan(allowed: &[core_affinity::CoreId], workers: usize) -> Vec<core_affinity::CoreId> {
    if allowed.is_empty() {
        return Vec::new();
    }
    (0..workers).map(|i| allowed[i % allowed.len()]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_affinity::CoreId;

    fn ids(v: &[usize]) -> Vec<CoreId> {
        v.iter().map(|&id| CoreId { id }).collect()
    }

    #[test]
    fn workers_spread_over_the_allowed_cpus_in_order() {
        let plan = |allowed: &[usize], n| -> Vec<usize> {
            pin_plan(&ids(allowed), n).iter().map(|c| c.id).collect()
        };
        assert_eq!(plan(&[0, 1], 2), [0, 1]);
        // a cpuset that leaves out some CPUs: only the listed ones are used
        assert_eq!(plan(&[2, 5, 7], 2), [2, 5]);
        // more workers than CPUs: they wrap around
        assert_eq!(plan(&[3, 4], 5), [3, 4, 3, 4, 3]);
        assert_eq!(plan(&[], 4), Vec::<usize>::new());
    }
}
