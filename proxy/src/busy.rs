//! Bounded busy polling (`--busy-poll`), off by default.
//!
//! A worker with nothing left to run sleeps in `epoll_wait` until an event arrives. On the 2-core
//! benchmark machine ringlb's workers slept about three times as often per connection as
//! HAProxy's threads, and the machine idled about twice as long in front of ringlb
//! (`docs/benchmarks.md`, "Busy polling"). With `--busy-poll DURATION`, a worker that ran a
//! connection task less than DURATION ago does not sleep: it offers its core to any other thread
//! that wants it (`sched_yield`) and then asks the kernel for events without blocking, again and
//! again, until an event arrives or DURATION has passed with none. Then it sleeps as usual, so an
//! idle ringlb uses no CPU.
//!
//! It is HAProxy's `busy-polling`, bounded in time and yielding the core: HAProxy's never
//! sleeps. It spends CPU to save sleeps and wake-ups, and is off by default, as HAProxy's is.
//!
//! How it hooks into tokio: the runtime calls [`before_park`] each time it is about to
//! block. While the worker is within DURATION of its last work, the hook wakes [`spinner`], a
//! task that does nothing; with a task ready, the runtime polls for events with a zero timeout
//! instead of blocking, runs what they woke, and comes back to the hook. Work is counted by
//! [`counted`], which wraps every connection task and the accept loop.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

thread_local! {
    /// Polls of counted tasks on this thread.
    static POLLS: Cell<u64> = const { Cell::new(0) };
    /// `POLLS` when the park hook last ran.
    static SEEN: Cell<u64> = const { Cell::new(0) };
    /// When the park hook last saw work done.
    static LAST_WORK: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The spinner's waker, while it waits to be woken.
    static SPINNER: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

/// Runs `f`, counting each of its polls as work done by this thread.
pub(crate) fn counted<F: Future>(f: F) -> Counted<F> {
    Counted { f }
}

pin_project_lite::pin_project! {
    /// A future that counts its polls (see [`counted`]). A struct, not an `async fn`: an
    /// `async fn` would keep its argument and its pinned copy side by side, twice the size of
    /// the connection's future, in every connection's task.
    pub(crate) struct Counted<F> {
        #[pin]
        f: F,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get().wrapping_add(1)));
        self.project().f.poll(cx)
    }
}

/// A task that never finishes and does nothing when polled: waking it makes the runtime poll for
/// events without blocking. Spawn one per worker runtime.
pub(crate) async fn spinner() {
    std::future::poll_fn(|cx| {
        SPINNER.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
        Poll::<()>::Pending
    })
    .await
}

/// The park hook of a worker thread: called by the runtime when it has no task to run and is
/// about to block; `window` is `--busy-poll`.
pub(crate) fn before_park(window: Duration) {
    let polls = POLLS.with(Cell::get);
    let now = Instant::now();
    if SEEN.with(|s| s.replace(polls)) != polls {
        LAST_WORK.with(|l| l.set(Some(now)));
    }
    let recent = LAST_WORK
        .with(Cell::get)
        .is_some_and(|t| now.duration_since(t) < window);
    if recent {
        // Another thread that wants this core (a client, a replica) runs first; the worker
        // stays runnable, so it needs no wake-up to come back.
        std::thread::yield_now();
        if let Some(w) = SPINNER.with(|w| w.borrow_mut().take()) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Runs a current-thread runtime with the hook, on a thread of its own (the hook's state
    /// is per thread): a task does a little work, then the runtime waits 150 ms and another
    /// 200 ms. Returns how many times it went through the park hook in each wait (each time
    /// either a real sleep or, within the window, one zero-timeout poll).
    fn parks(window: Duration) -> (usize, usize) {
        std::thread::spawn(move || {
            let unparks = Arc::new(AtomicUsize::new(0));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(move || before_park(window))
                .on_thread_unpark({
                    let unparks = unparks.clone();
                    move || {
                        unparks.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
                .unwrap();
            rt.block_on(async {
                tokio::spawn(spinner());
                tokio::spawn(counted(async {
                    for _ in 0..10 {
                        tokio::task::yield_now().await;
                    }
                }))
                .await
                .unwrap();
                let start = unparks.load(Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(150)).await;
                let first = unparks.load(Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let second = unparks.load(Ordering::Relaxed);
                (first - start, second - first)
            })
        })
        .join()
        .unwrap()
    }

    #[test]
    fn counting_adds_no_copy_of_the_future() {
        let f = async {
            let buf = [7u8; 1000];
            tokio::task::yield_now().await;
            buf.iter().map(|&b| usize::from(b)).sum::<usize>()
        };
        let inner = std::mem::size_of_val(&f);
        let outer = std::mem::size_of_val(&counted(f));
        assert_eq!(
            outer, inner,
            "the wrapper is the future itself, nothing more"
        );
    }

    #[test]
    fn spins_within_the_window_and_sleeps_after_it() {
        // Without a window a wait is one sleep. With a 100 ms window the worker polls over and
        // over until the window is over (even on a loaded machine, where each `sched_yield` may
        // give the core away for a few ms, 100 ms make dozens of trips), then sleeps.
        let (first, second) = parks(Duration::ZERO);
        assert!(
            first <= 3 && second <= 3,
            "no window: it sleeps ({first}, {second} trips)"
        );
        let (first, second) = parks(Duration::from_millis(100));
        assert!(
            first > 20,
            "a 100 ms window polls over and over ({first} trips)"
        );
        assert!(second <= 3, "after the window it sleeps ({second} trips)");
    }
}
