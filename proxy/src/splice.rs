//! Zero-copy forwarding between two sockets.
//!
//! On Linux each direction moves bytes socket → pipe → socket with `splice(2)`: the kernel hands
//! page references from one socket to the other, and no byte is copied into user space. Elsewhere
//! a buffered copy does the same job.
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

/// Byte counts of one forwarded connection, readable while it runs.
#[derive(Debug, Default)]
pub struct Counts {
    /// Client → replica.
    pub up: AtomicU64,
    /// Replica → client.
    pub down: AtomicU64,
    /// Milliseconds since `start` of the last transfer, for the idle timeout.
    last: AtomicU64,
}

/// Forwards bytes between `client` and `replica` until both directions end, a reset, or
/// `idle` passes with nothing moving.
pub async fn forward(
    client: &TcpStream,
    replica: &TcpStream,
    idle: Duration,
    counts: &Counts,
) -> End {
    let start = Instant::now();
    let both = async {
        tokio::try_join!(
            pump(client, replica, &counts.up, &counts.last, start),
            pump(replica, client, &counts.down, &counts.last, start),
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

/// Shuts down the write half of `s`: the peer reads EOF, the other direction goes on.
fn close_write(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
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

    /// A non-blocking pipe, the kernel buffer between two sockets.
    struct Pipe {
        rd: OwnedFd,
        wr: OwnedFd,
    }

    /// Empty pipes kept for the next connection: a new pipe costs a `pipe2` call now and two
    /// `close` calls later, on every direction of every connection. 64 pipes hold 128
    /// descriptors and no memory until used.
    static POOL: std::sync::Mutex<Vec<Pipe>> = std::sync::Mutex::new(Vec::new());
    const POOL_MAX: usize = 64;

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

    /// One non-blocking `splice` call.
    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
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
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Moves bytes from `src` to `dst` until `src` ends, then shuts down `dst`'s write half.
    pub(super) async fn pump(
        src: &TcpStream,
        dst: &TcpStream,
        count: &AtomicU64,
        last: &AtomicU64,
        start: Instant,
    ) -> io::Result<()> {
        let pipe = Pipe::take()?;
        let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
        let (pipe_rd, pipe_wr) = (pipe.rd.as_raw_fd(), pipe.wr.as_raw_fd());
        loop {
            // Fill the pipe from the source. The pipe is empty here, so EAGAIN can only mean the
            // socket has nothing to read.
            let n = loop {
                match src.try_io(Interest::READABLE, || splice(src_fd, pipe_wr, CHUNK)) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable().await?,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                close_write(dst);
                pipe.give_back();
                return Ok(());
            }
            // Empty it into the destination.
            let mut left = n;
            while left > 0 {
                match dst.try_io(Interest::WRITABLE, || splice(pipe_rd, dst_fd, left)) {
                    Ok(m) => left -= m,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
                    Err(e) => return Err(e),
                }
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
            touch(last, start);
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
        count: &AtomicU64,
        last: &AtomicU64,
        start: Instant,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            src.readable().await?;
            let n = match src.try_read(&mut buf) {
                Ok(0) => {
                    close_write(dst);
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
            touch(last, start);
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
