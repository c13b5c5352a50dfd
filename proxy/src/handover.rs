//! Listener handover: a restarted ringlb serves the very sockets the old one listened on.
//!
//! Without it, a new ringlb binds sockets of its own beside the old ones (`SO_REUSEPORT`) and the
//! old one closes its sockets when it stops. The kernel spreads connections over every socket of
//! the port, so a connection queued on an old socket after that socket's last `accept` is reset
//! by its close (`net.ipv4.tcp_migrate_req = 1` moves most of them, not all; docs/reliability.md).
//!
//! With `--handover PATH`, a ringlb that is serving listens on the UNIX socket PATH and hands its
//! data listeners to whoever connects, as file descriptors (`SCM_RIGHTS`), the way HAProxy's `-x`
//! and Envoy's hot restart pass theirs. A new ringlb with the same PATH asks there first. When an
//! older ringlb answers, the new one accepts on the same sockets instead of binding new ones, and
//! the old one's later close only drops its own references: the sockets, with their queues, stay
//! open in the new process. Then the new ringlb serves PATH itself, for the restart after it.
//!
//! - The wire: one message of the bytes [`GREETING`] with every listener in one `SCM_RIGHTS`
//!   control message, then the old ringlb closes the connection.
//! - Who may take them: the socket file is created with mode 0600, and a peer whose user is
//!   neither ringlb's nor root is refused (`SO_PEERCRED`), since a listening socket lets its
//!   holder take the port's traffic.
//! - A ringlb stops serving PATH when its shutdown starts, and removes the file if it is still
//!   its own (a newer ringlb may have replaced it). A file left by a ringlb that was killed is
//!   found dead (`ECONNREFUSED`) and replaced. A serving ringlb that finds PATH gone (a newer
//!   one replaced the file, then stopped first: a restart called off) makes it again.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use tokio_util::sync::CancellationToken;

/// The bytes that come with the descriptors: a version, so that a future format is refused
/// instead of misread.
pub const GREETING: &[u8] = b"ringlb-listeners 1\n";

/// Most listeners one message carries: one per data-plane worker, and workers default to the
/// core count. The kernel's own limit is 253 (`SCM_MAX_FD`).
pub const MAX_LISTENERS: usize = 64;

/// How long a new ringlb waits for the old one's answer. The old one answers from its control
/// runtime, which never blocks for long; a peer that accepts and says nothing is not a ringlb.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a serving ringlb checks that its socket file is still there (see [`Server::serve`]).
pub const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// Asks the ringlb serving `path` for its data listeners.
///
/// `Ok(None)` when nobody serves it: no file there, or a file left by a ringlb that is gone.
/// Every listener returned is a listening TCP socket, non-blocking. An error means something
/// answers at `path` but did not hand over usable listeners; the caller should stop rather than
/// bind new sockets beside ones it could not take.
pub fn take(path: &Path) -> io::Result<Option<Vec<std::net::TcpListener>>> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut bytes = [0u8; 64];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = match recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    ) {
        Ok(m) => m,
        Err(e) if e == rustix::io::Errno::AGAIN => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer within {} s: is it a ringlb handover socket?",
                    ANSWER_TIMEOUT.as_secs()
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // Collect the descriptors first: whatever goes wrong next, they are owned and get closed.
    let mut fds: Vec<OwnedFd> = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if msg.bytes == 0 {
        return Err(invalid(
            "the ringlb there closed the connection without handing anything over (it refuses \
             a peer of another user than its own)"
                .into(),
        ));
    }
    if &bytes[..msg.bytes] != GREETING {
        return Err(invalid(format!(
            "the answer {:?} is not a ringlb handover",
            String::from_utf8_lossy(&bytes[..msg.bytes])
        )));
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(invalid(format!(
            "more than {MAX_LISTENERS} listeners were sent"
        )));
    }
    if fds.is_empty() {
        return Err(invalid("the answer carried no listener".into()));
    }
    fds.into_iter()
        .map(|fd| {
            let socket = socket2::Socket::from(fd);
            let listening = socket.is_listener()?;
            let tcp = socket.r#type()? == socket2::Type::STREAM
                && socket.local_addr()?.as_socket().is_some();
            if !(listening && tcp) {
                return Err(invalid(
                    "a descriptor handed over is not a listening TCP socket".into(),
                ));
            }
            socket.set_nonblocking(true)?;
            Ok(socket.into())
        })
        .collect::<io::Result<Vec<_>>>()
        .map(Some)
}

/// The handover socket of a serving ringlb, bound and not yet answering.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
    /// Device and inode of the file bound at `path`, to tell it from a newer ringlb's.
    id: (u64, u64),
}

/// Checks that `path` can become a handover socket: its directory exists, and nothing but a
/// socket is there already.
pub fn check_path(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => Err(format!(
            "{} exists and is not a socket (ringlb would have to replace it)",
            path.display()
        )),
        _ => Ok(()),
    }
}

impl Server {
    /// Binds `path`, replacing the socket file of an older ringlb (whose listeners have been
    /// taken by then, or who is gone). A file there that is not a socket is an error, never
    /// removed.
    ///
    /// The socket is bound under a temporary name beside `path`, made 0600, then renamed over
    /// `path`: the replacement is atomic, so the older ringlb never finds the path missing in
    /// between (it would make its own file again, see [`Server::serve`]), and nobody can connect
    /// before the mode is set.
    pub fn bind(path: &Path) -> io::Result<Server> {
        check_path(path).map_err(|why| io::Error::new(io::ErrorKind::AlreadyExists, why))?;
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(name);
        let _ = std::fs::remove_file(&tmp);
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        listener.set_nonblocking(true)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Server {
            path: path.to_path_buf(),
            listener,
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Hands `listeners` to each peer that connects, until `stop`; then closes these copies of
    /// them and removes the socket file if it is still this ringlb's. Runs on a tokio runtime.
    ///
    /// A newer ringlb replaces the file once it serves, and removes it when it stops. If it
    /// stops while this one runs on (a restart called off), nobody answers at the path any more;
    /// this ringlb notices within [`RECLAIM_EVERY`] and answers there again.
    pub async fn serve(self, listeners: Vec<OwnedFd>, stop: CancellationToken) {
        let Server {
            path,
            listener,
            mut id,
        } = self;
        let mut listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "handover: cannot serve");
                None
            }
        };
        let mut check = tokio::time::interval(RECLAIM_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await; // the first tick is immediate
        let mut complained = false;
        while let Some(l) = &listener {
            tokio::select! {
                _ = stop.cancelled() => break,
                r = l.accept() => match r {
                    Ok((stream, _)) => hand_over(stream, &listeners, &path),
                    Err(e) => {
                        tracing::warn!(error = %e, path = %path.display(), "handover: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = check.tick() => {
                    let gone = matches!(
                        std::fs::symlink_metadata(&path),
                        Err(e) if e.kind() == io::ErrorKind::NotFound
                    );
                    if gone {
                        match Server::bind(&path).and_then(|s| {
                            Ok((tokio::net::UnixListener::from_std(s.listener)?, s.id))
                        }) {
                            Ok((l, new_id)) => {
                                listener = Some(l);
                                id = new_id;
                                complained = false;
                                tracing::info!(path = %path.display(), "handover: the socket file was gone; answering there again");
                            }
                            // Said once, not every second; it is tried again each second.
                            Err(e) if !complained => {
                                complained = true;
                                tracing::warn!(error = %e, path = %path.display(), "handover: the socket file is gone and cannot be made again");
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        // Close these references first: from here on only the workers hold the listeners, so
        // their close is the last one unless a newer ringlb took them.
        drop(listeners);
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == id);
        if ours {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Sends the listeners to one peer, if it may have them.
fn hand_over(stream: tokio::net::UnixStream, listeners: &[OwnedFd], path: &Path) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "handover: cannot tell who connected; refused");
            return;
        }
    };
    let me = rustix::process::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        tracing::warn!(
            uid = cred.uid(),
            pid = ?cred.pid(),
            "handover: refused a peer of another user"
        );
        return;
    }
    let fds: Vec<_> = listeners.iter().map(AsFd::as_fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    // A fresh UNIX socket has room for a few bytes: this send does not block.
    match sendmsg(
        &stream,
        &[IoSlice::new(GREETING)],
        &mut control,
        SendFlags::NOSIGNAL,
    ) {
        Ok(_) => tracing::info!(
            pid = ?cred.pid(),
            listeners = fds.len(),
            path = %path.display(),
            "handed the data listeners over"
        ),
        Err(e) => tracing::warn!(error = %e, "handover: sending the listeners failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn listener() -> std::net::TcpListener {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    }

    /// A handover server for `listeners` at `path`, on a runtime of its own.
    fn serving(
        path: &Path,
        listeners: &[&std::net::TcpListener],
    ) -> (tokio::runtime::Runtime, CancellationToken) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let fds = listeners
            .iter()
            .map(|l| OwnedFd::from(l.try_clone().unwrap()))
            .collect();
        let server = Server::bind(path).unwrap();
        rt.spawn(server.serve(fds, stop.clone()));
        (rt, stop)
    }

    #[test]
    fn nobody_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        assert!(take(&path).unwrap().is_none());
        // A socket file whose ringlb is gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(take(&path).unwrap().is_none());
    }

    #[test]
    fn the_same_sockets_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let (a, b) = (listener(), listener());
        let (_rt, stop) = serving(&path, &[&a, &b]);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let taken = take(&path).unwrap().expect("listeners");
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].local_addr().unwrap(), a.local_addr().unwrap());
        assert_eq!(taken[1].local_addr().unwrap(), b.local_addr().unwrap());
        // The originals close; a connection queued on the socket now is accepted through the
        // copy that was handed over, not reset.
        let addr = a.local_addr().unwrap();
        drop((a, b));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"ping").unwrap();
        taken[0].set_nonblocking(false).unwrap();
        let (mut s, _) = taken[0].accept().unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        stop.cancel();
        // The server removes its own file once stopped.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while path.exists() {
            assert!(std::time::Instant::now() < deadline, "socket file left");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A server of one listener at `path`, and a newer one that took the listener from it.
    struct Restart {
        listener: std::net::TcpListener,
        old: (tokio::runtime::Runtime, CancellationToken),
        new: (tokio::runtime::Runtime, CancellationToken),
    }

    fn restart(path: &Path) -> Restart {
        let listener = listener();
        let old = serving(path, &[&listener]);
        let taken = take(path).unwrap().unwrap();
        let new = serving(path, &[&taken[0]]);
        Restart { listener, old, new }
    }

    #[test]
    fn a_newer_servers_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let r = restart(&path);
        r.old.1.cancel();
        std::thread::sleep(Duration::from_millis(200));
        assert!(path.exists(), "the old server removed the new one's file");
        assert_eq!(take(&path).unwrap().unwrap().len(), 1);
        r.new.1.cancel();
    }

    #[test]
    fn a_called_off_restart_gives_the_path_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let inode = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| m.ino());
        let r = restart(&path);
        let newer = inode(&path);
        // The newer one stops first and removes its file (from then on only the older one can
        // answer); the older one makes it again.
        r.new.1.cancel();
        let deadline = std::time::Instant::now() + RECLAIM_EVERY * 4;
        while inode(&path) == newer {
            assert!(
                std::time::Instant::now() < deadline,
                "the newer file stayed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let again = loop {
            if let Some(l) = take(&path).unwrap() {
                break l;
            }
            assert!(std::time::Instant::now() < deadline, "nobody answers");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            again[0].local_addr().unwrap(),
            r.listener.local_addr().unwrap()
        );
        r.old.1.cancel();
    }

    #[test]
    fn a_stranger_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"hello\n").unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        let err = take(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("not a ringlb handover"), "{err}");
        // A peer that closes without a word, as a ringlb does to a user it refuses.
        let path = dir.path().join("h2.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || drop(l.accept().unwrap()));
        let err = take(&path).unwrap_err();
        assert!(
            err.to_string().contains("without handing anything over"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        std::fs::write(&path, "data").unwrap();
        assert!(check_path(&path).unwrap_err().contains("not a socket"));
        assert!(Server::bind(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
        assert!(check_path(&dir.path().join("nodir/h.sock"))
            .unwrap_err()
            .contains("not a directory"));
    }
}
