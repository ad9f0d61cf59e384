//! # Step 8: at the limits
//!
//! Step 7's room, made to behave where the kernel runs short, and to talk
//! to the kernel less:
//!
//! - **Out of descriptors.** With every descriptor of the process in use,
//!   accept() fails with `EMFILE` (`ENFILE`: the whole system's), and the
//!   connection stays in the listen queue, so the listening socket stays
//!   readable. Steps 2 to 7 are then woken at once, fail again, and spin at
//!   100% CPU, writing a line to stderr each time. Here the listener's
//!   knote is disabled (`EV_DISABLE`), with one line on stderr, and enabled
//!   again (`EV_ENABLE`) when this server next closes a descriptor, with
//!   one more (both silenced by `--quiet`): the clients who waited in the listen queue meanwhile are
//!   then accepted and served, the longest-waiting first.
//! - **Batched changes.** Every change to the queue made while a batch of
//!   events is handled (a newcomer's `EV_ADD`, a write knote added or
//!   deleted, the listener disabled or enabled) goes into a changelist,
//!   submitted with the next `kevent()` wait: one call for all of them,
//!   the advice of Lemon's kqueue paper. A change that fails comes back as
//!   an `EV_ERROR` entry among the events. Because a change now reaches
//!   the kernel later, a descriptor is closed with `close()` alone (which
//!   removes its knotes) after its pending changes are taken out of the
//!   list: an `EV_DELETE` gathered before `close()` would reach the kernel
//!   after it and fail, or, the number given to a newcomer in the same
//!   batch, delete the newcomer's knote.
//!
//! - **Departures before admissions.** The listener's newcomers are
//!   accepted after the rest of the batch, and while users are leaving, a
//!   newcomer with no free slot waits in the listen queue rather than being
//!   refused: only a room that stayed full through a batch refuses.
//!
//! Tests (`cargo test -p step8`): every check of step 7 (listen, port,
//! chat, urgent-chat, never-block, idle, shutdown), the limits stage (at
//! 32 descriptors the server sleeps while clients wait, and serves them
//! when others leave), the two lines about the listener, and a batch in
//! which one client leaves and another takes its number.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io;
use std::net::SocketAddr;
use std::ptr;
use std::time::{Duration, Instant};

use kq::{
    ev_set, kevent, kevent_zeroed, Filter, Flags, Kqueue, EVFILT_READ, EVFILT_SIGNAL, EVFILT_TIMER,
    EVFILT_WRITE, EV_ADD, EV_DELETE, EV_DISABLE, EV_ENABLE, EV_ERROR,
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

// ANCHOR: options
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
// ANCHOR_END: options

// ANCHOR: users
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
// ANCHOR_END: users

// ANCHOR: refused
/// A client told the room is full, whose side of the connection we have
/// shut down: we read and drop what it sends until it closes its side too
/// (or LINGER passes).
struct Refused {
    fd: c_int,
    addr: SocketAddr,
    /// When it was refused: after LINGER we stop waiting for it.
    since: Instant,
}
// ANCHOR_END: refused

// ANCHOR: changes
/// The changelist: the changes to the queue made while a batch of events
/// is handled, submitted all at once with the next wait. It also knows
/// the listener, so that closing a descriptor (the moment one frees up)
/// can let the listener accept again.
struct Changes {
    list: Vec<kevent>,
    /// The listener, until shut_down() closes it.
    listener: Option<c_int>,
    /// Whether the listener's knote is disabled: we ran out of descriptors.
    paused: bool,
}

impl Changes {
    /// `EV_SET(&changes[nchanges++], ident, filter, flags, 0, 0, NULL)`:
    /// the change reaches the kernel with the next kevent().
    fn push(&mut self, ident: usize, filter: Filter, flags: Flags) {
        // LESSON: push
        let mut change = kevent_zeroed();
        ev_set(&mut change, ident, filter, flags, 0, 0, ptr::null_mut());
        self.list.push(change);
        // LESSON_END
    }

    /// Accepting failed for want of a descriptor: EV_DISABLE the listener
    /// (the waiting connection keeps it readable, and a level-triggered
    /// knote would wake us for it at once, every time), and say so once.
    fn pause_listener(&mut self, e: &io::Error) {
        // LESSON: pause_listener
        let Some(listener) = self.listener else {
            return;
        };
        if self.paused {
            return;
        }
        self.push(listener as usize, EVFILT_READ, EV_DISABLE);
        self.paused = true;
        // LESSON_END
        stepkit::log!(
            "accept: {e}: out of descriptors; EV_DISABLE the listener until one is closed"
        );
    }

    /// `close(fd)`: the only way this step closes a socket. close()
    /// removes the descriptor's knotes; an EV_DELETE gathered here would
    /// reach the kernel after the close(), and fail, or, if a newcomer got
    /// the number in the meantime, delete the newcomer's knote. So: no
    /// EV_DELETE, and the changes still pending for `fd` are dropped
    /// first. With a descriptor free, a paused listener is enabled again.
    fn close(&mut self, fd: c_int) {
        // LESSON: close_fd
        self.list.retain(|c| {
            let (ident, filter) = ({ c.ident }, { c.filter });
            ident != fd as usize || (filter != EVFILT_READ && filter != EVFILT_WRITE)
        });
        stepkit::close(fd);
        // LESSON_END
        // LESSON: resume_listener -> resumed: bool
        let resumed = match self.listener {
            Some(listener) if self.paused => {
                self.push(listener as usize, EVFILT_READ, EV_ENABLE);
                self.paused = false;
                true
            }
            _ => false,
        };
        // LESSON_END
        if resumed {
            stepkit::log!("fd {fd} closed: a descriptor is free; EV_ENABLE the listener");
        }
    }
}
// ANCHOR_END: changes

pub fn main() {
    // The log never stops the loop: lines go to a writer thread, and are
    // dropped (counted) when nobody reads stderr (stepkit's output.rs).
    stepkit::log_without_blocking();
    let (args, opts) = stepkit::Args::parse_with::<Options>(stepkit::name!());
    let (nusers, max_queue, idle_timeout) = (opts.max_users, opts.max_queue, opts.idle_timeout);
    // ANCHOR: users_array
    // static struct uc users[NUSERS]: every slot starts free.
    let mut users: Vec<Option<User>> = (0..nusers).map(|_| None).collect();
    // Refused clients waiting for their end of file, oldest first.
    let mut refused: VecDeque<Refused> = VecDeque::new();
    // ANCHOR_END: users_array

    // mksock(): socket, SO_REUSEADDR, bind, listen; prints `listening on`.
    let listener = stepkit::listen_or_exit(stepkit::name!(), &args);
    // ANCHOR: nonblocking_listener
    // A connection counted in the listener's `data` may be gone (reset by
    // its client) before we accept it: a blocking accept() would then wait
    // for the next one, and the room with it. Non-blocking, it says EAGAIN.
    if let Err(e) = stepkit::set_nonblocking(listener) {
        fatal("fcntl(O_NONBLOCK) on the listener", e);
    }
    // ANCHOR_END: nonblocking_listener

    // ANCHOR: create_queue
    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));
    // ANCHOR_END: create_queue

    // ANCHOR: register_listener
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
    // ANCHOR_END: register_listener

    // ANCHOR: register_signals
    // SIGINT (Ctrl-C), SIGTERM (kill, service managers) and SIGHUP (the
    // terminal went away) as events. On the BSDs and macOS, EVFILT_SIGNAL
    // only records that a signal came: the signal still does what its
    // disposition says, and for these three the default is to end the
    // process. So: signal(sig, SIG_IGN) first,
    // then EV_SET(&change, sig, EVFILT_SIGNAL, EV_ADD, 0, 0, NULL). (On
    // Linux, kq blocks the signal and reads it from a signalfd; a blocked
    // signal is kept for it even while ignored.)
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        if let Err(e) = stepkit::ignore_signal(sig) {
            fatal("signal(SIG_IGN)", e);
        }
        let mut change = kevent_zeroed();
        ev_set(
            &mut change,
            sig as usize,
            EVFILT_SIGNAL,
            EV_ADD,
            0,
            0,
            ptr::null_mut(),
        );
        if let Err(e) = kq.kevent(&[change], &mut [], None) {
            fatal("kevent(EV_ADD EVFILT_SIGNAL)", e);
        }
    }
    // ANCHOR_END: register_signals

    // ANCHOR: register_tick
    // EV_SET(&change, TICK, EVFILT_TIMER, EV_ADD, 0, TICK_MS, NULL): a
    // timer that fires every TICK_MS milliseconds, for ever (EV_ONESHOT
    // would make it fire once). Registered once, here: on Linux kq needs a
    // descriptor for it (a timerfd), which a server at its descriptor limit
    // would not have later.
    let mut change = kevent_zeroed();
    ev_set(
        &mut change,
        TICK,
        EVFILT_TIMER,
        EV_ADD,
        0,
        TICK_MS as _,
        ptr::null_mut(),
    );
    if let Err(e) = kq.kevent(&[change], &mut [], None) {
        fatal("kevent(EV_ADD EVFILT_TIMER)", e);
    }
    // ANCHOR_END: register_tick
    match idle_timeout {
        Some(t) => stepkit::log!(
            "the room has {nusers} slots; at most {max_queue} bytes wait for a user; users silent for {} s are disconnected",
            t.as_secs()
        ),
        None => stepkit::log!(
            "the room has {nusers} slots; at most {max_queue} bytes wait for a user; no idle timeout"
        ),
    }

    // ANCHOR: changelist
    // The registrations above went in one at a time, each checked at once:
    // a failure there ends the server before it serves anyone. From here
    // on, changes wait in the changelist for the next kevent().
    let mut changes = Changes {
        list: Vec::new(),
        listener: Some(listener),
        paused: false,
    };
    let mut events = vec![kevent_zeroed(); NEVENTS];
    // ANCHOR_END: changelist
    let mut buf = vec![0u8; BUFSIZE];
    // Set by the first SIGINT, SIGTERM or SIGHUP: we are saying goodbye.
    let mut stopping = false;
    loop {
        // ANCHOR: wait_for_events
        // kevent(changes, changes, nchanges, events, nevents, NULL): the changes
        // gathered while the last batch was handled go in, in order, and
        // the next batch comes out, in one call. A change that fails comes
        // back as an EV_ERROR entry among the events; with no room left
        // for one, kevent() would stop applying the changes after it, so
        // there is room for as many as there are changes.
        // LESSON: submit -> result: io::Result<usize>
        if events.len() < changes.list.len() {
            events.resize(changes.list.len(), kevent_zeroed());
        }
        let result = kq.kevent(&changes.list, &mut events, None);
        // Applied, even if the wait was then interrupted: never twice.
        changes.list.clear();
        // LESSON_END
        let n = match result {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(changes, wait)", e),
        };
        // ANCHOR_END: wait_for_events

        // ANCHOR: dispatch
        // How many connections the listener's event said are waiting, and
        // how many slots were free before this batch's departures.
        let mut newcomers = 0;
        let free_before = free_slots(&users);
        for ev in &events[..n] {
            // By value: on macOS the struct is packed.
            let (ident, filter, data) = ({ ev.ident }, { ev.filter }, { ev.data });
            // LESSON: ev_error
            if { ev.flags } & EV_ERROR != 0 {
                change_failed(&mut changes, &mut users, &mut refused, ident, filter, data);
                continue;
            }
            // LESSON_END
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
                        conn_delete(&mut changes, &mut users, slot);
                    }
                } else {
                    stopping = true;
                    shut_down(&mut changes, listener, &mut users, &mut refused, sig);
                }
                continue;
            }
            if filter == EVFILT_TIMER {
                tick(&mut changes, &mut users, &mut refused, idle_timeout);
                continue;
            }
            let fd = ident as c_int;
            // After shut_down() the listener is closed: its number is
            // nobody's (stale events for it are ignored below).
            if fd == listener && !stopping {
                // Accepted after the rest of the batch (below).
                newcomers = data;
                continue;
            }
            // conn_index(): which user is this? An event may be stale (its
            // user was removed earlier in this batch, and a newcomer may
            // have the number now): every read and write below is
            // non-blocking, so acting on one costs an EAGAIN, nothing more.
            if let Some(slot) = conn_index(&users, fd) {
                if filter == EVFILT_WRITE {
                    send_queued(&mut changes, &mut users, slot);
                } else {
                    recv_msg(&mut changes, &mut users, slot, &mut buf, max_queue);
                }
                continue;
            }
            if let Some(i) = refused.iter().position(|r| r.fd == fd) {
                drop_refused_input(&mut changes, &mut refused, i);
                continue;
            }
            stepkit::log!("fd {fd} is nobody's: event ignored");
        }
        // ANCHOR_END: dispatch

        // ANCHOR: departures_first
        // Departures before admissions: the listener's `data` connections
        // are accepted once the rest of the batch is handled, so the users
        // who left in it (their end of file is in the same batch) have freed
        // their slots and descriptors for the newcomers. And while users
        // are leaving, a newcomer for whom no slot is free yet is left in
        // the listen queue rather than refused: the listener is reported
        // again by the next kevent(), whose batch may free a slot. Only a
        // room that stayed full through a batch refuses. One connection
        // may be gone already: accept_user() says so, and we stop there.
        if !stopping {
            let free = free_slots(&users);
            let admit = if free > free_before {
                newcomers.min(free as kq::Data)
            } else {
                newcomers
            };
            for _ in 0..admit {
                if !accept_user(&mut changes, listener, &mut users, &mut refused) {
                    break;
                }
            }
        }
        // ANCHOR_END: departures_first

        // ANCHOR: exit
        // Shutting down, and every user's connection is closed: done.
        if stopping && users.iter().all(Option::is_none) {
            stepkit::log!("every connection is closed: exit(0)");
            return;
        }
        // ANCHOR_END: exit
    }
}

/// How many slots of the room are free.
fn free_slots(users: &[Option<User>]) -> usize {
    users.iter().filter(|u| u.is_none()).count()
}

/// `conn_index()`: the slot of the user on descriptor `fd`.
fn conn_index(users: &[Option<User>], fd: c_int) -> Option<usize> {
    users
        .iter()
        .position(|u| u.as_ref().is_some_and(|u| u.fd == fd))
}

// ANCHOR: accept_user
/// Accepts one waiting connection into the first free slot and registers
/// it; or, with every slot taken, refuses it politely. Returns false when
/// there was nothing to accept after all, or accept() failed: stop for
/// this event.
fn accept_user(
    changes: &mut Changes,
    listener: c_int,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
) -> bool {
    let (fd, addr) = match stepkit::accept(listener) {
        Ok(accepted) => accepted,
        // Counted in `data`, but gone before we got to it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
        // Out of descriptors: the connection stays in the listen queue
        // and keeps the listener readable. Stop watching the listener
        // until a descriptor frees (Changes::close() enables it again).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            changes.pause_listener(&e);
            return false;
        }
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
        refuse(changes, fd, addr, users.len(), refused);
        return true;
    };
    // EV_SET(&changes[nchanges++], fd, EVFILT_READ, EV_ADD, 0, 0, NULL):
    // registered with the next kevent() (an error comes back then).
    changes.push(fd as usize, EVFILT_READ, EV_ADD);
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
// ANCHOR_END: accept_user

// ANCHOR: refuse
/// Tells a client the room is full, politely. Step 5 wrote the line and
/// closed at once; but a client that typed something before it was
/// refused has bytes we never read, and close() with unread input makes
/// the kernel answer with a reset (RST), which may destroy the line before
/// the client reads it. So: the line, then shutdown(SHUT_WR), which sends
/// end of file after it; then we read and drop what the client sends, and
/// close() once it has closed its side (nothing unread is left then).
fn refuse(
    changes: &mut Changes,
    fd: c_int,
    addr: SocketAddr,
    room: usize,
    refused: &mut VecDeque<Refused>,
) {
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
        changes.close(fd);
        return;
    }
    // Otherwise watch it until it closes, or until the tick finds it has
    // waited LINGER. And past MAX_REFUSED, the one refused longest ago is
    // closed now.
    if refused.len() == MAX_REFUSED {
        drop_refused(changes, refused, 0);
    }
    changes.push(fd as usize, EVFILT_READ, EV_ADD);
    refused.push_back(Refused {
        fd,
        addr,
        since: Instant::now(),
    });
}

/// A refused client sent something, or closed: drop the bytes, and when it
/// has closed, close our side.
fn drop_refused_input(changes: &mut Changes, refused: &mut VecDeque<Refused>, i: usize) {
    if !drain(refused[i].fd) {
        drop_refused(changes, refused, i);
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

/// Forgets refused client `i`: close() (no EV_DELETE: see Changes).
fn drop_refused(changes: &mut Changes, refused: &mut VecDeque<Refused>, i: usize) {
    let Some(r) = refused.remove(i) else {
        return;
    };
    stepkit::log!(
        "refused {} (fd {}) is gone: close({})",
        r.addr,
        r.fd,
        r.fd
    );
    changes.close(r.fd);
}
// ANCHOR_END: refuse

// ANCHOR: recv_msg
/// A user is readable: relay what arrived to everyone else, or remove the
/// user at end of file (or on a reset). Like chatserv.c this goes by what
/// read() says, not by the EV_EOF flag: EV_EOF can come while data is
/// still buffered, and nothing sent just before leaving is lost. The read
/// does not block: with nothing to read (a stale event) it says EAGAIN,
/// and we wait for the next event.
fn recv_msg(
    changes: &mut Changes,
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
            conn_delete(changes, users, slot);
        }
        // A user being disconnected was told goodbye: what they still
        // send is read (so that nothing is left unread when we close, which
        // would reset the connection) and dropped.
        Ok(_) if user.leaving.is_some() => {}
        Ok(got) => {
            user.last_heard = Instant::now();
            relay(changes, users, slot, &buf[..got], max_queue);
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => {
            stepkit::log!("user #{slot} ({addr}) dropped: {e}");
            conn_delete(changes, users, slot);
        }
    }
}
// ANCHOR_END: recv_msg

// ANCHOR: relay
/// Queues `msg` for every user but the sender, and writes what each one's
/// socket takes now. Nothing here waits: what a socket does not take stays
/// in that user's queue for `EVFILT_WRITE` to announce room for, and a user
/// whose queue passes `max_queue` is disconnected.
fn relay(
    changes: &mut Changes,
    users: &mut [Option<User>],
    from: usize,
    msg: &[u8],
    max_queue: usize,
) {
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
            send_queued(changes, users, i);
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
            drop_behind(changes, users, i, max_queue);
        }
    }
    stepkit::log!(
        "user #{from}: relayed {} bytes to {reached} other user(s)",
        msg.len()
    );
}
// ANCHOR_END: relay

// ANCHOR: send_queued
/// Writes what `users[slot]`'s socket takes now from the front of their
/// queue: one write() after another until the queue is empty or the
/// socket is full (EAGAIN). Then makes the write knote match the queue:
/// EVFILT_WRITE is level-triggered, so registered on an empty queue it
/// would report "writable" at every kevent(), for nothing; registered only
/// while bytes wait, it reports exactly when they can move.
fn send_queued(changes: &mut Changes, users: &mut [Option<User>], slot: usize) {
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
        let _ = stepkit::shutdown_write(user.fd);
        drain(user.fd);
        stepkit::log!(
            "user #{slot} ({}) has their last line: shutdown(SHUT_WR)",
            user.addr
        );
        conn_delete(changes, users, slot);
        return;
    }
    // The write knote follows the queue: wanted exactly while bytes wait.
    let want = !user.out.is_empty();
    if want == user.writing {
        return;
    }
    // EV_SET(&changes[nchanges++], fd, EVFILT_WRITE, EV_ADD or EV_DELETE,
    // 0, 0, NULL): with the next kevent().
    let action = if want { EV_ADD } else { EV_DELETE };
    changes.push(user.fd as usize, EVFILT_WRITE, action);
    if want {
        stepkit::log!(
            "user #{slot} (fd {}) is not keeping up: the rest waits in their queue; EV_ADD EVFILT_WRITE",
            user.fd
        );
    } else {
        stepkit::log!(
            "user #{slot} (fd {}) caught up: their queue is empty; EV_DELETE EVFILT_WRITE",
            user.fd
        );
    }
    user.writing = want;
}
// ANCHOR_END: send_queued

// ANCHOR: leave
/// Disconnects `users[slot]` politely: `why` goes to the end of their
/// queue, they hear nothing more from the room, and once the queue has
/// drained send_queued() shuts the connection down and closes it. The
/// tick closes them anyway if that takes longer than LINGER.
fn leave(changes: &mut Changes, users: &mut [Option<User>], slot: usize, why: &[u8]) {
    let Some(user) = &mut users[slot] else { return };
    if user.leaving.is_some() {
        return;
    }
    user.leaving = Some(Instant::now() + LINGER);
    let was_empty = user.out.is_empty();
    user.out.extend(why);
    if was_empty {
        send_queued(changes, users, slot);
    }
}
// ANCHOR_END: leave

// ANCHOR: drop_behind
/// Disconnects a user who fell more than `max_queue` bytes behind, and
/// tells them why: what waits for them is thrown away (they could not
/// take it), and leave() queues one line in its place, on a line of its
/// own, with LINGER to take it, as for the idle timeout.
fn drop_behind(changes: &mut Changes, users: &mut [Option<User>], slot: usize, max_queue: usize) {
    let Some(user) = &mut users[slot] else { return };
    let behind = user.out.len();
    user.out.clear();
    let newline = if user.mid_line { "\n" } else { "" };
    let why = format!(
        "{newline}you are {behind} bytes behind (more than --max-queue {max_queue}): disconnected\n"
    );
    leave(changes, users, slot, why.as_bytes());
}
// ANCHOR_END: drop_behind

// ANCHOR: tick
/// The tick, once a second: one sweep over the room. A user silent for
/// the idle timeout is told so and disconnected; a user being disconnected
/// who has not taken their last line within LINGER is closed; so is a
/// refused client that has not closed within LINGER.
fn tick(
    changes: &mut Changes,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
    idle_timeout: Option<Duration>,
) {
    let now = Instant::now();
    for slot in 0..users.len() {
        let Some(user) = &users[slot] else { continue };
        match (user.leaving, idle_timeout) {
            (Some(deadline), _) if now >= deadline => {
                stepkit::log!(
                    "user #{slot} ({}) did not take their last {} bytes within {} s",
                    user.addr,
                    user.out.len(),
                    LINGER.as_secs()
                );
                conn_delete(changes, users, slot);
            }
            (None, Some(timeout)) if now - user.last_heard >= timeout => {
                let secs = timeout.as_secs();
                stepkit::log!(
                    "user #{slot} ({}) was silent for {secs} s",
                    user.addr
                );
                let why = format!("you sent nothing for {secs} s, goodbye\n");
                leave(changes, users, slot, why.as_bytes());
            }
            _ => {}
        }
    }
    // Refused clients are in the order they were refused.
    while refused.front().is_some_and(|r| now - r.since >= LINGER) {
        drop_refused(changes, refused, 0);
    }
}
// ANCHOR_END: tick

// ANCHOR: shut_down
/// SIGINT, SIGTERM or SIGHUP: stop listening, close the refused clients, and say
/// goodbye to every user (leave()). The loop ends once every user's
/// connection is closed: at once for users who read, after LINGER at most
/// for users who do not.
fn shut_down(
    changes: &mut Changes,
    listener: c_int,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
    sig: &str,
) {
    let present = users.iter().filter(|u| u.is_some()).count();
    stepkit::log!(
        "{sig}: shutting down; goodbye to {present} user(s); close({listener}): no new clients"
    );
    changes.listener = None;
    changes.close(listener);
    while !refused.is_empty() {
        drain(refused[0].fd);
        drop_refused(changes, refused, 0);
    }
    for slot in 0..users.len() {
        leave(changes, users, slot, SHUTDOWN_MSG);
    }
}
// ANCHOR_END: shut_down

// ANCHOR: conn_delete
/// `conn_delete()`: take the user out of the slot (it is free from here
/// on), then close(), which takes their knotes with it (Changes::close()
/// says why not EV_DELETE in this step), and what was queued for them.
fn conn_delete(changes: &mut Changes, users: &mut [Option<User>], slot: usize) {
    let Some(user) = users[slot].take() else {
        return;
    };
    let fd = user.fd;
    stepkit::log!("fd {fd}: close({fd}) and its knotes with it; slot #{slot} is free");
    changes.close(fd);
}
// ANCHOR_END: conn_delete

// ANCHOR: change_failed
/// An EV_ERROR entry: a change we submitted failed, with `errno` in
/// `data`. For a user or a refused client, we cannot watch them: drop
/// them. (Changes for closed descriptors never get here: Changes::close()
/// takes them out of the list.)
fn change_failed(
    changes: &mut Changes,
    users: &mut [Option<User>],
    refused: &mut VecDeque<Refused>,
    ident: usize,
    filter: Filter,
    errno: kq::Data,
) {
    let e = io::Error::from_raw_os_error(errno as i32);
    let what = if filter == EVFILT_WRITE {
        "EVFILT_WRITE"
    } else {
        "EVFILT_READ"
    };
    let fd = ident as c_int;
    stepkit::say!("fd {fd}: a change to its {what} knote failed: {e}");
    // LESSON: change_failed
    if let Some(slot) = conn_index(users, fd) {
        conn_delete(changes, users, slot);
    } else if let Some(i) = refused.iter().position(|r| r.fd == fd) {
        drop_refused(changes, refused, i);
    }
    // LESSON_END
}
// ANCHOR_END: change_failed

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    stepkit::exit(1);
}
