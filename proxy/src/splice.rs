//! Zero-copy forwarding between two sockets.
//!
//! On Linux each direction moves bytes socket → pipe → socket with `splice(2)`: the kernel hands
//! page references from one socket to the other, and no byte is copied into user space. Elsewhere
//! a buffered copy does the same job.
//!
//! [`Mode::Auto`] (`--splice auto`) first moves each message through a per-thread buffer and
//! switches a direction to `splice(2)` once a read fills that buffer, i.e. once the direction
//! carries bulk data, the way HAProxy's `splice-auto` does. For small messages a copy is cheaper
//! than splicing: a read that returns less than the buffer proves the socket is drained, so
//! waiting for the next message costs no extra call, while a splice that returns less proves
//! nothing (it may have stopped at the pipe's 16 slots) and needs one more call that fails with
//! EAGAIN; and once the peer's FIN has arrived too, a read that drains the socket is known to be
//! the last one, so the read that would return EOF is not made either. The buffer belongs to the
//! worker thread and is used only between two awaits, so an open connection holds no buffer at
//! all.
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

    /// The pipe capacity of a direction that carries bulk data: once a read fills half the
    /// default pipe, the pipe grows to this (`F_SETPIPE_SZ`), so a bulk transfer takes a quarter
    /// of the `splice` calls. On the 64 MiB workload (`bench/compare.sh`, see
    /// docs/benchmarks.md): 1.70 → 2.10 GB/s and 0.41 → 0.25 CPU seconds per GB. 1 MiB moved no
    /// more bytes than 256 KiB, saved a little more CPU, and counts four times as many pages
    /// against the per-user pipe limit (`/proc/sys/fs/pipe-user-pages-soft`). The pipe shrinks
    /// back before it returns to the pool; where the limit refuses the growth, the direction
    /// goes on with the default pipe.
    const BULK_CHUNK: usize = 256 * 1024;

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

    /// A non-blocking pipe, the kernel buffer between two sockets.
    struct Pipe {
        rd: OwnedFd,
        wr: OwnedFd,
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

        /// Returns an empty pipe to the pool (a pipe still holding bytes is dropped instead).
        fn give_back(self) {
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
            Ok(Pipe { rd, wr })
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
        let pipe = Pipe::take()?;
        let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
        let (pipe_rd, pipe_wr) = (pipe.rd.as_raw_fd(), pipe.wr.as_raw_fd());
        let mut chunk = CHUNK;
        let mut grown = false; // tried once: a refused growth is not asked for again
        loop {
            // Fill the pipe from the source. The pipe is empty here, so EAGAIN can only mean the
            // socket has nothing to read.
            let mut closing = false;
            let n = loop {
                match src.try_io(Interest::READABLE, || splice(src_fd, pipe_wr, chunk, false)) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        closing = src.ready(Interest::READABLE).await?.is_read_closed();
                    }
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                pass_eof(dst, counts);
                // The pool keeps default-sized pipes only.
                if chunk == CHUNK || pipe.resize(CHUNK).is_ok() {
                    pipe.give_back();
                }
                return Ok(());
            }
            if !grown && n >= CHUNK / 2 {
                grown = true;
                if let Ok(size) = pipe.resize(BULK_CHUNK) {
                    chunk = size;
                }
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
