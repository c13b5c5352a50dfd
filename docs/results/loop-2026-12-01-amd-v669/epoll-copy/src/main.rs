//! A plain L4 proxy on one thread and one epoll set, without an async runtime: per connection a
//! blocking connect to the one backend, then a 16 KiB buffer each way. No request line, no ring,
//! no timeouts. It exists to tell what of tokio-copy's behaviour under keep-alive load comes from
//! the runtime and what from the order of the system calls.
//!
//!     epoll-copy LISTEN BACKEND [--lt] [--batch]
//!
//! `--lt`: level-triggered registration; the write interest is added only while a write is
//! pending (HAProxy's way). Without it: edge-triggered, read and write interest registered once
//! (mio's and so tokio's way).
//! `--batch`: in each poll round, first read every socket reported readable, then write what was
//! read. Without it, a socket's data is written to the other side right after it is read.
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

const BUF: usize = 16 * 1024;
const LISTENER: u64 = u64::MAX;

/// Bytes read from one side and not yet written to the other.
struct Half {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

struct Conn {
    sock: [TcpStream; 2],
    half: [Half; 2],
    out_armed: [bool; 2],
}

struct Proxy {
    ep: i32,
    lt: bool,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    closed: Vec<usize>,
}

fn ctl(ep: i32, op: i32, fd: i32, events: u32, token: u64) {
    let mut ev = libc::epoll_event { events, u64: token };
    let r = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    assert!(r == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

enum Flow {
    Open,
    Closed,
}

impl Proxy {
    fn in_events(&self) -> u32 {
        if self.lt {
            (libc::EPOLLIN | libc::EPOLLRDHUP) as u32
        } else {
            (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32
        }
    }

    fn accept(&mut self, l: &TcpListener, backend: &str) {
        for _ in 0..64 {
            let c = match l.accept() {
                Ok((c, _)) => c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let Ok(s) = TcpStream::connect(backend) else { continue };
            for t in [&c, &s] {
                t.set_nodelay(true).unwrap();
                t.set_nonblocking(true).unwrap();
            }
            let half = || Half { buf: vec![0u8; BUF].into_boxed_slice(), start: 0, end: 0 };
            let conn = Conn { sock: [c, s], half: [half(), half()], out_armed: [false; 2] };
            let slot = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            let ev = self.in_events();
            for side in 0..2 {
                ctl(self.ep, libc::EPOLL_CTL_ADD, conn.sock[side].as_raw_fd(), ev, (slot as u64) << 1 | side as u64);
            }
            self.conns[slot] = Some(conn);
        }
    }

    /// Writes what was read from `from` to the other side. `Ok(true)`: all of it went out.
    fn flush(&mut self, slot: usize, from: usize) -> Result<bool, ()> {
        let (ep, lt) = (self.ep, self.lt);
        let conn = self.conns[slot].as_mut().unwrap();
        let to = 1 - from;
        let h = &mut conn.half[from];
        while h.start < h.end {
            match (&conn.sock[to]).write(&h.buf[h.start..h.end]) {
                Ok(n) => h.start += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if lt && !conn.out_armed[to] {
                        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32;
                        ctl(ep, libc::EPOLL_CTL_MOD, conn.sock[to].as_raw_fd(), ev, (slot as u64) << 1 | to as u64);
                        conn.out_armed[to] = true;
                    }
                    return Ok(false);
                }
                Err(_) => return Err(()),
            }
        }
        h.start = 0;
        h.end = 0;
        if lt && conn.out_armed[to] {
            let ev = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            ctl(ep, libc::EPOLL_CTL_MOD, conn.sock[to].as_raw_fd(), ev, (slot as u64) << 1 | to as u64);
            conn.out_armed[to] = false;
        }
        Ok(true)
    }

    /// One read from `from` into an empty buffer. `Ok(Some(n))`: n bytes; `Ok(None)`: nothing now.
    fn read_once(&mut self, slot: usize, from: usize) -> Result<Option<usize>, ()> {
        let conn = self.conns[slot].as_mut().unwrap();
        let h = &mut conn.half[from];
        if h.end > 0 {
            return Ok(None); // still waiting for the other side to take the last read
        }
        match (&conn.sock[from]).read(&mut h.buf) {
            Ok(0) => Err(()),
            Ok(n) => {
                h.end = n;
                Ok(Some(n))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// Moves bytes from `from` to the other side until `from` is drained (a short read, as tokio
    /// takes it) or the other side is full.
    fn pump(&mut self, slot: usize, from: usize) -> Flow {
        loop {
            match self.flush(slot, from) {
                Ok(true) => {}
                Ok(false) => return Flow::Open,
                Err(()) => return self.close(slot),
            }
            match self.read_once(slot, from) {
                Ok(Some(n)) if n == BUF => continue,
                Ok(Some(_)) => {
                    return match self.flush(slot, from) {
                        Ok(_) => Flow::Open,
                        Err(()) => self.close(slot),
                    }
                }
                Ok(None) => return Flow::Open,
                Err(()) => return self.close(slot),
            }
        }
    }

    fn close(&mut self, slot: usize) -> Flow {
        if let Some(conn) = self.conns[slot].take() {
            for s in &conn.sock {
                ctl(self.ep, libc::EPOLL_CTL_DEL, s.as_raw_fd(), 0, 0);
            }
            self.closed.push(slot); // reused only after this poll round
        }
        Flow::Closed
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, backend) = (args[1].clone(), args[2].clone());
    let lt = args.iter().any(|a| a == "--lt");
    let batch = args.iter().any(|a| a == "--batch");
    let l = TcpListener::bind(&listen).unwrap();
    l.set_nonblocking(true).unwrap();
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    ctl(ep, libc::EPOLL_CTL_ADD, l.as_raw_fd(), libc::EPOLLIN as u32, LISTENER);
    let mut p = Proxy { ep, lt, conns: Vec::new(), free: Vec::new(), closed: Vec::new() };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut readable: Vec<(usize, usize, bool)> = Vec::new();
    loop {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue; // EINTR
        }
        readable.clear();
        for ev in &events[..n as usize] {
            let (bits, token) = (ev.events, ev.u64);
            if token == LISTENER {
                p.accept(&l, &backend);
                continue;
            }
            let (slot, side) = ((token >> 1) as usize, (token & 1) as usize);
            if p.conns[slot].is_none() {
                continue;
            }
            let pending = p.conns[slot].as_ref().unwrap().half[1 - side].end > 0;
            if bits & libc::EPOLLOUT as u32 != 0 && pending {
                // the other side's bytes can go out now; then read on from there
                if let Flow::Closed = p.pump(slot, 1 - side) {
                    continue;
                }
            }
            let rd = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            if bits & rd != 0 {
                if batch {
                    match p.read_once(slot, side) {
                        Ok(Some(n)) => readable.push((slot, side, n == BUF)),
                        Ok(None) => {}
                        Err(()) => {
                            p.close(slot);
                        }
                    }
                } else {
                    p.pump(slot, side);
                }
            }
        }
        for &(slot, side, full) in &readable {
            if p.conns[slot].is_none() {
                continue;
            }
            if full {
                p.pump(slot, side); // writes, then reads on
            } else if p.flush(slot, side).is_err() {
                p.close(slot); // a short read drained the socket: only the write is left
            }
        }
        p.free.append(&mut p.closed);
    }
}
