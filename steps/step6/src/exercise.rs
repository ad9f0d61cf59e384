//! # Step 6: never block (your turn)
//!
//! Your version of step 6: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 6` (`cargo test -p step6 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step6 --features exercise`.
//! - Stuck: `cargo learn hint 6`. Start over: `cargo learn reset 6`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! Step 5's chat room, with nothing in it that can wait. Step 5 wrote to
//! each user with blocking writes, as chatserv.c does, so one user who
//! never reads (a suspended `nc`) stalled the whole room. Here:
//!
//! - every socket is non-blocking (`O_NONBLOCK`): `read()`, `write()` and
//!   `accept()` return `EAGAIN` (`WouldBlock`) where they would have waited;
//! - each user has an output queue. A relay appends to every other user's
//!   queue and writes what that user's socket takes now; what it does not
//!   take waits in the queue;
//! - `EVFILT_WRITE` is registered for a user exactly while their queue is
//!   not empty: added when a write comes up short, deleted when the queue
//!   has drained. (Level-triggered writability left registered on an empty
//!   queue would wake the loop at once, every time, for nothing.)
//! - `--max-queue BYTES` bounds each queue (default 4 MiB): a user who falls
//!   further behind than that is disconnected and logged, and nobody else
//!   notices;
//! - a client refused because the room is full is refused politely: the
//!   line, then `shutdown(SHUT_WR)` (end of file), then its socket stays
//!   open, its bytes read and dropped, until it closes. Step 5's `close()`
//!   with the client's bytes unread made the kernel reset the connection;
//! - the log never blocks the loop: `stepkit::log_without_blocking()` hands
//!   every line to a writer thread, and with stderr a pipe nobody reads,
//!   lines are dropped (and counted) rather than waited for.
//!
//! What this step still does wrong at the descriptor limit: `accept()`
//! fails with `EMFILE`, the connection stays in the listen queue, the
//! listener stays readable, and the loop spins. Step 8 fixes that.
//!
//! Tests (`cargo test -p step6`): every check of step 5's chat; a user who
//! never reads while another sends megabytes (the others get every byte,
//! in order, and their round trips stay fast); a user over `--max-queue` is
//! dropped; every write size from 1 B to 1 MiB arrives whole through
//! partial writes; a refused client who typed first reads the whole line
//! and a clean end of file.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io;
use std::net::SocketAddr;
use std::ptr;

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EVFILT_WRITE, EV_ADD, EV_DELETE};

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
/// How many refused clients may wait at once for their end of file. This
/// step has no clock (step 7 adds one), so a refused client that never
/// closes would keep its descriptor for ever; past this many, the one
/// refused longest ago is closed.
const MAX_REFUSED: usize = 16;

stepkit::options! {
    /// `--max-users` and `--max-queue`, on top of `--host`, `--port` and
    /// `--quiet`.
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
}

/// A client told the room is full, whose side of the connection we have
/// shut down: we read and drop what it sends until it closes its side too.
struct Refused {
    fd: c_int,
    addr: SocketAddr,
}

pub fn main() {
    // The log never stops the loop: lines go to a writer thread, and are
    // dropped (counted) when nobody reads stderr (stepkit's output.rs).
    stepkit::log_without_blocking();
    let (args, opts) = stepkit::Args::parse_with::<Options>(stepkit::name!());
    let (nusers, max_queue) = (opts.max_users, opts.max_queue);
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
    stepkit::log!("the room has {nusers} slots; at most {max_queue} bytes wait for a user");

    let mut events = [kevent_zeroed(); NEVENTS];
    let mut buf = vec![0u8; BUFSIZE];
    loop {
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(wait)", e),
        };

        for ev in &events[..n] {
            // By value: on macOS the struct is packed.
            let fd = { ev.ident } as c_int;
            let (filter, data) = ({ ev.filter }, { ev.data });
            if fd == listener {
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
    todo!("nonblocking: make the accepted socket non-blocking (stepkit::set_nonblocking); if that fails, say so, close(fd) and return true");
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
    todo!("refuse_politely: send FULL_MSG with one write() (its empty send buffer takes it whole), then shutdown(SHUT_WR): end of file after the line, and no close() yet");
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
    // Otherwise watch it until it closes. Without a clock a client that
    // never closes would keep its descriptor for ever: past MAX_REFUSED,
    // the one refused longest ago is closed now.
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
    refused.push_back(Refused { fd, addr });
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
    let Some(user) = &users[slot] else { return };
    let (fd, addr) = (user.fd, user.addr);
    match stepkit::read(fd, buf) {
        Ok(0) => {
            stepkit::log!("user #{slot} ({addr}) left");
            conn_delete(kq, users, slot);
        }
        Ok(got) => relay(kq, users, slot, &buf[..got], max_queue),
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
        let over: bool = todo!("queue: append msg to this user's queue (user.out); if nothing was waiting before, write what the socket takes now (send_queued); `over`: their queue is now longer than max_queue");
        reached += 1;
        let Some(user) = &users[i] else { continue };
        if over {
            stepkit::log!(
                "user #{i} ({}) dropped: {} bytes wait for them, more than --max-queue {max_queue}",
                user.addr,
                user.out.len()
            );
            conn_delete(kq, users, i);
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
    todo!("write_queue: write from the front of user.out until it is empty or the socket is full: drain what each write() took; WouldBlock ends the loop; any other error: log it and clear the queue");
    let (want, changed): (bool, io::Result<usize>) = todo!("write_knote: make the write knote match the queue: `want` is whether bytes wait; if that is already so (user.writing), return; else EV_ADD or EV_DELETE this user's EVFILT_WRITE knote, `changed` being kevent()'s result");
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

/// `conn_delete()`: take the user out of the slot (it is free from here
/// on), then EV_DELETE (the read knote, and the write knote if bytes were
/// waiting), then close(). What was still queued for them goes with them.
fn conn_delete(kq: &Kqueue, users: &mut [Option<User>], slot: usize) {
    let Some(user) = users[slot].take() else {
        return;
    };
    let fd = user.fd;
    let deleted: io::Result<usize> = todo!("delete_user: conn_delete(): EV_DELETE the read knote, and the write knote too if user.writing, in one kevent(); then close(fd). `deleted` is kevent()'s result");
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
