//! `fake-server --mode MODE [--port P] [--max-users N] [--max-queue BYTES]
//! [--idle-timeout SECS] [--fixed-port P]`: small servers, correct and
//! deliberately broken, that the harness's own tests check the harness
//! against. A harness that passes a broken server would make every green
//! step test meaningless.
//!
//! Echo family. Correct: `echo`, `split-echo` (one byte per write),
//! `delayed-echo` (300 ms late), `greet`. Broken: `never-replies`,
//! `wrong-reply` (upper-cases), `closes-early`, `exits-at-once`,
//! `crashes-on-data`, `no-announce`, `leaky-echo` (never closes a client),
//! `greet-twice`, `ignores-port` (always listens on a port of its own
//! choosing; `--fixed-port P` makes any mode listen on P whatever `--port`
//! says), `echo-urgent-spins` and `echo-urgent-loses` (after an urgent
//! byte: spin without reading, or stop reading that client), `echo-spins`
//! (echoes, with a thread that never waits), `traced-never-replies`
//! (`never-replies` that, with `KQ_TRACE` set, appends to that file the
//! blocks kq's trace would write for its calls: it uses no kqueue, and
//! stands in for a step so the harness's quoting of a trace is tested in
//! the harness).
//!
//! Chat family. Correct: `chat`, which does everything steps 5-8 do: a room
//! of `--max-users`, relays through per-user queues bounded by
//! `--max-queue` (default: unbounded), polite refusals, `--idle-timeout`,
//! a goodbye and a flush on SIGTERM/SIGINT, and no spinning when out of
//! descriptors. Broken, each in one way: `chat-echoes-sender`,
//! `chat-never-full`, `chat-corrupts` (drops the last byte of every relay),
//! `chat-blocking` (writes to every user in turn from the sender's thread,
//! as step 5 does), `chat-never-drops` (ignores `--max-queue`),
//! `chat-loses-partial-writes` (one non-blocking write per chunk, the rest
//! forgotten), `chat-rude-refusal` (closes with the client's input unread),
//! `chat-kicks-active` (idle since joining, not since the last message),
//! `chat-ignores-signals`, `chat-dies-on-signal` (no handler),
//! `chat-appends-slots` (a newcomer takes the slot after the highest,
//! not the lowest free one), `chat-chatty` (`--quiet` leaves one line),
//! `chat-fixed-room` (ignores `--max-users`), `chat-drops-last-words`
//! (bytes that come with the FIN are not relayed),
//! `chat-exits-1` (status 1 after the goodbye), `chat-keeps-listening`
//! (accepts newcomers while it shuts down), `chat-no-flush` (exits at
//! once, queues lost), `chat-spins-at-limit` (retries accept() at once,
//! logging every failure), `chat-stops-accepting` (never accepts again once
//! out of descriptors), `chat-urgent-spins`, `chat-urgent-loses`,
//! `chat-kicks-late` (kicks at 2 x `--idle-timeout`), `chat-misnames-timeout`
//! (kicks on time, saying 2 x the timeout), `chat-drops-late` (drops a user
//! at 3 x `--max-queue`), `chat-drops-early` (at half of it), `chat-spins`
//! (a thread that never waits), `chat-leaks-refused` (never closes a
//! refused client), `chat-log-blocks` (writes its log with blocking
//! writes, so a full stderr pipe stops it).
//!
//! Every chat mode but `chat-log-blocks` writes its log without blocking:
//! stderr is made non-blocking and a line that finds the pipe full is
//! dropped.
//!
//! Threads and blocking std sockets keep it obviously correct (a thread per
//! direction per user stands in for non-blocking writes); it is a test
//! fixture, not a lesson.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::exit;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// The harness's errno check, the same file (this binary is a crate of its own).
#[path = "../sys.rs"]
mod sys;
use sys::cvt;

/// Set by `--quiet`: no narration (but `chat-chatty` forgets one line).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set at the first SIGTERM or SIGINT.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set for the chat family (but `chat-log-blocks`): stderr is
/// non-blocking, and a line that does not fit in it is dropped.
static LOG_NONBLOCKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line of narration on stderr, unless `--quiet`.
macro_rules! say {
    ($($arg:tt)*) => {
        if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            log_line(format!($($arg)*));
        }
    };
}

/// Writes one line of narration. A correct chat server's log never blocks
/// it: with stderr non-blocking, one write() of the whole line (a pipe
/// takes up to PIPE_BUF bytes whole or not at all), and a line that finds
/// the pipe full is dropped. `chat-log-blocks` and the echo family write
/// as eprintln! does, waiting while the pipe is full.
fn log_line(mut line: String) {
    line.push('\n');
    if !LOG_NONBLOCKING.load(std::sync::atomic::Ordering::Relaxed) {
        eprint!("{line}");
        return;
    }
    // SAFETY: writes from a live buffer to fd 2; EAGAIN (the pipe is
    // full) drops the line, by design.
    let _ = cvt(unsafe { libc::write(2, line.as_ptr().cast(), line.len()) });
}

/// Makes stderr non-blocking (O_NONBLOCK on its open file: a fixture's
/// stderr is the harness's pipe, shared with nobody else).
fn log_without_blocking() {
    // SAFETY: fcntl on fd 2 with integer arguments only.
    let flags = cvt(unsafe { libc::fcntl(2, libc::F_GETFL) });
    if let Ok(flags) = flags {
        // SAFETY: as above.
        if cvt(unsafe { libc::fcntl(2, libc::F_SETFL, flags | libc::O_NONBLOCK) }).is_ok() {
            LOG_NONBLOCKING.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

struct Opts {
    mode: String,
    port: u16,
    fixed_port: Option<u16>,
    max_users: usize,
    max_queue: usize,
    idle: Option<Duration>,
}

fn main() {
    let mut o = Opts {
        mode: "echo".to_string(),
        port: 8080,
        fixed_port: None,
        max_users: 10,
        max_queue: usize::MAX,
        idle: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--quiet" {
            QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--mode" => o.mode = v,
            "--port" => o.port = v.parse().unwrap_or(0),
            "--fixed-port" => o.fixed_port = v.parse().ok(),
            "--max-users" => o.max_users = v.parse().unwrap_or(10),
            "--max-queue" => o.max_queue = v.parse().unwrap_or(usize::MAX),
            "--idle-timeout" => o.idle = v.parse().ok().map(Duration::from_secs),
            _ => {
                eprintln!("fake-server: unknown argument {a}");
                exit(2);
            }
        }
    }
    if o.mode == "chat-fixed-room" {
        o.max_users = 10;
    }
    if o.mode == "exits-at-once" {
        say!("fake-server: giving up before listening");
        exit(3);
    }
    let chat = o.mode.starts_with("chat");
    if chat {
        // Before any thread starts, so every thread inherits it.
        prepare_signals(&o.mode);
        if o.mode != "chat-log-blocks" {
            log_without_blocking();
        }
    }
    let port = match (o.mode.as_str(), o.fixed_port) {
        (_, Some(p)) => p,
        ("ignores-port", None) => 0,
        _ => o.port,
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-server: cannot listen on 127.0.0.1:{port}: {e}");
            exit(1);
        }
    };
    trace(
        &o.mode,
        "kevent(4, 1 change, 0 events, NULL) = 0, waited 0.010 ms\n  change EV_SET(3, EVFILT_READ, EV_ADD, 0, 0, NULL)\n",
    );
    trace(
        &o.mode,
        "kevent(4, 0 changes, 64 events, {1, 0}) = 0, waited 1000.080 ms\n",
    );
    if o.mode == "no-announce" {
        say!("fake-server: listening, but not saying so");
    } else {
        println!("listening on {}", listener.local_addr().expect("addr"));
        std::io::stdout().flush().expect("flush");
    }
    if chat {
        Chat::run(Arc::new(o), listener);
    }
    if o.mode == "echo-spins" {
        // A thread that never waits: 100 % of a core, all the time.
        std::thread::spawn(|| loop {
            std::hint::spin_loop();
        });
    }
    let kept: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    for (id, conn) in listener.incoming().enumerate() {
        let Ok(conn) = conn else { continue };
        trace(
            &o.mode,
            "kevent(4, 0 changes, 64 events, NULL) = 1, waited 3.101 ms\n  event  EV_SET(3, EVFILT_READ, 0, 0, 1, NULL)\n",
        );
        trace(
            &o.mode,
            "kevent(4, 1 change, 0 events, NULL) = 0, waited 0.012 ms\n  change EV_SET(6, EVFILT_READ, EV_ADD, 0, 0, NULL)\n",
        );
        say!("fake-server: accepted connection {id}");
        if o.mode == "crashes-on-data" {
            // Read first, so the crash closes the connection the same way
            // (a FIN, not a reset of unread data) on every run.
            let mut conn = conn;
            let mut buf = [0u8; 64];
            let _ = conn.read(&mut buf);
            say!("fake-server: thread 'main' panicked: oops");
            exit(101);
        }
        let (mode, kept) = (o.mode.clone(), kept.clone());
        std::thread::spawn(move || serve(&mode, conn, &kept));
    }
}

/// The echo family, one thread per client.
fn serve(mode: &str, mut conn: TcpStream, kept: &Mutex<Vec<TcpStream>>) {
    let mut buf = [0u8; 65536];
    if mode == "greet" || mode == "greet-twice" {
        let _ = conn.write_all(b"hello, you are connection\n");
        if mode == "greet-twice" {
            let _ = conn.write_all(b"hello again\n");
        }
        return;
    }
    let urgent = Urgent::of(mode);
    loop {
        if mode == "drops-last-words" {
            // An event loop that is busy elsewhere for a moment: by the
            // time it reads, bytes and a FIN that came together are both
            // there, and it takes the FIN as the end (EV_EOF alone).
            let _ = conn.peek(&mut [0u8]);
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = match read_from(&conn, &mut buf, urgent) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        trace(
            mode,
            &format!("kevent(4, 0 changes, 64 events, NULL) = 1, waited 0.402 ms\n  event  EV_SET(6, EVFILT_READ, 0, 0, {n}, NULL)\n"),
        );
        let sent = match mode {
            "never-replies" | "traced-never-replies" => Ok(()),
            "wrong-reply" => conn.write_all(&data.to_ascii_uppercase()),
            "closes-early" => return,
            "drops-last-words" if peer_has_closed(&conn) => return,
            "split-echo" => data.iter().try_for_each(|b| conn.write_all(&[*b])),
            "delayed-echo" => {
                std::thread::sleep(Duration::from_millis(300));
                conn.write_all(data)
            }
            _ => conn.write_all(data),
        };
        if sent.is_err() {
            break;
        }
    }
    if mode == "leaky-echo" {
        kept.lock().unwrap().push(conn);
    }
}

/// For `traced-never-replies`: appends `block` to the file `KQ_TRACE`
/// names, as kq's trace would.
fn trace(mode: &str, block: &str) {
    if mode != "traced-never-replies" {
        return;
    }
    let Some(path) = std::env::var_os("KQ_TRACE") else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(block.as_bytes());
    }
}

/// Whether the peer's FIN is waiting behind what was read: a peek that
/// does not wait finds end of file.
fn peer_has_closed(conn: &TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return false;
    }
    let closed = matches!(conn.peek(&mut [0u8]), Ok(0));
    let _ = conn.set_nonblocking(false);
    closed
}

/// What a server does once an urgent (MSG_OOB) byte is pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urgent {
    /// Reads on: read() skips the urgent byte.
    Fine,
    /// Wakes for it again and again without reading it: 100 % CPU, and
    /// nothing after the mark is ever read.
    Spins,
    /// Stops reading that client.
    Loses,
}

impl Urgent {
    fn of(mode: &str) -> Urgent {
        if mode.ends_with("urgent-spins") {
            Urgent::Spins
        } else if mode.ends_with("urgent-loses") {
            Urgent::Loses
        } else {
            Urgent::Fine
        }
    }
}

/// read(), for the broken modes after waiting in poll() for input or an
/// urgent byte, so they see the urgent byte before read() skips it.
fn read_from(conn: &TcpStream, buf: &mut [u8], urgent: Urgent) -> std::io::Result<usize> {
    if urgent != Urgent::Fine {
        let mut pfd = libc::pollfd {
            fd: conn.as_raw_fd(),
            events: libc::POLLIN | libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, -1) };
        if pfd.revents & libc::POLLPRI != 0 {
            say!("fake-server: an urgent byte arrived");
            loop {
                if urgent == Urgent::Spins {
                    // The urgent byte stays pending, so this returns at once.
                    // SAFETY: one live pollfd.
                    unsafe { libc::poll(&mut pfd, 1, -1) };
                } else {
                    std::thread::park();
                }
            }
        }
    }
    (&*conn).read(buf)
}

/// Blocks SIGTERM and SIGINT in every thread, for the signal thread to
/// take with sigwait(); or ignores them, or leaves them deadly.
fn prepare_signals(mode: &str) {
    match mode {
        "chat-dies-on-signal" => {}
        "chat-ignores-signals" => {
            // SAFETY: setting a disposition before any thread starts.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
            }
        }
        _ => {
            let set = shutdown_signals();
            // SAFETY: `set` is an initialised sigset_t.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        }
    }
}

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// One chat user: the socket (read by one thread, written by another) and
/// the bytes queued for it.
struct User {
    id: usize,
    /// The lowest free slot when the user joined (chatserv.c's conn_add()).
    slot: usize,
    peer: std::net::SocketAddr,
    fd: i32,
    conn: Sock,
    out: Mutex<Out>,
    more: Condvar,
    /// When the user last sent something.
    heard_at: Mutex<Instant>,
}

#[derive(Default)]
struct Out {
    queue: VecDeque<u8>,
    /// A last line is queued: close once it is written.
    closing: bool,
    /// Gone: the writer stops.
    dead: bool,
    /// The writer is writing a chunk it took off the queue.
    writing: bool,
}

struct Chat {
    o: Arc<Opts>,
    room: Mutex<Vec<Arc<User>>>,
    /// The listening socket's descriptor, shut down at the first signal.
    listener: std::os::fd::RawFd,
}

/// `chat-leaks-refused`: the refused clients' sockets, never closed.
static LEAKED: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

/// Signalled when a user's descriptor is closed: the accept loop, out of
/// descriptors, waits for it.
static FREED: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// A user's socket: closing it wakes the accept loop.
struct Sock(Option<TcpStream>);

impl std::ops::Deref for Sock {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        self.0.as_ref().expect("open until dropped")
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        drop(self.0.take());
        FREED.1.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chat {
    fn run(o: Arc<Opts>, listener: TcpListener) -> ! {
        let chat = Arc::new(Chat {
            o,
            room: Mutex::default(),
            listener: listener.as_raw_fd(),
        });
        if !matches!(
            chat.o.mode.as_str(),
            "chat-dies-on-signal" | "chat-ignores-signals"
        ) {
            let c = Arc::clone(&chat);
            std::thread::spawn(move || c.wait_for_signal());
        }
        if chat.mode() == "chat-spins" {
            // A thread that never waits: 100 % of a core, all the time.
            std::thread::spawn(|| loop {
                std::hint::spin_loop();
            });
        }
        if chat.o.idle.is_some() {
            let c = Arc::clone(&chat);
            std::thread::spawn(move || c.reap_idle());
        }
        chat.accept_loop(&listener)
    }

    fn mode(&self) -> &str {
        &self.o.mode
    }

    fn accept_loop(self: &Arc<Chat>, listener: &TcpListener) -> ! {
        let mut id = 0;
        let mut out_of_fds = false;
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    if out_of_fds {
                        say!("fake-server: a descriptor is free: accepting again");
                        out_of_fds = false;
                    }
                    if self.mode() == "chat-chatty" {
                        // The one line --quiet forgot to silence.
                        log_line(format!("fake-server: accepted connection {id}"));
                    } else {
                        say!("fake-server: accepted connection {id}");
                    }
                    self.admit(conn, id);
                    id += 1;
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    match self.mode() {
                        "chat-spins-at-limit" => say!("fake-server: accept: {e}"),
                        "chat-stops-accepting" => {
                            say!("fake-server: out of descriptors ({e}): not accepting any more");
                            loop {
                                std::thread::park();
                            }
                        }
                        _ => {
                            if !out_of_fds {
                                say!("fake-server: out of descriptors ({e}): not accepting until a user leaves");
                                out_of_fds = true;
                            }
                            // A user closed between accept() and here is
                            // caught by the timeout, one retry a second.
                            let freed = lock(&FREED.0);
                            let _ = FREED.1.wait_timeout(freed, Duration::from_secs(1));
                        }
                    }
                }
                // The listener was shut down: the server is shutting down.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => loop {
                    std::thread::park();
                },
                Err(_) => {}
            }
        }
    }

    /// A new connection joins the room, or is told it is full.
    fn admit(self: &Arc<Chat>, conn: TcpStream, id: usize) {
        let mut room = lock(&self.room);
        if room.len() >= self.o.max_users && self.mode() != "chat-never-full" {
            drop(room);
            let rude = self.mode() == "chat-rude-refusal";
            let leaks = self.mode() == "chat-leaks-refused";
            std::thread::spawn(move || {
                let conn = refuse(conn, rude);
                if leaks {
                    // Never closed: one descriptor lost per refusal.
                    lock(&LEAKED).push(conn);
                }
            });
            return;
        }
        let taken: Vec<usize> = room.iter().map(|u| u.slot).collect();
        let slot = if self.mode() == "chat-appends-slots" {
            taken.iter().max().map_or(0, |m| m + 1)
        } else {
            (0..).find(|s| !taken.contains(s)).expect("a free slot")
        };
        let peer = conn
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let fd = conn.as_raw_fd();
        say!("fake-server: user #{slot} joined from {peer} (fd {fd})");
        let user = Arc::new(User {
            id,
            slot,
            peer,
            fd,
            conn: Sock(Some(conn)),
            out: Mutex::default(),
            more: Condvar::new(),
            heard_at: Mutex::new(Instant::now()),
        });
        room.push(Arc::clone(&user));
        let (c, u) = (Arc::clone(self), Arc::clone(&user));
        std::thread::spawn(move || c.write_to(&u));
        let c = Arc::clone(self);
        std::thread::spawn(move || c.read_from(&user));
    }

    /// The user's reading side: relays what it sends, until it leaves.
    fn read_from(&self, user: &Arc<User>) {
        let urgent = Urgent::of(self.mode());
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match read_from(&user.conn, &mut buf, urgent) {
                Ok(0) | Err(_) => break,
                Ok(n) if self.mode() == "chat-drops-last-words" && eof_pending(&user.conn) => {
                    // Bytes and FIN came together: like a loop that closes
                    // on EV_EOF without reading what is left.
                    let _ = n;
                    break;
                }
                Ok(n) => {
                    if self.mode() != "chat-kicks-active" {
                        *lock(&user.heard_at) = Instant::now();
                    }
                    self.relay(user.id, &buf[..n]);
                }
            }
        }
        self.leave(user);
    }

    fn relay(&self, from: usize, data: &[u8]) {
        let data = match self.mode() {
            "chat-corrupts" => &data[..data.len() - 1],
            _ => data,
        };
        let room = lock(&self.room);
        for u in room.iter() {
            if u.id == from && self.mode() != "chat-echoes-sender" {
                continue;
            }
            if self.mode() == "chat-blocking" {
                // Like step 5: the whole room waits while this write does.
                let _ = (&*u.conn).write_all(data);
                continue;
            }
            let mut out = lock(&u.out);
            if out.dead {
                continue;
            }
            let limit = match self.mode() {
                "chat-drops-late" => self.o.max_queue.saturating_mul(3),
                "chat-drops-early" => self.o.max_queue / 2,
                _ => self.o.max_queue,
            };
            if out.queue.len() + data.len() > limit && self.mode() != "chat-never-drops" {
                say!(
                    "fake-server: user {} dropped: its queue would pass {} bytes",
                    u.id,
                    self.o.max_queue
                );
                out.dead = true;
                let _ = u.conn.shutdown(Shutdown::Both);
            } else {
                out.queue.extend(data);
            }
            u.more.notify_all();
        }
    }

    /// The user's writing side: writes what is queued, blocking only this
    /// thread, and closes after a last line.
    fn write_to(&self, user: &User) {
        let lossy = self.mode() == "chat-loses-partial-writes";
        loop {
            let chunk: Vec<u8> = {
                let mut out = lock(&user.out);
                out.writing = false;
                while out.queue.is_empty() && !out.closing && !out.dead {
                    out = user.more.wait(out).unwrap_or_else(|p| p.into_inner());
                }
                if out.dead {
                    return;
                }
                if out.queue.is_empty() {
                    // Closing, and everything is written.
                    let _ = user.conn.shutdown(Shutdown::Both);
                    return;
                }
                let n = out.queue.len().min(16 * 1024);
                out.writing = true;
                out.queue.drain(..n).collect()
            };
            let written = if lossy {
                // One write that does not wait; what it did not take is
                // forgotten.
                send_now(&user.conn, &chunk).map(drop)
            } else {
                (&*user.conn).write_all(&chunk)
            };
            if written.is_err() {
                lock(&user.out).dead = true;
                return;
            }
        }
    }

    fn leave(&self, user: &User) {
        lock(&self.room).retain(|u| u.id != user.id);
        // Not while shutting down: the users' threads end in any order, and
        // the goldens quote the end of the log.
        if !SHUTTING_DOWN.load(std::sync::atomic::Ordering::Relaxed) {
            say!("fake-server: user #{} ({}) left", user.slot, user.peer);
            say!(
                "fake-server: fd {}: close({}); slot #{} is free",
                user.fd,
                user.fd,
                user.slot
            );
        }
        let mut out = lock(&user.out);
        out.dead = true;
        user.more.notify_all();
    }

    /// Every 50 ms, tells users silent for the idle timeout why, and closes
    /// them once that is written.
    fn reap_idle(&self) {
        let idle = self.o.idle.expect("started only with --idle-timeout");
        // What it waits for, and what it says it waited for.
        let (waits, says) = match self.mode() {
            "chat-kicks-late" => (idle * 2, idle),
            "chat-misnames-timeout" => (idle, idle * 2),
            _ => (idle, idle),
        };
        loop {
            std::thread::sleep(Duration::from_millis(50));
            for u in lock(&self.room).iter() {
                let mut out = lock(&u.out);
                if out.closing || out.dead || lock(&u.heard_at).elapsed() < waits {
                    continue;
                }
                say!(
                    "fake-server: user {} said nothing for {} s: disconnected",
                    u.id,
                    idle.as_secs()
                );
                out.queue.extend(
                    format!(
                        "fake-server: you said nothing for {} s, goodbye\n",
                        says.as_secs()
                    )
                    .as_bytes(),
                );
                out.closing = true;
                u.more.notify_all();
            }
        }
    }

    /// SIGTERM or SIGINT: a goodbye to everyone, a flush of at most 1 s,
    /// then exit.
    fn wait_for_signal(&self) {
        let set = shutdown_signals();
        let mut sig = 0;
        // SAFETY: `set` is initialised and `sig` is a live int.
        unsafe { libc::sigwait(&set, &mut sig) };
        let name = if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::Relaxed);
        say!("fake-server: {name}: shutting down");
        if self.mode() != "chat-keeps-listening" {
            // No new clients: a listening socket shut down refuses them
            // (the accept thread's accept() then fails, and it stops).
            // SAFETY: plain syscall on our own listening descriptor.
            unsafe { libc::shutdown(self.listener, libc::SHUT_RDWR) };
        }
        let goodbye = b"fake-server: shutting down, goodbye\n";
        if self.mode() == "chat-no-flush" {
            // Says goodbye where the socket has room right now, and drops
            // the queues. Not to a user with bytes still queued: the
            // goodbye would overtake them, and whether their socket happens
            // to have room depends on how far that user's writer thread has
            // got (a single-threaded server would have filled it already).
            for u in lock(&self.room).iter() {
                if lock(&u.out).queue.is_empty() {
                    let _ = send_now(&u.conn, goodbye);
                }
            }
            exit(0);
        }
        for u in lock(&self.room).iter() {
            let mut out = lock(&u.out);
            out.queue.extend(goodbye);
            out.closing = true;
            u.more.notify_all();
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let flushed = lock(&self.room).iter().all(|u| {
                let out = lock(&u.out);
                out.dead || (out.queue.is_empty() && !out.writing)
            });
            if flushed {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for u in lock(&self.room).iter() {
            let _ = u.conn.shutdown(Shutdown::Both);
        }
        exit(if self.mode() == "chat-exits-1" { 1 } else { 0 });
    }
}

/// Whether the peer's FIN is already waiting behind what was read: a
/// recv(MSG_PEEK | MSG_DONTWAIT) that says 0.
fn eof_pending(conn: &TcpStream) -> bool {
    // A moment for a FIN sent right behind the bytes to arrive: the bug
    // this mode has is a loop that sees both at once.
    std::thread::sleep(Duration::from_millis(5));
    let mut byte = 0u8;
    // SAFETY: one byte of live buffer; the fd is an open socket.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

/// One send() that does not wait (MSG_DONTWAIT): how much the socket took;
/// a full socket takes nothing.
fn send_now(conn: &TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `bytes` is live for the call; the fd is an open socket.
    let sent = cvt(unsafe {
        libc::send(
            conn.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT,
        )
    });
    match sent {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Tells a client the room is full. Politely: shut down writing, so the
/// line and end of file arrive, then read what the client sent until it
/// closes (or 1 s passes), so the close resets nothing. Rudely: close at
/// once, unread input and all.
fn refuse(mut conn: TcpStream, rude: bool) -> TcpStream {
    let _ = conn.write_all(b"server is full\n");
    if rude {
        return conn;
    }
    let _ = conn.shutdown(Shutdown::Write);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    // Closed when the caller drops it.
    conn
}
