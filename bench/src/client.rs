//! The load generator: one thread, one epoll, non-blocking sockets with
//! TCP_NODELAY. A thread per connection would swamp two cores at 10,000
//! connections, and the client costs about as much CPU as the server.
//!
//! Every loop here is bounded in time: each waits at most until its deadline
//! and reports what did not arrive instead of waiting for ever.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::sys::{self, cvt};

/// Every message is this long: 63 bytes and a newline (the chat servers
/// relay lines).
pub const MSG: usize = 64;
/// Connects in flight at once: the accept queue (somaxconn 4096 here) never
/// overflows, so no SYN is dropped and retransmitted a second later.
const CONNECT_BATCH: usize = 1000;
/// Source addresses 127.0.0.2 ..= 127.0.0.(1 + SOURCES): each has its own
/// 28k ephemeral ports towards one server port.
const SOURCES: usize = 8;

fn message(seq: u32) -> [u8; MSG] {
    std::array::from_fn(|off| message_byte(seq, off))
}

/// Byte `off` of message `seq`: 63 times one letter, which changes with
/// each message (so a line lost, doubled or out of order shows), then a
/// newline.
fn message_byte(seq: u32, off: usize) -> u8 {
    if off == MSG - 1 {
        b'\n'
    } else {
        b'a' + (seq % 26) as u8
    }
}

/// Whether `data`, found at byte `pos` of a chat stream whose first line
/// was message `base + 1`, is exactly what the sender sent there.
fn chat_bytes_ok(base: u32, pos: u64, data: &[u8]) -> bool {
    data.iter().enumerate().all(|(k, &b)| {
        let p = pos + k as u64;
        let seq = base.wrapping_add((p / MSG as u64) as u32 + 1);
        b == message_byte(seq, (p % MSG as u64) as usize)
    })
}

struct Conn {
    fd: RawFd,
    /// Bytes of the current reply received so far.
    got: usize,
    /// A message is outstanding (closed loop, pings).
    busy: bool,
    sent: Instant,
    seq: u32,
    /// Intended send times of outstanding messages (open loop).
    queue: VecDeque<Instant>,
    /// Newlines received (chat), in this call of `chat`.
    lines: u64,
    /// Chat bytes received since the room went quiet (`drain_quiet`).
    rx: u64,
    /// The server closed or reset it.
    dead: bool,
}

/// A set of connections to one server, all registered with one epoll.
pub struct Pool {
    ep: RawFd,
    conns: Vec<Conn>,
    events: Vec<libc::epoll_event>,
    buf: Vec<u8>,
    /// Replies whose bytes differed from what was sent.
    pub corrupt: u64,
    /// The sender's (connection 0's) message number when the chat room
    /// went quiet: the first line broadcast after it is `chat_base + 1`.
    chat_base: u32,
}

pub struct Closed {
    /// Messages answered in the measured window, and its length.
    pub msgs: u64,
    pub secs: f64,
    /// Server CPU in the measured window.
    pub cpu_ns: u64,
    /// The load generator's own CPU in the measured window.
    pub client_cpu_ns: u64,
    pub lat_ns: Vec<u32>,
    /// Every message answered, warm-up and drain included.
    pub total: u64,
    /// Messages still unanswered when the drain deadline passed.
    pub unanswered: u64,
}

pub struct Open {
    pub sent: u64,
    pub answered: u64,
    /// Sends that found the socket buffer full (not sent).
    pub skipped: u64,
    pub lat_ns: Vec<u32>,
    /// The longest the load generator itself went between two turns of
    /// its loop while sending: at 20,000 msgs/s it never sleeps (the next
    /// send is always under 1 ms away), so a longer gap is this process
    /// (or its CPU, or the whole VM) stalled, not the server.
    pub max_gap: Duration,
}

pub struct Chat {
    pub broadcasts: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub secs: f64,
    pub cpu_ns: u64,
    /// Per broadcast: from the send until the last receiver has the line.
    pub fan_ns: Vec<u32>,
    /// A broadcast did not reach every receiver within the time given:
    /// when it was sent, from the start of the call.
    pub stalled: Option<Duration>,
}

fn set_int(fd: RawFd, level: i32, opt: i32, v: i32) {
    // SAFETY: `v` is a c_int that outlives the call; the length matches.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
}

fn sockaddr(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    }
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, events: u32, token: usize) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: token as u64,
    };
    // SAFETY: `ev` is valid for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) }).map(drop)
}

/// One non-blocking write; the byte count, or None when it would block or
/// failed.
fn write_fd(fd: RawFd, data: &[u8]) -> Option<usize> {
    // SAFETY: `data` is valid for reading `data.len()` bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    (n >= 0).then_some(n as usize)
}

/// One non-blocking read: Ok(0) at end of stream, Err(EAGAIN) when empty.
fn read_fd(fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for writing `buf.len()` bytes.
    cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
        .map(|n| n as usize)
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// bind() to `src`, then a non-blocking connect() to `dst`: EINPROGRESS
/// is the connection under way, not an error.
fn bind_and_connect(fd: RawFd, src: &libc::sockaddr_in, dst: &libc::sockaddr_in) -> io::Result<()> {
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: `src` is a valid sockaddr_in of `len` bytes.
    cvt(unsafe { libc::bind(fd, (src as *const libc::sockaddr_in).cast(), len) })?;
    // SAFETY: `dst` is a valid sockaddr_in of `len` bytes.
    match cvt(unsafe { libc::connect(fd, (dst as *const libc::sockaddr_in).cast(), len) }) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => Err(e),
        _ => Ok(()),
    }
}

fn ns(d: Duration) -> u32 {
    d.as_nanos().min(u32::MAX as u128) as u32
}

impl Pool {
    /// Opens `n` connections to `addr` (a loopback address) from
    /// 127.0.0.2.. sources, in batches; returns the pool and how long the
    /// whole burst took to connect. Gives up after `limit`.
    pub fn connect(addr: SocketAddr, n: usize, limit: Duration) -> io::Result<(Pool, Duration)> {
        let SocketAddr::V4(v4) = addr else {
            return Err(io::Error::other("the bench connects over IPv4 loopback"));
        };
        // SAFETY: epoll_create1 has no memory preconditions.
        let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let mut pool = Pool {
            ep,
            conns: Vec::with_capacity(n),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
            buf: vec![0; 64 * 1024],
            corrupt: 0,
            chat_base: 0,
        };
        let start = Instant::now();
        let deadline = start + limit;
        let dst = sockaddr(v4.ip().octets(), v4.port());
        let now = Instant::now();
        while pool.conns.len() < n {
            let first = pool.conns.len();
            let batch = CONNECT_BATCH.min(n - first);
            for i in first..first + batch {
                // SAFETY: socket() has no memory preconditions.
                let fd = cvt(unsafe {
                    libc::socket(
                        libc::AF_INET,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        0,
                    )
                })
                .map_err(|e| {
                    io::Error::other(format!("socket() for connection {i} of {n}: {e}"))
                })?;
                pool.conns.push(Conn {
                    fd,
                    got: 0,
                    busy: false,
                    sent: now,
                    seq: 0,
                    queue: VecDeque::new(),
                    lines: 0,
                    rx: 0,
                    dead: false,
                });
                set_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
                // Let connect() pick the port per 4-tuple, not bind().
                set_int(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
                let src = sockaddr([127, 0, 0, 2 + (i % SOURCES) as u8], 0);
                if let Err(e) = bind_and_connect(fd, &src, &dst) {
                    return Err(io::Error::other(format!(
                        "connect #{i} of {n} to {addr}: {e}"
                    )));
                }
                ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLOUT as u32, i)?;
            }
            // Wait for the whole batch to finish connecting.
            let mut left = batch;
            while left > 0 {
                let wait = deadline.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    return Err(io::Error::other(format!(
                        "{} of {n} connections to {addr} still not established after {:?}",
                        left + (n - first - batch),
                        limit
                    )));
                }
                let k = pool.wait(wait.min(Duration::from_millis(100)));
                for e in 0..k {
                    let i = pool.events[e].u64 as usize;
                    let fd = pool.conns[i].fd;
                    let mut err: i32 = 0;
                    let mut len = std::mem::size_of::<i32>() as u32;
                    // SAFETY: `err`/`len` are valid out-parameters of that size.
                    unsafe {
                        libc::getsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            (&mut err as *mut i32).cast(),
                            &mut len,
                        )
                    };
                    if err != 0 {
                        return Err(io::Error::other(format!(
                            "connection #{i} of {n} to {addr} failed: {}",
                            io::Error::from_raw_os_error(err)
                        )));
                    }
                    ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, i)?;
                    left -= 1;
                }
            }
        }
        Ok((pool, start.elapsed()))
    }

    /// epoll_wait for at most `d` (rounded up to a millisecond, except 0).
    fn wait(&mut self, d: Duration) -> usize {
        let ms = if d.is_zero() {
            0
        } else {
            d.as_nanos().div_ceil(1_000_000).min(1000) as i32
        };
        // SAFETY: `events` has room for its length in entries.
        let k = unsafe {
            libc::epoll_wait(
                self.ep,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        k.max(0) as usize
    }

    fn send(&mut self, i: usize, now: Instant) -> bool {
        let c = &mut self.conns[i];
        c.seq = c.seq.wrapping_add(1);
        let m = message(c.seq);
        if write_fd(c.fd, &m) != Some(MSG) {
            // A 64-byte write into an empty send buffer cannot be short;
            // anything else means the connection is gone.
            c.dead = true;
            return false;
        }
        c.busy = true;
        c.got = 0;
        c.sent = now;
        true
    }

    /// Reads what connection `i` has towards its outstanding message;
    /// Some(latency) when the whole reply is in.
    fn receive(&mut self, i: usize, now: Instant) -> Option<Duration> {
        let c = &mut self.conns[i];
        let want = MSG - c.got;
        match read_fd(c.fd, &mut self.buf[..want]) {
            Ok(0) => {
                c.dead = true;
                None
            }
            Ok(n) => {
                if !c.busy {
                    // Bytes nobody asked for: an echo server never sends them.
                    self.corrupt += 1;
                    return None;
                }
                let expect = message(c.seq);
                if self.buf[..n] != expect[c.got..c.got + n] {
                    self.corrupt += 1;
                }
                c.got += n;
                if c.got == MSG {
                    c.busy = false;
                    c.got = 0;
                    Some(now - c.sent)
                } else {
                    None
                }
            }
            Err(libc::EAGAIN) | Err(libc::EINTR) => None,
            Err(_) => {
                c.dead = true;
                None
            }
        }
    }

    /// Closed loop, one message in flight per connection: `warm` unmeasured,
    /// then `measure` measured, then a drain (at most 5 s) in which nothing
    /// new is sent.
    pub fn closed_loop(&mut self, pid: u32, warm: Duration, measure: Duration) -> Closed {
        let start = Instant::now();
        let t_measure = start + warm;
        let t_end = t_measure + measure;
        let mut measuring = warm.is_zero();
        let mut cpu0 = if measuring { sys::cpu_ns(pid) } else { 0 };
        let mut client0 = sys::thread_cpu_ns();
        let mut client_end = 0;
        let mut msgs = 0u64;
        let mut total = 0u64;
        let mut lat = Vec::with_capacity(1 << 20);
        for i in 0..self.conns.len() {
            if !self.conns[i].dead {
                self.send(i, start);
            }
        }
        let mut cpu_end = 0;
        let mut secs = measure.as_secs_f64();
        let drain_end = t_end + Duration::from_secs(5);
        loop {
            let now = Instant::now();
            if !measuring && now >= t_measure {
                measuring = true;
                cpu0 = sys::cpu_ns(pid);
                client0 = sys::thread_cpu_ns();
                msgs = 0;
                lat.clear();
            }
            let sending = now < t_end;
            if !sending && cpu_end == 0 {
                cpu_end = sys::cpu_ns(pid).max(1);
                client_end = sys::thread_cpu_ns();
                secs = (now - t_measure).as_secs_f64();
            }
            if !sending && (self.outstanding() == 0 || now >= drain_end) {
                break;
            }
            let k = self.wait(Duration::from_millis(10));
            let now = Instant::now();
            for e in 0..k {
                let i = self.events[e].u64 as usize;
                if let Some(l) = self.receive(i, now) {
                    total += 1;
                    if measuring && now < t_end {
                        msgs += 1;
                        lat.push(ns(l));
                    }
                    if now < t_end {
                        self.send(i, now);
                    }
                }
            }
        }
        Closed {
            msgs,
            secs,
            cpu_ns: cpu_end.saturating_sub(cpu0),
            client_cpu_ns: client_end.saturating_sub(client0),
            lat_ns: lat,
            total,
            unanswered: self.outstanding() as u64,
        }
    }

    fn outstanding(&self) -> usize {
        self.conns.iter().filter(|c| c.busy && !c.dead).count()
    }

    pub fn dead(&self) -> usize {
        self.conns.iter().filter(|c| c.dead).count()
    }

    /// Sends one message on every connection and waits (at most `limit`)
    /// until all are answered; returns (answered, time taken).
    pub fn ping_all(&mut self, limit: Duration) -> (usize, Duration) {
        let start = Instant::now();
        for i in 0..self.conns.len() {
            if !self.conns[i].dead {
                self.send(i, start);
            }
        }
        let mut answered = 0;
        while self.outstanding() > 0 && start.elapsed() < limit {
            let k = self.wait(Duration::from_millis(10));
            let now = Instant::now();
            for e in 0..k {
                let i = self.events[e].u64 as usize;
                if self.receive(i, now).is_some() {
                    answered += 1;
                }
            }
        }
        (answered, start.elapsed())
    }

    /// Open loop at `rate` messages/s over all connections for `dur`:
    /// message j is due at start + j/rate on connection j % n, whether or not
    /// earlier ones were answered; its latency counts from that intended time,
    /// so a stalled server cannot hide its stall (no coordinated omission).
    pub fn open_loop(&mut self, rate: f64, dur: Duration) -> Open {
        let n = self.conns.len();
        let start = Instant::now();
        let total = (rate * dur.as_secs_f64()) as u64;
        let gap = Duration::from_secs_f64(1.0 / rate);
        let mut next = 0u64;
        let mut r = Open {
            sent: 0,
            answered: 0,
            skipped: 0,
            lat_ns: Vec::with_capacity(total as usize),
            max_gap: Duration::ZERO,
        };
        let drain_end = start + dur + Duration::from_secs(5);
        let mut last = start;
        loop {
            let now = Instant::now();
            if next < total {
                r.max_gap = r.max_gap.max(now - last);
            }
            last = now;
            while next < total {
                let due = start + gap * next as u32;
                if due > now {
                    break;
                }
                let i = (next % n as u64) as usize;
                let c = &mut self.conns[i];
                next += 1;
                if c.dead {
                    r.skipped += 1;
                    continue;
                }
                let m = message(next as u32);
                match write_fd(c.fd, &m) {
                    Some(MSG) => {
                        c.queue.push_back(due);
                        r.sent += 1;
                    }
                    Some(_) => c.dead = true, // a torn message: framing lost
                    None => r.skipped += 1,
                }
            }
            let waiting: usize = self.conns.iter().map(|c| c.queue.len()).sum();
            if next >= total && (waiting == 0 || now >= drain_end) {
                break;
            }
            // Spin (timeout 0) when the next send is under a millisecond
            // away: epoll_wait only sleeps in whole milliseconds.
            let until = if next < total {
                (start + gap * next as u32).saturating_duration_since(now)
            } else {
                Duration::from_millis(10)
            };
            let k = self.wait(if until < Duration::from_millis(1) {
                Duration::ZERO
            } else {
                until - Duration::from_millis(1)
            });
            let now = Instant::now();
            for e in 0..k {
                let i = self.events[e].u64 as usize;
                let c = &mut self.conns[i];
                match read_fd(c.fd, &mut self.buf) {
                    Ok(0) => c.dead = true,
                    Ok(got) => {
                        c.got += got;
                        while c.got >= MSG {
                            c.got -= MSG;
                            if let Some(due) = c.queue.pop_front() {
                                r.lat_ns.push(ns(now - due));
                                r.answered += 1;
                            }
                        }
                    }
                    Err(libc::EAGAIN) | Err(libc::EINTR) => {}
                    Err(_) => c.dead = true,
                }
                if c.dead {
                    c.queue.clear();
                }
            }
        }
        r
    }

    /// Reads and discards whatever the server sends (greetings, join
    /// notices) until it has been quiet for 300 ms, at most `limit`.
    pub fn drain_quiet(&mut self, limit: Duration) {
        let start = Instant::now();
        let mut quiet = Instant::now();
        while start.elapsed() < limit && quiet.elapsed() < Duration::from_millis(300) {
            let k = self.wait(Duration::from_millis(50));
            for e in 0..k {
                let i = self.events[e].u64 as usize;
                let c = &mut self.conns[i];
                match read_fd(c.fd, &mut self.buf) {
                    Ok(0) => c.dead = true,
                    Ok(_) => quiet = Instant::now(),
                    Err(libc::EAGAIN) | Err(libc::EINTR) => {}
                    Err(_) => c.dead = true,
                }
            }
        }
        for c in &mut self.conns {
            c.lines = 0;
            c.rx = 0;
        }
        self.chat_base = self.conns.first().map_or(0, |c| c.seq);
    }

    /// The sender's message number when the room went quiet (see
    /// [`NeverReader::read_all`]).
    pub fn chat_base(&self) -> u32 {
        self.chat_base
    }

    /// Chat fan-out: connection 0 sends a line, every other connection must
    /// receive it; the next line goes out when all have (closed loop per
    /// broadcast). Runs for `dur` or `max` broadcasts, whichever ends first;
    /// a broadcast not complete within `give_up` ends the run, its missing
    /// deliveries counted as lost. Every byte received is checked against
    /// what the sender sent at that place of the stream (`corrupt`).
    pub fn chat(&mut self, pid: u32, dur: Duration, max: u64, give_up: Duration) -> Chat {
        let receivers = self.conns.len() as u64 - 1;
        // Each run counts its own lines (a previous run left none in flight:
        // every broadcast it sent had arrived everywhere or ended it).
        for c in &mut self.conns {
            c.lines = 0;
        }
        let start = Instant::now();
        let cpu0 = sys::cpu_ns(pid);
        let mut r = Chat {
            broadcasts: 0,
            deliveries: 0,
            lost: 0,
            secs: 0.0,
            cpu_ns: 0,
            fan_ns: Vec::new(),
            stalled: None,
        };
        while start.elapsed() < dur && r.broadcasts < max {
            let sent = Instant::now();
            if !self.send(0, sent) {
                r.lost += receivers;
                break;
            }
            self.conns[0].busy = false;
            let target = r.broadcasts + 1;
            let mut remaining = self.conns[1..]
                .iter()
                .filter(|c| c.lines < target && !c.dead)
                .count() as u64;
            let deadline = sent + give_up;
            while remaining > 0 && Instant::now() < deadline {
                let k = self.wait(Duration::from_millis(10));
                for e in 0..k {
                    let i = self.events[e].u64 as usize;
                    let c = &mut self.conns[i];
                    loop {
                        match read_fd(c.fd, &mut self.buf) {
                            Ok(0) => {
                                c.dead = true;
                                break;
                            }
                            Ok(n) => {
                                if i > 0 {
                                    if !chat_bytes_ok(self.chat_base, c.rx, &self.buf[..n]) {
                                        self.corrupt += 1;
                                    }
                                    c.rx += n as u64;
                                }
                                let before = c.lines;
                                c.lines +=
                                    self.buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                                if i > 0 && before < target && c.lines >= target {
                                    remaining -= 1;
                                }
                                if n < self.buf.len() {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            let got = self.conns[1..].iter().filter(|c| c.lines >= target).count() as u64;
            r.broadcasts += 1;
            r.deliveries += got;
            if got < receivers {
                r.lost += receivers - got;
                r.stalled = Some(sent - start);
                break;
            }
            r.fan_ns.push(ns(sent.elapsed()));
        }
        r.secs = start.elapsed().as_secs_f64();
        r.cpu_ns = sys::cpu_ns(pid).saturating_sub(cpu0);
        r
    }
}

/// A chat user who never reads: the harness's client with a small
/// receive buffer, connected the way a client across a network is
/// (`Client::connect_with_receive_buffer`: SO_RCVBUF and 1400-byte
/// segments, set before connecting), whom the bench does not read while
/// the room talks. Over loopback's 64 KiB segments Linux would give the
/// server's side of it a send buffer of some 3 MiB; like this, its buffers
/// at both ends are full after some 70 KiB, and from then on whatever the
/// room says to it waits in the server, or stops the server.
pub struct NeverReader {
    client: harness::Client,
    pub local: SocketAddr,
}

impl NeverReader {
    pub fn connect(addr: SocketAddr, rcvbuf: usize) -> Result<NeverReader, String> {
        let client =
            harness::Client::connect_with_receive_buffer(&harness::Target::addr(addr), rcvbuf)
                .map_err(|e| e.to_string())?;
        client
            .stream()
            .set_nonblocking(true)
            .map_err(|e| format!("O_NONBLOCK: {e}"))?;
        let local = client.local_addr();
        Ok(NeverReader { client, local })
    }

    fn fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.client.stream().as_raw_fd()
    }

    /// Bytes that arrived and wait unread (FIONREAD).
    pub fn unread(&self) -> u64 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int to `n`.
        unsafe { libc::ioctl(self.fd(), libc::FIONREAD, &mut n) };
        n.max(0) as u64
    }

    /// Whether the server has closed or reset the connection, as far as
    /// can be told without reading (an end of file or an error queued).
    pub fn closed(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 0) };
        p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Discards what the server sent before the room started talking
    /// (a greeting, join notices): read once the room is quiet.
    pub fn settle(&mut self) {
        let mut buf = [0u8; 4096];
        while matches!(read_fd(self.fd(), &mut buf), Ok(n) if n > 0) {}
    }

    /// Reads, at last, everything the server kept for this user: until
    /// `lines` whole lines have come, the connection ends, or `limit`
    /// passes. Returns the bytes received and whether they were exactly
    /// the lines sent (the first being message `base + 1`), in order.
    pub fn read_all(&mut self, base: u32, lines: u64, limit: Duration) -> (u64, bool) {
        let want = lines * MSG as u64;
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut got, mut ok) = (0u64, true);
        while got < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut p = libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 100) as i32;
            // SAFETY: `p` is one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms) };
            match read_fd(self.fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    ok &= chat_bytes_ok(base, got, &buf[..n]);
                    got += n as u64;
                }
                Err(libc::EAGAIN) | Err(libc::EINTR) => {}
                Err(_) => break,
            }
        }
        (got, ok && got == want)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Close with a reset (SO_LINGER 0): no TIME_WAIT left behind to
        // blur the next phase's kernel-memory figure.
        let lin = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        for c in &self.conns {
            // SAFETY: `lin` is a valid linger of the size passed; `c.fd` is
            // ours and closed exactly once, here.
            unsafe {
                libc::setsockopt(
                    c.fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&lin as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                );
                libc::close(c.fd);
            }
        }
        // SAFETY: `ep` is ours and closed exactly once.
        unsafe { libc::close(self.ep) };
    }
}
