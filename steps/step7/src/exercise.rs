//! # Step 7: time and signals (your turn)
//!
//! Your version of step 7: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 7` (`cargo test -p step7 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step7 --features exercise`.
//! - Stuck: `cargo learn hint 7`. Start over: `cargo learn reset 7`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! Step 6's room, which now keeps time and hears signals: the two kqueue
//! filters that watch no descriptor.
//!
//! - `EVFILT_TIMER`: one periodic timer, the tick, fires every second. At
//!   each tick the server looks at everyone's clock: a user who has sent
//!   nothing for `--idle-timeout SECS` (off unless given) gets one line
//!   saying why and is disconnected; a user being disconnected who has not
//!   taken their last line within 2 s is closed anyway; a refused client
//!   that has not closed within 2 s is closed. One sweep a second, not one
//!   timer per user: the chapter weighs the two at 10,000 users.
//! - `EVFILT_SIGNAL`: SIGINT (Ctrl-C), SIGTERM and SIGHUP arrive as
//!   events, after `signal(SIG, SIG_IGN)` (on the BSDs the filter only records a signal;
//!   without SIG_IGN its default action still ends the process). Then the
//!   server stops listening, every user gets a line saying it is shutting
//!   down, queued output is written out (within 2 s: a user who does not
//!   read is not waited for longer), every connection is shut down and
//!   closed, and the server exits with status 0. A second signal stops the
//!   waiting.
//!
//! A user's connection now ends politely whenever the server ends it:
//! their last line is queued after everything else waiting for them, then
//! `shutdown(SHUT_WR)`, then `close()` with nothing left unread. A user
//! dropped past `--max-queue` is told why the same way: their queue is
//! thrown away and one line takes its place.
//!
//! Tests (`cargo test -p step7`): every check of step 6 (listen, port,
//! chat, urgent-chat, never-block), the idle stage (a silent user is told
//! and disconnected, talkers stay, a user who only reads is idle), the
//! shutdown stage (SIGTERM and SIGINT, also with queues full), and the
//! server closing each connection itself before it exits.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io;
use std::net::SocketAddr;
use std::ptr;
use std::time::{Duration, Instant};

use kq::{
    ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EVFILT_SIGNAL, EVFILT_TIMER, EVFILT_WRITE, EV_ADD,
    EV_DELETE,
};

/// How many events one `kevent()` call may return (NEVENTS in chatserv.c).
const NEVENTS: usize = 32;
/// The most bytes read (and relayed) per readable event. A user with more
/// waiting is simply reported again by the next `kevent()`.
const BUFSIZE: usize = 16 * 1024;
/// NUSERS in chatserv.c: the size of the room unless `--max-users` says.
const NUSERS: usize = 10;
/// What a client is told when every slot is taken.
const FULL_MSG: &[u8] = b"server is full, try again later\n";
/// The default `--max-queue`: 4 MiB, as much as Linux lets a socket's send
/// buffer grow to (the most of `net.ipv4.tcp_wmem`). Someone reading a chat
/// is never that far behind; a suspended `nc` gets there after some 8 MB of
/// chat (its kernel buffers hold the first 4).
const MAX_QUEUE: usize = 4 << 20;
/// How many refused clients may wait at once for their end of file (each
/// for LINGER at most); past this many, the one refused longest ago is
/// closed.
const MAX_REFUSED: usize = 16;
/// The tick's identifier. A timer watches no descriptor: its `ident` is
/// any number we choose, and names it among this queue's timers.
const TICK: usize = 1;
/// How often the tick fires, in milliseconds (EVFILT_TIMER's default unit).
const TICK_MS: i64 = 1000;
/// How long a user being disconnected has to take their last line, and a
/// refused client to close, before we close anyway.
const LINGER: Duration = Duration::from_secs(2);
/// What every user is told when the server shuts down.
const SHUTDOWN_MSG: &[u8] = b"server is shutting down, goodbye\n";

stepkit::options! {
    /// `--max-users`, `--max-queue` and `--idle-timeout`, on top of
    /// `--host`, `--port` and `--quiet`.
    struct Options {
        /// The size of the room: NUSERS unless `--max-users` says.
        max_users: usize = NUSERS, "--max-users N",
            |v| match v.parse::<usize>() {
                Ok(n) if (1..=65536).contains(&n) => Ok(n),
                _ => Err(format!("takes a number from 1 to 65536, not '{v}'")),
            },
            "how many users the room holds (default 10, NUSERS in chatserv.c)";
        /// The most bytes that may wait for one user.
        max_queue: usize = MAX_QUEUE, "--max-queue BYTES",
            |v| match v.parse::<usize>() {
                Ok(n) if (1..=1 << 30).contains(&n) => Ok(n),
                _ => Err(format!("takes a number of bytes from 1 to 1073741824, not '{v}'")),
            },
            "how many bytes may wait for a user who does not read before they are disconnected (default 4194304, 4 MiB)";
        /// How long a user may stay silent; None: for ever.
        idle_timeout: Option<Duration> = None, "--idle-timeout SECS",
            |v| match v.parse::<u64>() {
                Ok(n) if (1..=86400).contains(&n) => Ok(Some(Duration::from_secs(n))),
                _ => Err(format!("takes a number of seconds from 1 to 86400, not '{v}'")),
            },
            "disconnect a user who sends nothing for SECS seconds (default: never)";
    }
}

/// One slot of `users[]`: the user's descriptor and address, and now what
/// is waiting to be written to them. A free slot is `None` (chatserv.c
/// marks it with `uc_fd = -1`).
struct User {
    fd: c_int,
    addr: SocketAddr,
    /// Bytes relayed to this user that their socket has not taken yet,
    /// oldest first. A ring buffer: relays append at the back, writes take
    /// from the front, and what is left is never moved.
    out: VecDeque<u8>,
    /// Whether this user's `EVFILT_WRITE` knote is registered: exactly
    /// while `out` is not empty.
    writing: bool,
    /// When this user last sent something (joining counts).
    last_heard: Instant,
    /// Set once we are disconnecting this user: by when their queue (their
    /// last line last) must have drained. They hear nothing more from the
    /// room, and what they send is dropped.
    leaving: Option<Instant>,
    /// Whether the last byte their socket took was not a newline: a line
    /// we send them then starts on a line of its own.
    mid_line: bool,
}

/// A client told the room is full, whose side of the connection we have
/// shut down: we read and drop what it sends until it closes its side too
/// (or LINGER passes).
struct Refused {
    fd: c_int,
    addr: SocketAddr,
    /// When it was refused: after LINGER we stop waiting for it.
    since: Instant,
}

pub fn main() {
    // The log never stops the loop: lines go to a writer thread, and are
    // dropped (counted) when nobody reads stderr (stepkit's output.rs).
    stepkit::log_without_blocking();
    let (args, opts) = stepkit::Args::parse_with::<Options>(stepkit::name!());
    let (nusers, max_queue, idle_timeout) = (opts.max_users, opts.max_queue, opts.idle_timeout);
    // static struct uc users[NUSERS]: every slot starts free.
    let mut users: Vec<Option<User>> = (0..nusers).map(|_| None).collect();
    // Refused clients waiting for their end of file, oldest first.
    let mut refused: VecDeque<Refused> = VecDeque::new();

    // mksock(): socket, SO_REUSEADDR, bind, listen; prints `listening on`.
    let listener = stepkit::listen_or_exit(stepkit::name!(), &args);
    // A connection counted in the listener's `data` may be gone (reset by
    // its client) before we accept it: a blocking accept() would then wait
    // for the next one, and the room with it. Non-blocking, it says EAGAIN.
    if let Err(e) = stepkit::set_nonblocking(listener) {
        fatal("fcntl(O_NONBLOCK) on the listener", e);
    }

    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));

    // EV_SET(&change, listener, EVFILT_READ, EV_ADD, 0, 0, NULL);
    let mut change = kevent_zeroed();
    ev_set(
        &mut change,
        listener as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        ptr::null_mut(),
    );
    if let Err(e) = kq.kevent(&[change], &mut [], None) {
        fatal("kevent(EV_ADD listener)", e);
    }

    // SIGINT (Ctrl-C), SIGTERM (kill, service managers) and SIGHUP (the
    // terminal went away) as events. On the BSDs and macOS, EVFILT_SIGNAL
    // only records that a signal came: the signal still does what its
    // disposition says, and for these three the default is to end the
    // process. So: signal(sig, SIG_IGN) first,
    // then EV_SET(&change, sig, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL). (On
    // Linux, kq blocks the signal and reads it from a signalfd; a blocked
    // signal is kept for it even while ignored.)
    todo!("register_signals: for SIGINT, SIGTERM and SIGHUP: signal(sig, SIG_IGN) (stepkit::ignore_signal), then EV_ADD an EVFILT_SIGNAL knote whose ident is the signal's number; fatal() if either fails");

    // EV_SET(&change, TICK, EVFILT_TIMER, EV_ADD, 0, TICK_MS, NULL): a
    // timer that fires every TICK_MS milliseconds, for ever (EV_ONESHOT
    // would make it fire once). Registered once, here: on Linux kq needs a
    // descriptor for it (a timerfd), which a server at its descriptor limit
    // would not have later.
    todo!("register_tick: EV_ADD the tick: an EVFILT_TIMER knote with ident TICK and data TICK_MS (periodic: no EV_ONESHOT); fatal() if it fails");
    match idle_timeout {
        Some(t) => stepkit::log!(
            "the room has {nusers} slots; at most {max_queue} bytes wait for a user; users silent for {} s are disconnected",
            t.as_secs()
        ),
        None => stepkit::log!(
            "the room has {nusers} slots; at most {max_queue} bytes wait for a user; no idle timeout"
        ),
    }

    let mut events = [kevent_zeroed(); NEVENTS];
    let mut buf = vec![0u8; BUFSIZE];
    // Set by the first SIGINT, SIGTERM or SIGHUP: we are saying goodbye.
    let mut stopping = false;
    loop {
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(wait)", e),
        };

        for ev in &events[..n] {
            // By value: on macOS the struct is packed.
            let (ident, filter, data) = ({ ev.ident }, { ev.filter }, { ev.data });
            // An event is (ident, filter): a signal's ident is its number
            // and the tick's is TICK, which may equal a descriptor's. So
            // the filter first, and only then the ident as a descriptor.
            if filter == EVFILT_SIGNAL {
                let sig = match ident as c_int {
                    libc::SIGINT => "SIGINT",
                    libc::SIGHUP => "SIGHUP",
                    _ => "SIGTERM",
                };
                if stopping {
                    stepkit::log!("{sig} again: not waiting any longer");
                    for slot in 0..users.len() {
                        conn_delete(&kq, &mut users, slot);
                    }
                } else {
                    stopping = true;
                    shut_down(&kq, listener, &mut users, &mut refused, sig);
                }
                continue;
            }
            if filter == EVFILT_TIMER {
                tick(&kq, &mut users, &mut refused, idle_timeout);
                continue;
            }
            let fd = ident as c_int;
            // After shut_down() the listener is closed: its number is
            // nobody's (stale events for it are ignored below).
            if fd == listener && !stopping {
                // `data` connections are waiting. One may be gone already:
                // accept_user() says so, and we stop there.
                for _ in 0..data {
                    if !accept_user(&kq, listener, &mut users, &mut refused) {
                        break;
                    }
                }
                continue;
            }
            // conn_index(): which user is this? An event may be stale (its
            // user was removed earlier in this batch, and a newcomer may
            // have the number now): every read and write below is
            // non-blocking, so acting on one costs an EAGAIN, nothing more.
            if let Some(slot) = conn_index(&users, fd) {
                if filter == EVFILT_WRITE {
                    send_queued(&kq, &mut users, slot);
                } else {
                    recv_msg(&kq, &mut users, slot, &mut buf, max_queue);
                }
                continue;
            }
            if let Some(i) = refused.iter().position(|r| r.fd == fd) {
                drop_refused_input(&kq, &mut refused, i);
                continue;
            }
            stepkit::log!("fd {fd} is nobody's: event ignored");
        }

        // Shutting down, and every user's connection is closed: done.
        if stopping && users.iter().all(Option::is_none) {
            stepkit::log!("every connection is closed: exit(0)");
            return;
        }
    }
}

/// `conn_index()`: the slot of the user on descriptor `fd`.
fn conn_index(users: &[Option<User>], fd: c_int) -> Option<usize> {
    users
        .iter()
        .position(|u| u.as_ref().is_some_and(|u| u.fd == fd))
}

/// Accepts one waiting connection into the first free slot and registers
/// it; or, with every slot taken, refuses it politely. Returns false when
/// there was nothing to accept after all, or accept() failed: stop for
/// this event.
fn accept_user(
    kq: &Kqueue,
    listener: c_int,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
) -> bool {
    let (fd, addr) = match stepkit::accept(listener) {
        Ok(accepted) => accepted,
        // Counted in `data`, but gone before we got to it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
        // Out of descriptors (EMFILE), among others. The connection stays
        // in the listen queue and the listener stays readable: the next
        // kevent() reports it at once, and we come back here, again and
        // again. Step 8 stops watching the listener instead.
        Err(e) => {
            stepkit::say!("accept: {e}");
            return false;
        }
    };
    // Each accepted socket is made non-blocking itself: on Linux it does
    // not inherit O_NONBLOCK from the listener (on the BSDs it does).
    if let Err(e) = stepkit::set_nonblocking(fd) {
        stepkit::say!("fd {fd}: fcntl(O_NONBLOCK): {e}, close({fd})");
        stepkit::close(fd);
        return true;
    }
    // conn_add(): the first free slot, if any.
    let free = users.iter().position(Option::is_none);
    let Some(slot) = free else {
        refuse(kq, fd, addr, users.len(), refused);
        return true;
    };
    // EV_SET(&change, fd, EVFILT_READ, EV_ADD, 0, 0, NULL); kevent(changes).
    let mut change = kevent_zeroed();
    ev_set(
        &mut change,
        fd as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        ptr::null_mut(),
    );
    if let Err(e) = kq.kevent(&[change], &mut [], None) {
        stepkit::say!("fd {fd}: kevent(EV_ADD): {e}, close({fd})");
        stepkit::close(fd);
        return true;
    }
    users[slot] = Some(User {
        fd,
        addr,
        out: VecDeque::new(),
        writing: false,
        last_heard: Instant::now(),
        leaving: None,
        mid_line: false,
    });
    stepkit::log!("user #{slot} joined from {addr} (fd {fd})");
    true
}

/// Tells a client the room is full, politely. Step 5 wrote the line and
/// closed at once; but a client that typed something before it was
/// refused has bytes we never read, and close() with unread input makes
/// the kernel answer with a reset (RST), which may destroy the line before
/// the client reads it. So: the line, then shutdown(SHUT_WR), which sends
/// end of file after it; then we read and drop what the client sends, and
/// close() once it has closed its side (nothing unread is left then).
fn refuse(kq: &Kqueue, fd: c_int, addr: SocketAddr, room: usize, refused: &mut VecDeque<Refused>) {
    // A new socket's send buffer is empty: the short line goes out whole.
    let _ = stepkit::write(fd, FULL_MSG);
    let _ = stepkit::shutdown_write(fd);
    let s = if room == 1 { "" } else { "s" };
    stepkit::log!(
        "refused {addr} (fd {fd}): the room is full ({room} user{s}), shutdown(SHUT_WR)"
    );
    // What it typed before we answered is here already: drop it. If it has
    // closed its side too, we are done.
    if !drain(fd) {
        stepkit::log!("refused {addr} (fd {fd}) is gone: close({fd})");
        stepkit::close(fd);
        return;
    }
    // Otherwise watch it until it closes, or until the tick finds it has
    // waited LINGER. And past MAX_REFUSED, the one refused longest ago is
    // closed now.
    if refused.len() == MAX_REFUSED {
        drop_refused(kq, refused, 0);
    }
    let mut change = kevent_zeroed();
    ev_set(
        &mut change,
        fd as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        ptr::null_mut(),
    );
    if let Err(e) = kq.kevent(&[change], &mut [], None) {
        stepkit::say!("fd {fd}: kevent(EV_ADD): {e}, close({fd})");
        stepkit::close(fd);
        return;
    }
    refused.push_back(Refused {
        fd,
        addr,
        since: Instant::now(),
    });
}

/// A refused client sent something, or closed: drop the bytes, and when it
/// has closed, close our side.
fn drop_refused_input(kq: &Kqueue, refused: &mut VecDeque<Refused>, i: usize) {
    if !drain(refused[i].fd) {
        drop_refused(kq, refused, i);
    }
}

/// Reads and drops whatever `fd` has to read. Returns whether the
/// connection is still open (false: end of file, or an error).
fn drain(fd: c_int) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stepkit::read(fd, &mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Forgets refused client `i`: EV_DELETE, then close().
fn drop_refused(kq: &Kqueue, refused: &mut VecDeque<Refused>, i: usize) {
    let Some(r) = refused.remove(i) else {
        return;
    };
    let mut change = kevent_zeroed();
    ev_set(
        &mut change,
        r.fd as usize,
        EVFILT_READ,
        EV_DELETE,
        0,
        0,
        ptr::null_mut(),
    );
    let _ = kq.kevent(&[change], &mut [], None);
    stepkit::log!(
        "refused {} (fd {}) is gone: close({})",
        r.addr,
        r.fd,
        r.fd
    );
    stepkit::close(r.fd);
}

/// A user is readable: relay what arrived to everyone else, or remove the
/// user at end of file (or on a reset). Like chatserv.c this goes by what
/// read() says, not by the EV_EOF flag: EV_EOF can come while data is
/// still buffered, and nothing sent just before leaving is lost. The read
/// does not block: with nothing to read (a stale event) it says EAGAIN,
/// and we wait for the next event.
fn recv_msg(
    kq: &Kqueue,
    users: &mut [Option<User>],
    slot: usize,
    buf: &mut [u8],
    max_queue: usize,
) {
    let Some(user) = &mut users[slot] else { return };
    let (fd, addr) = (user.fd, user.addr);
    match stepkit::read(fd, buf) {
        Ok(0) => {
            stepkit::log!("user #{slot} ({addr}) left");
            conn_delete(kq, users, slot);
        }
        // A user being disconnected was told goodbye: what they still
        // send is read (so that nothing is left unread when we close, which
        // would reset the connection) and dropped.
        Ok(_) if user.leaving.is_some() => {}
        Ok(got) => {
            user.last_heard = Instant::now();
            relay(kq, users, slot, &buf[..got], max_queue);
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => {
            stepkit::log!("user #{slot} ({addr}) dropped: {e}");
            conn_delete(kq, users, slot);
        }
    }
}

/// Queues `msg` for every user but the sender, and writes what each one's
/// socket takes now. Nothing here waits: what a socket does not take stays
/// in that user's queue for `EVFILT_WRITE` to announce room for, and a user
/// whose queue passes `max_queue` is disconnected.
fn relay(kq: &Kqueue, users: &mut [Option<User>], from: usize, msg: &[u8], max_queue: usize) {
    let mut reached = 0;
    for i in 0..users.len() {
        if i == from {
            continue;
        }
        let Some(user) = &mut users[i] else { continue };
        if user.leaving.is_some() {
            continue;
        }
        let was_empty = user.out.is_empty();
        user.out.extend(msg);
        // With bytes already waiting, this user's socket was full at the
        // last write and EVFILT_WRITE is registered: it will say when there
        // is room. Only a user with nothing waiting is written to now.
        if was_empty {
            send_queued(kq, users, i);
        }
        // Past the limit, this user is dropped (below).
        let over = users[i]
            .as_ref()
            .is_some_and(|user| user.out.len() > max_queue);
        reached += 1;
        let Some(user) = &users[i] else { continue };
        if over {
            stepkit::log!(
                "user #{i} ({}) dropped: {} bytes wait for them, more than --max-queue {max_queue}",
                user.addr,
                user.out.len()
            );
            drop_behind(kq, users, i, max_queue);
        }
    }
    stepkit::log!(
        "user #{from}: relayed {} bytes to {reached} other user(s)",
        msg.len()
    );
}

/// Writes what `users[slot]`'s socket takes now from the front of their
/// queue: one write() after another until the queue is empty or the
/// socket is full (EAGAIN). Then makes the write knote match the queue:
/// EVFILT_WRITE is level-triggered, so registered on an empty queue it
/// would report "writable" at every kevent(), for nothing; registered only
/// while bytes wait, it reports exactly when they can move.
fn send_queued(kq: &Kqueue, users: &mut [Option<User>], slot: usize) {
    let Some(user) = &mut users[slot] else { return };
    while !user.out.is_empty() {
        // The queue's first contiguous piece (a ring buffer may hold two).
        let (front, _) = user.out.as_slices();
        match stepkit::write(user.fd, front) {
            Ok(n) => {
                user.mid_line = n > 0 && front[n - 1] != b'\n';
                user.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                // That user is gone (EPIPE, ECONNRESET; Rust ignores
                // SIGPIPE). Their own EVFILT_READ event reports it and
                // removes them; nothing waiting for them matters now.
                stepkit::log!("user #{slot} (fd {}): write: {e}", user.fd);
                user.out.clear();
            }
        }
    }
    // A user being disconnected whose queue has drained got everything,
    // their last line last: now the end of file, then close().
    if user.leaving.is_some() && user.out.is_empty() {
        todo!("last_line: this leaving user has taken everything, their last line last: shutdown(SHUT_WR) (end of file after it), then read and drop what they sent (drain), so that close() finds nothing unread");
        stepkit::log!(
            "user #{slot} ({}) has their last line: shutdown(SHUT_WR)",
            user.addr
        );
        conn_delete(kq, users, slot);
        return;
    }
    // The write knote follows the queue: wanted exactly while bytes wait.
    let want = !user.out.is_empty();
    if want == user.writing {
        return;
    }
    // EV_SET(&change, fd, EVFILT_WRITE, EV_ADD or EV_DELETE, 0, 0, NULL);
    let mut change = kevent_zeroed();
    let action = if want { EV_ADD } else { EV_DELETE };
    ev_set(
        &mut change,
        user.fd as usize,
        EVFILT_WRITE,
        action,
        0,
        0,
        ptr::null_mut(),
    );
    let changed = kq.kevent(&[change], &mut [], None);
    match changed {
        Ok(_) if want => stepkit::log!(
            "user #{slot} (fd {}) is not keeping up: the rest waits in their queue; EV_ADD EVFILT_WRITE",
            user.fd
        ),
        Ok(_) => stepkit::log!(
            "user #{slot} (fd {}) caught up: their queue is empty; EV_DELETE EVFILT_WRITE",
            user.fd
        ),
        Err(e) => {
            stepkit::say!("fd {}: kevent(EVFILT_WRITE): {e}", user.fd);
            return;
        }
    }
    user.writing = want;
}

/// Disconnects `users[slot]` politely: `why` goes to the end of their
/// queue, they hear nothing more from the room, and once the queue has
/// drained send_queued() shuts the connection down and closes it. The
/// tick closes them anyway if that takes longer than LINGER.
fn leave(kq: &Kqueue, users: &mut [Option<User>], slot: usize, why: &[u8]) {
    let Some(user) = &mut users[slot] else { return };
    todo!("leave: unless this user is already leaving: set their deadline (now + LINGER), append `why` to their queue, and write now if nothing was waiting (send_queued)");
}

/// Disconnects a user who fell more than `max_queue` bytes behind, and
/// tells them why: what waits for them is thrown away (they could not
/// take it), and leave() queues one line in its place, on a line of its
/// own, with LINGER to take it, as for the idle timeout.
fn drop_behind(kq: &Kqueue, users: &mut [Option<User>], slot: usize, max_queue: usize) {
    let Some(user) = &mut users[slot] else { return };
    let behind = user.out.len();
    user.out.clear();
    let newline = if user.mid_line { "\n" } else { "" };
    let why = format!(
        "{newline}you are {behind} bytes behind (more than --max-queue {max_queue}): disconnected\n"
    );
    leave(kq, users, slot, why.as_bytes());
}

/// The tick, once a second: one sweep over the room. A user silent for
/// the idle timeout is told so and disconnected; a user being disconnected
/// who has not taken their last line within LINGER is closed; so is a
/// refused client that has not closed within LINGER.
fn tick(
    kq: &Kqueue,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
    idle_timeout: Option<Duration>,
) {
    let now = Instant::now();
    for slot in 0..users.len() {
        let Some(user) = &users[slot] else { continue };
        let (late, idle): (bool, bool) = todo!("sweep: the tick's look at one user: `late` when they are leaving and their deadline has passed; `idle` when they are not leaving, an idle timeout is set, and they have been silent at least that long");
        if late {
            stepkit::log!(
                "user #{slot} ({}) did not take their last {} bytes within {} s",
                user.addr,
                user.out.len(),
                LINGER.as_secs()
            );
            conn_delete(kq, users, slot);
        } else if let Some(timeout) = idle_timeout.filter(|_| idle) {
            let secs = timeout.as_secs();
            stepkit::log!(
                "user #{slot} ({}) was silent for {secs} s",
                user.addr
            );
            let why = format!("you sent nothing for {secs} s, goodbye\n");
            leave(kq, users, slot, why.as_bytes());
        }
    }
    // Refused clients are in the order they were refused.
    while refused.front().is_some_and(|r| now - r.since >= LINGER) {
        drop_refused(kq, refused, 0);
    }
}

/// SIGINT, SIGTERM or SIGHUP: stop listening, close the refused clients, and say
/// goodbye to every user (leave()). The loop ends once every user's
/// connection is closed: at once for users who read, after LINGER at most
/// for users who do not.
fn shut_down(
    kq: &Kqueue,
    listener: c_int,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
    sig: &str,
) {
    let present = users.iter().filter(|u| u.is_some()).count();
    stepkit::log!(
        "{sig}: shutting down; goodbye to {present} user(s); EV_DELETE, close({listener}): no new clients"
    );
    todo!("shut_down: stop listening (EV_DELETE the listener, then close() it), drain and drop every refused client (drop_refused), then leave() every slot with SHUTDOWN_MSG");
}

/// `conn_delete()`: take the user out of the slot (it is free from here
/// on), then EV_DELETE (the read knote, and the write knote if bytes were
/// waiting), then close(). What was still queued for them goes with them.
fn conn_delete(kq: &Kqueue, users: &mut [Option<User>], slot: usize) {
    let Some(user) = users[slot].take() else {
        return;
    };
    let fd = user.fd;
    let mut changes = [kevent_zeroed(); 2];
    ev_set(
        &mut changes[0],
        fd as usize,
        EVFILT_READ,
        EV_DELETE,
        0,
        0,
        ptr::null_mut(),
    );
    ev_set(
        &mut changes[1],
        fd as usize,
        EVFILT_WRITE,
        EV_DELETE,
        0,
        0,
        ptr::null_mut(),
    );
    let n = if user.writing { 2 } else { 1 };
    let deleted = kq.kevent(&changes[..n], &mut [], None);
    stepkit::close(fd);
    match deleted {
        Ok(_) => stepkit::log!("fd {fd}: EV_DELETE, close({fd}); slot #{slot} is free"),
        // Should not happen: the fd is open and registered. Say so loudly
        // (it was closed all the same, or it would leak).
        Err(e) => stepkit::say!("fd {fd}: kevent(EV_DELETE): {e}; closed it anyway"),
    }
}

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    stepkit::exit(1);
}
