//! Zero-copy forwarding between two sockets.
//!
//! On Linux each direction moves bytes socket → pipe → socket with `splice(2)`: the kernel hands
//! page references from one socket to the other, and no byte is copied into user space. Elsewhere
//! a buffered copy does the same job.
//!
//! A read that returns less than was asked for does not by itself prove that the socket is
//! drained, and tokio's readiness is edge-triggered: a task that stops reading before the socket
//! says EAGAIN may never be woken for the bytes left behind. A `recv` into a buffer stops early
//! only when the socket has nothing more, so a short `recv` proves it. A `splice` can also stop
//! because the pipe ran out of slots (one slot per page fragment, holding as little as one
//! byte), so a short splice proves the socket drained only when it moved fewer bytes than the
//! pipe has slots. Pipes are therefore made wide (1 MiB, 256 slots; see `WIDE`): a request or
//! response under 256 bytes, the keep-alive case, then needs no call that fails with EAGAIN,
//! and a message costs two `splice` calls per direction, as a copy costs a `recv` and a `send`.
//! Either way tokio clears the readiness only if no new event arrived meanwhile.
//!
//! [`Mode::Auto`] (`--splice auto`) first moves each message through a per-thread buffer and
//! switches a direction to `splice(2)` once a read fills that buffer, i.e. once the direction
//! carries bulk data, the way HAProxy's `splice-auto` does. Once the peer's FIN has arrived, a
//! read that drains the socket is known to be the last one, so the read that would return EOF is
//! not made either. The buffer belongs to the worker thread and is used only between two awaits,
//! so an open connection holds no buffer at all.
//!
//! Half-close is passed through: when one side finishes sending (EOF), the other side's write
//! half is shut down and the opposite direction goes on until it finishes too. A connection with
//! no bytes moving either way for the idle timeout is closed. An error in either direction (a
//! reset) ends both.
//!
//! This is the only module with `unsafe` code: the `pipe2` and `splice` calls.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a forwarded connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides finished sending.
    Eof,
    /// No bytes moved for the idle timeout.
    Idle,
    /// A socket error (usually a reset) ended it.
    Error,
    /// ringlb was shutting down and the drain period ran out.
    Shutdown,
}

impl End {
    /// A word for the log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            End::Eof => "eof",
            End::Idle => "idle",
            End::Error => "error",
            End::Shutdown => "shutdown",
        }
    }
}

/// How bytes are moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// `splice(2)` from the first byte: no byte ever crosses into user space.
    #[default]
    Always,
    /// Copy small messages, splice once a direction carries bulk data.
    Auto,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Mode::Always),
            "auto" => Ok(Mode::Auto),
            _ => Err(format!(
                "unknown splice mode {s:?} (expected always or auto)"
            )),
        }
    }
}

/// Byte counts of one forwarded connection, readable while it runs.
#[derive(Debug, Default)]
pub struct Counts {
    /// Client → replica.
    pub up: AtomicU64,
    /// Replica → client.
    pub down: AtomicU64,
    /// Milliseconds since `start` of the last transfer, for the idle timeout.
    last: AtomicU64,
    /// Set by the first direction to reach EOF.
    one_ended: std::sync::atomic::AtomicBool,
}

/// Forwards bytes between `client` and `replica` until both directions end, a reset, or
/// `idle` passes with nothing moving.
pub async fn forward(
    client: &TcpStream,
    replica: &TcpStream,
    idle: Duration,
    mode: Mode,
    counts: &Counts,
) -> End {
    let start = Instant::now();
    let both = async {
        tokio::try_join!(
            pump(client, replica, mode, &counts.up, counts, start),
            pump(replica, client, mode, &counts.down, counts, start),
        )
    };
    tokio::select! {
        r = both => if r.is_ok() { End::Eof } else { End::Error },
        _ = idle_watch(&counts.last, start, idle) => End::Idle,
    }
}

/// Resolves once `idle` has passed since the last transfer.
async fn idle_watch(last: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

fn touch(last: &AtomicU64, start: Instant) {
    last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// Passes an EOF on: shuts down the write half of `s`, so its peer reads EOF while the other
/// direction goes on. The second direction to end skips it: both sockets are closed right after,
/// and the close sends the FIN, so the `shutdown` call would only cost a syscall.
fn pass_eof(s: &TcpStream, counts: &Counts) {
    if !counts.one_ended.swap(true, Ordering::AcqRel) {
        let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(target_os = "linux")]
use linux::pump;

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use tokio::io::Interest;

    /// Bytes moved per `splice` call: the default pipe capacity (16 pages).
    const CHUNK: usize = 64 * 1024;

    /// Bytes moved per `splice` call once a direction carries bulk data (a read filled half of
    /// [`CHUNK`]); a pipe narrower than this grows to it (`F_SETPIPE_SZ`), so a bulk transfer
    /// takes a quarter of the `splice` calls. On the 64 MiB workload (`bench/compare.sh`, see
    /// docs/benchmarks.md): 1.70 → 2.10 GB/s and 0.41 → 0.25 CPU seconds per GB. 1 MiB per call
    /// moved no more bytes than 256 KiB. A grown pipe shrinks back before it returns to the
    /// pool; where the per-user limit refuses the growth, the direction goes on as it is.
    const BULK_CHUNK: usize = 256 * 1024;

    /// The capacity of a wide pipe: 256 slots of a 4 KiB page, so a splice of up to 255 bytes
    /// that returns short proves the socket drained (module docs). On the keep-alive workload
    /// this takes the default from 6 to 4 system calls per request (docs/benchmarks.md). The
    /// kernel allocates the slot array (16 KiB per pipe) at once, but pages only for bytes in
    /// the pipe.
    const WIDE: usize = 1024 * 1024;

    /// At most this many wide pipes exist at once (two per connection): 4 MiB of slot arrays.
    /// Later pipes keep the kernel's default size and pay the EAGAIN call.
    const WIDE_MAX: usize = 256;

    /// Wide pipes now open.
    static WIDE_OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Whether ringlb may make wide pipes. Pipe pages count against a per-user budget
    /// (`/proc/sys/fs/pipe-user-pages-soft`, 16384 pages by default), and once a user is over it
    /// every new pipe of that user gets 2 slots instead of 16, which would slow every splice of
    /// every program running as that user. A process with `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`
    /// is exempt from the budget (root on the host is; root in a default Docker container is
    /// not), as is everyone when the budget is 0.
    static WIDE_ALLOWED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let soft = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft").unwrap_or_default();
        pipe_budget_exempt(&status, &soft)
    });

    /// The page size: one pipe slot holds at most one page.
    static PAGE: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            n as usize
        } else {
            4096
        }
    });

    /// Size of the per-thread copy buffer; a read that fills it marks a direction as bulk.
    const SCRATCH: usize = 16 * 1024;

    thread_local! {
        static BUF: std::cell::RefCell<Box<[u8]>> =
            std::cell::RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
    }

    /// What one read-and-write through the thread's buffer did.
    enum Step {
        Wait,
        Eof,
        Moved { copied: Copied, rest: Vec<u8> },
    }

    /// One message copied.
    struct Copied {
        /// Its length.
        n: usize,
        /// It filled the buffer: the direction carries bulk data.
        full: bool,
        /// The source's FIN had arrived before the read, and the read drained the socket: the
        /// next read can only return EOF, so it need not be made.
        last: bool,
    }

    /// Copies one message from `src` to `dst`, or returns `None` at EOF. Bytes `dst` cannot take
    /// at once are kept on the heap until it can.
    async fn copy_once(src: &TcpStream, dst: &TcpStream) -> io::Result<Option<Copied>> {
        let fd = src.as_raw_fd();
        // Whether the FIN had arrived when the socket last became readable (see `pump`).
        let mut closing = false;
        loop {
            let step = BUF.with(|cell| -> io::Result<Step> {
                let mut buf = cell.borrow_mut();
                let mut got = 0;
                let r = src.try_io(Interest::READABLE, || {
                    got = recv(fd, &mut buf)?;
                    if got > 0 && got < buf.len() {
                        // Drained: let tokio clear the readiness, as its own reads do.
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(got)
                    }
                });
                match r {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    Err(_) if got == 0 => return Ok(Step::Wait),
                    Ok(0) => return Ok(Step::Eof),
                    _ => {}
                }
                let mut off = 0;
                while off < got {
                    match dst.try_io(Interest::WRITABLE, || send(dst, &buf[off..got], closing)) {
                        Ok(m) => off += m,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                let full = got == buf.len();
                Ok(Step::Moved {
                    copied: Copied {
                        n: got,
                        full,
                        last: closing && !full,
                    },
                    rest: buf[off..got].to_vec(),
                })
            })?;
            match step {
                Step::Wait => closing = src.ready(Interest::READABLE).await?.is_read_closed(),
                Step::Eof => return Ok(None),
                Step::Moved { copied, rest } => {
                    write_all(dst, &rest).await?;
                    return Ok(Some(copied));
                }
            }
        }
    }

    /// One non-blocking `recv`.
    fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid, writable slice of `buf.len()` bytes for the whole call, and
        // `fd` is an open socket borrowed from a TcpStream the caller holds.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// One non-blocking `send`; `more` adds `MSG_MORE` (see [`pump`]).
    fn send(s: &TcpStream, bytes: &[u8], more: bool) -> io::Result<usize> {
        let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        if more {
            flags |= libc::MSG_MORE;
        }
        socket2::SockRef::from(s).send_with_flags(bytes, flags)
    }

    /// Whether the per-user pipe budget does not apply: `status` is `/proc/self/status` (its
    /// `CapEff` line), `soft` the content of `/proc/sys/fs/pipe-user-pages-soft`.
    fn pipe_budget_exempt(status: &str, soft: &str) -> bool {
        const CAP_SYS_ADMIN: u32 = 21;
        const CAP_SYS_RESOURCE: u32 = 24;
        if soft.trim() == "0" {
            return true;
        }
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        eff & (1 << CAP_SYS_ADMIN | 1 << CAP_SYS_RESOURCE) != 0
    }

    /// A non-blocking pipe, the kernel buffer between two sockets.
    struct Pipe {
        rd: OwnedFd,
        wr: OwnedFd,
        /// Its capacity in bytes, as the kernel reported it.
        cap: usize,
        /// The capacity it had when made, which it gets back before it returns to the pool.
        made: usize,
        /// It counts in [`WIDE_OPEN`].
        wide: bool,
    }

    impl Drop for Pipe {
        fn drop(&mut self) {
            if self.wide {
                WIDE_OPEN.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Empty pipes kept for the next connection: a new pipe costs a `pipe2` call now and two
    /// `close` calls later, on every direction of every connection. 128 pipes (two for each of
    /// 64 connections) hold 256 descriptors and no memory until used; 64 pipes were too few for
    /// 50 clients opening a connection per request (a `pipe2` every 9 connections). A pooled
    /// pipe was freed by a connection that ended, so the pool never takes a descriptor the
    /// connection cap counts on.
    static POOL: std::sync::Mutex<Vec<Pipe>> = std::sync::Mutex::new(Vec::new());
    const POOL_MAX: usize = 128;

    impl Pipe {
        /// A pipe from the pool, or a new one.
        fn take() -> io::Result<Pipe> {
            let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match pooled {
                Some(p) => Ok(p),
                None => Pipe::new(),
            }
        }

        /// Returns an empty pipe to the pool, at the capacity it was made with (one that cannot
        /// shrink back is dropped instead).
        fn give_back(mut self) {
            if self.cap != self.made {
                match self.resize(self.made) {
                    Ok(cap) => self.cap = cap,
                    Err(_) => return,
                }
            }
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        }

        /// Sets the pipe's capacity (`F_SETPIPE_SZ`); returns the capacity the kernel chose.
        fn resize(&self, bytes: usize) -> io::Result<usize> {
            // SAFETY: `wr` is an open pipe descriptor owned by `self`; F_SETPIPE_SZ takes an int.
            let r = unsafe {
                libc::fcntl(
                    self.wr.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    bytes as libc::c_int,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        }

        /// The capacity (`F_GETPIPE_SZ`).
        fn size(&self) -> io::Result<usize> {
            // SAFETY: `wr` is an open pipe descriptor owned by `self`.
            let r = unsafe { libc::fcntl(self.wr.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        }

        /// Whether a splice into this pipe, empty before, that moved `n` bytes left the source
        /// socket drained: every slot holds at least one byte, so fewer bytes than slots means
        /// the pipe did not fill, and the splice stopped because the socket had no more (or at
        /// its FIN, which epoll reports on its own).
        fn drained_by(&self, n: usize) -> bool {
            n > 0 && n < self.cap / *PAGE
        }

        /// A new pipe: wide while [`WIDE_MAX`] allows and the budget does not apply, else the
        /// kernel's default.
        fn new() -> io::Result<Pipe> {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: `fds` is a valid, writable array of two ints, which is what pipe2 expects;
            // it writes both only on success.
            let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: pipe2 succeeded, so both descriptors are open and nothing else owns them;
            // each is wrapped exactly once and closed when its OwnedFd drops.
            let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            let mut p = Pipe {
                rd,
                wr,
                cap: 0,
                made: 0,
                wide: false,
            };
            if *WIDE_ALLOWED
                && WIDE_OPEN
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < WIDE_MAX).then_some(n + 1)
                    })
                    .is_ok()
            {
                p.wide = true; // counted: Drop uncounts it
                match p.resize(WIDE) {
                    Ok(cap) => p.cap = cap,
                    Err(_) => {
                        p.wide = false;
                        WIDE_OPEN.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
            if !p.wide {
                p.cap = p.size()?;
            }
            p.made = p.cap;
            Ok(p)
        }
    }

    /// One non-blocking `splice` call; `more` adds `SPLICE_F_MORE` (see [`pump`]).
    fn splice(from: RawFd, to: RawFd, len: usize, more: bool) -> io::Result<usize> {
        let mut flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
        if more {
            flags |= libc::SPLICE_F_MORE;
        }
        // SAFETY: both descriptors are open for the whole call (their owners, a TcpStream and a
        // Pipe, are borrowed by the caller); null offsets are required for sockets and pipes;
        // the call touches no user memory.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                flags,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Moves bytes from `src` to `dst` until `src` ends, then shuts down `dst`'s write half.
    ///
    /// Once the source's FIN has arrived (epoll reported `EPOLLRDHUP` with the readiness this
    /// read waited for), the bytes read are the last ones, and they go out with `SPLICE_F_MORE`
    /// (`MSG_MORE` in the copy path): the kernel holds them until the `shutdown` (or `close`)
    /// that follows at once, so the data and the FIN leave in one segment instead of two, as
    /// HAProxy's do. A FIN seen by epoll is final (tokio keeps the closed state), and TCP queues
    /// it behind all the data, so nothing can follow those bytes but the EOF, which the next read
    /// returns at once. A read that did not wait learns nothing new and sends as usual: asking
    /// for the readiness before every read would cost the keep-alive path for nothing.
    pub(super) async fn pump(
        src: &TcpStream,
        dst: &TcpStream,
        mode: Mode,
        count: &AtomicU64,
        counts: &Counts,
        start: Instant,
    ) -> io::Result<()> {
        if mode == Mode::Auto {
            loop {
                let Some(copied) = copy_once(src, dst).await? else {
                    pass_eof(dst, counts);
                    return Ok(());
                };
                count.fetch_add(copied.n as u64, Ordering::Relaxed);
                touch(&counts.last, start);
                if copied.last {
                    pass_eof(dst, counts);
                    return Ok(());
                }
                if copied.full {
                    break; // bulk data: splice from here on
                }
            }
        }
        let mut pipe = Pipe::take()?;
        let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
        let (pipe_rd, pipe_wr) = (pipe.rd.as_raw_fd(), pipe.wr.as_raw_fd());
        let mut chunk = CHUNK;
        let mut bulk = false; // tried once: a refused growth is not asked for again
        loop {
            // Fill the pipe from the source. The pipe is empty here, so EAGAIN can only mean the
            // socket has nothing to read.
            let mut closing = false;
            let n = loop {
                let mut got = 0;
                let r = src.try_io(Interest::READABLE, || {
                    got = splice(src_fd, pipe_wr, chunk, false)?;
                    if pipe.drained_by(got) {
                        // Let tokio clear the readiness, as an EAGAIN would.
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(got)
                    }
                });
                match r {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        closing = src.ready(Interest::READABLE).await?.is_read_closed();
                    }
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                pass_eof(dst, counts);
                pipe.give_back();
                return Ok(());
            }
            if !bulk && n >= CHUNK / 2 {
                bulk = true;
                if pipe.cap < BULK_CHUNK {
                    if let Ok(cap) = pipe.resize(BULK_CHUNK) {
                        pipe.cap = cap;
                    }
                }
                chunk = pipe.cap.clamp(CHUNK, BULK_CHUNK);
            }
            // Empty it into the destination.
            let mut left = n;
            while left > 0 {
                match dst.try_io(Interest::WRITABLE, || {
                    splice(pipe_rd, dst_fd, left, closing)
                }) {
                    Ok(m) => left -= m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
                    Err(e) => return Err(e),
                }
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
            touch(&counts.last, start);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::io::Write;
        use std::net::{TcpListener, TcpStream as StdStream};

        #[test]
        fn budget_exemption_reads_the_capabilities() {
            let root = "Name:\tringlb\nCapEff:\t000001ffffffffff\n";
            let docker = "CapEff:\t00000000a80425fb\n"; // Docker's default set
            let resource = "CapEff:\t0000000001000000\n"; // CAP_SYS_RESOURCE alone
            assert!(pipe_budget_exempt(root, "16384\n"));
            assert!(!pipe_budget_exempt(docker, "16384\n"));
            assert!(pipe_budget_exempt(resource, "16384\n"));
            assert!(pipe_budget_exempt(docker, "0\n"), "no budget at all");
            assert!(!pipe_budget_exempt("garbage", "16384"));
        }

        /// A pipe of `bytes` capacity, or `None` where the kernel refuses that size.
        fn pipe_of(bytes: usize) -> Option<Pipe> {
            let mut p = Pipe::new().unwrap();
            p.cap = p.resize(bytes).ok()?;
            Some(p)
        }

        /// Sends `segments` segments of `each` bytes, each from its own page of `file` with
        /// `sendfile`: the receiver cannot merge them, so each takes a pipe slot of its own.
        fn send_scattered(tx: &StdStream, file: &std::fs::File, segments: usize, each: usize) {
            for k in 0..segments {
                let mut off = (k * *PAGE) as libc::off_t;
                // SAFETY: both descriptors are open; `off` is a valid, writable offset.
                let n = unsafe { libc::sendfile(tx.as_raw_fd(), file.as_raw_fd(), &mut off, each) };
                assert_eq!(n, each as isize);
            }
        }

        /// The kernel fact the drain rule rests on. A peer sends `segments` separate segments of
        /// `each` bytes (`scattered`: from pages of their own, so none merge in the receive
        /// queue); once they have all arrived, the socket is emptied through `pipe` (one splice,
        /// then the pipe is emptied, and so on). Whenever `drained_by` says a splice drained the
        /// socket, the next splice must fail with EAGAIN; and every byte arrives.
        fn check(pipe: &Pipe, segments: usize, each: usize, scattered: Option<&std::fs::File>) {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut tx = StdStream::connect(l.local_addr().unwrap()).unwrap();
            let (rx, _) = l.accept().unwrap();
            tx.set_nodelay(true).unwrap();
            // A send that cannot complete fails the test instead of hanging it.
            tx.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            match scattered {
                Some(file) => send_scattered(&tx, file, segments, each),
                None => {
                    for k in 0..segments {
                        tx.write_all(&vec![k as u8; each]).unwrap();
                    }
                }
            }
            let total = segments * each;
            // Wait until all of it is readable (SIOCINQ).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let mut queued: libc::c_int = 0;
                // SAFETY: FIONREAD writes one int through the valid pointer.
                unsafe { libc::ioctl(rx.as_raw_fd(), libc::FIONREAD, &mut queued) };
                if queued as usize == total {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "bytes did not arrive");
                std::thread::sleep(Duration::from_millis(2));
            }
            rx.set_nonblocking(true).unwrap();
            let mut sink = [0u8; 64 * 1024];
            let mut moved = 0;
            loop {
                let n = match splice(rx.as_raw_fd(), pipe.wr.as_raw_fd(), CHUNK, false) {
                    Ok(n) => n,
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                        break;
                    }
                };
                moved += n;
                let mut left = n;
                while left > 0 {
                    // SAFETY: `sink` is valid for its length; the pipe is open.
                    let r = unsafe {
                        libc::read(
                            pipe.rd.as_raw_fd(),
                            sink.as_mut_ptr().cast(),
                            left.min(sink.len()),
                        )
                    };
                    assert!(r > 0);
                    left -= r as usize;
                }
                if pipe.drained_by(n) {
                    let again = splice(rx.as_raw_fd(), pipe.wr.as_raw_fd(), CHUNK, false);
                    assert_eq!(
                        again.map_err(|e| e.kind()),
                        Err(io::ErrorKind::WouldBlock),
                        "{segments} × {each} B through {} slots: {n} B said drained",
                        pipe.cap / *PAGE
                    );
                    break;
                }
            }
            assert_eq!(moved, total, "{segments} × {each} B: every byte spliced");
        }

        #[test]
        fn a_short_splice_proves_a_drained_socket_only_under_the_slot_count() {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&vec![7u8; 1200 * *PAGE]).unwrap();
            let mut sizes = vec![2 * *PAGE, CHUNK];
            if pipe_of(WIDE).is_some() {
                sizes.push(WIDE);
            }
            for bytes in sizes {
                let Some(pipe) = pipe_of(bytes) else { continue };
                let slots = pipe.cap / *PAGE;
                for segments in [1, 2, slots - 1, slots, slots + 1, 3 * slots + 5] {
                    for each in [1, 3, 40] {
                        check(&pipe, segments, each, None);
                        check(&pipe, segments, each, Some(&file));
                    }
                }
            }
        }

        #[test]
        fn new_pipes_are_wide_while_allowed() {
            let p = Pipe::new().unwrap();
            if *WIDE_ALLOWED {
                assert_eq!(p.cap, WIDE);
                assert!(p.wide);
            } else {
                assert!(!p.wide);
            }
            assert_eq!(p.made, p.cap);
        }
    }
}

#[cfg(not(target_os = "linux"))]
use portable::pump;

#[cfg(not(target_os = "linux"))]
mod portable {
    use super::*;

    /// Buffered copy for systems without `splice(2)`.
    pub(super) async fn pump(
        src: &TcpStream,
        dst: &TcpStream,
        _mode: Mode,
        count: &AtomicU64,
        counts: &Counts,
        start: Instant,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            src.readable().await?;
            let n = match src.try_read(&mut buf) {
                Ok(0) => {
                    pass_eof(dst, counts);
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let mut off = 0;
            while off < n {
                dst.writable().await?;
                match dst.try_write(&buf[off..n]) {
                    Ok(m) => off += m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
            touch(&counts.last, start);
        }
    }
}

/// Writes all of `bytes` to `s` (the replay of what was read before forwarding started).
pub async fn write_all(s: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match s.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
