//! # Step 5: chatserv (your turn)
//!
//! Your version of step 5: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 5` (`cargo test -p step5 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step5 --features exercise`.
//! - Stuck: `cargo learn hint 5`. Start over: `cargo learn reset 5`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! The chat room of chatserv.c ("EVFILT_READ example"), in Rust. Step 4 was
//! the echo server, where every client only ever talked to itself; this
//! step keeps the same loop and adds what turns it into a room:
//!
//! - `users[NUSERS]`: a fixed array of slots, each a descriptor and the
//!   peer's address (`--max-users`, default 10 like `NUSERS`);
//! - accept into the first free slot, or tell the client the server is
//!   full (one line) and close it: it was never registered, so `close()` is
//!   all there is to undo;
//! - relay: whatever a user sends is written to every *other* user, never
//!   back to the sender;
//! - a leaving user is removed with `EV_DELETE`, then `close()`, the order
//!   step 4 showed is the right one, and the slot is freed.
//!
//! Joins and leaves are logged with the slot, the fd and the peer address.
//!
//! One honest limit, kept on purpose because chatserv.c has it too: the
//! relay writes to each user in turn with *blocking* writes. A user who
//! never reads fills their receive window, the write to them waits, and
//! the whole room waits with it: nobody else hears anything, and nobody is
//! accepted, until that user reads or leaves. Step 6 fixes it with
//! `EVFILT_WRITE` and per-user output queues; here the test
//! `a_user_who_never_reads_stalls_the_whole_room` shows the stall.
//!
//! Tests (`cargo test -p step5`): each message reaches exactly the other
//! users, byte for byte; user 11 is told the room is full and closed while
//! the ten keep talking; a freed slot is taken by the next client; a user
//! who resets is removed and nobody notices; 64 KiB and binary messages
//! arrive whole; 500 join/leave cycles leak no descriptor.

use std::ffi::c_int;
use std::io;
use std::net::SocketAddr;
use std::process::exit;
use std::ptr;

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD, EV_DELETE, EV_EOF};

/// How many events one `kevent()` call may return (NEVENTS in chatserv.c).
const NEVENTS: usize = 32;
/// The most bytes read (and relayed) per readable event. A user with more
/// waiting is simply reported again by the next `kevent()`.
const BUFSIZE: usize = 16 * 1024;
/// NUSERS in chatserv.c: the size of the room unless `--max-users` says.
const NUSERS: usize = 10;
/// What a client is told when every slot is taken.
const FULL_MSG: &[u8] = b"server is full, try again later\n";

stepkit::options! {
    /// `--max-users`, on top of `--host`, `--port` and `--quiet`.
    struct Options {
        /// The size of the room: NUSERS unless `--max-users` says.
        max_users: usize = NUSERS, "--max-users N",
            |v| match v.parse::<usize>() {
                Ok(n) if (1..=65536).contains(&n) => Ok(n),
                _ => Err(format!("takes a number from 1 to 65536, not '{v}'")),
            },
            "how many users the room holds (default 10, NUSERS in chatserv.c)";
    }
}

/// One slot of `users[]`: the user's descriptor and address. A free slot
/// is `None` (chatserv.c marks it with `uc_fd = -1`).
#[derive(Clone, Copy)]
struct User {
    fd: c_int,
    addr: SocketAddr,
}

pub fn main() {
    let (args, opts) = stepkit::Args::parse_with::<Options>(stepkit::name!());
    let nusers = opts.max_users;
    // static struct uc users[NUSERS]: every slot starts free.
    let mut users: Vec<Option<User>> = vec![None; nusers];

    // mksock(): socket, SO_REUSEADDR, bind, listen; prints `listening on`.
    let listener = stepkit::listen_or_exit(stepkit::name!(), &args);

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
    stepkit::log!("the room has {nusers} slots");

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
            let (flags, data) = ({ ev.flags }, { ev.data });
            if fd == listener {
                // `data` connections are waiting: accepting that many
                // never blocks.
                for _ in 0..data {
                    accept_user(&kq, listener, &mut users);
                }
                continue;
            }
            // conn_index(): which user is this? Only users are registered,
            // so a miss would mean an event for a slot already freed: not
            // ours to act on.
            let Some(slot) = conn_index(&users, fd) else {
                stepkit::log!("fd {fd} is nobody's: event ignored");
                continue;
            };
            if data == 0 && flags & EV_EOF == 0 {
                // Readable with nothing to read and no EOF should not
                // happen; a blocking read would stall the room, so don't.
                continue;
            }
            recv_msg(&kq, &mut users, slot, &mut buf);
        }
    }
}

/// `conn_index()`: the slot of the user on descriptor `fd`.
fn conn_index(users: &[Option<User>], fd: c_int) -> Option<usize> {
    users.iter().position(|u| u.is_some_and(|u| u.fd == fd))
}

/// Accepts one waiting connection into the first free slot and registers
/// it; or, with every slot taken, tells the client so and closes it.
fn accept_user(kq: &Kqueue, listener: c_int, users: &mut [Option<User>]) {
    let (fd, addr) = match stepkit::accept(listener) {
        Ok(accepted) => accepted,
        // Gone before we got to it, or out of descriptors (EMFILE). That
        // one is not harmless: the connection stays in the listen queue,
        // the listener stays readable, and the next kevent() brings us back
        // here at once, for ever: a spin at 100% CPU. Step 8 stops watching
        // the listener.
        Err(e) => {
            stepkit::say!("accept: {e}");
            return;
        }
    };
    let free: Option<usize> = todo!("first_free_slot: conn_add(): the index of the first free slot (None) of `users`, or None when every slot is taken");
    let Some(slot) = free else {
        todo!("refuse: the room is full: send FULL_MSG with write_all, then close(fd); it was never registered, so that is all");
        let room = users.len();
        let s = if room == 1 { "" } else { "s" };
        stepkit::log!(
            "refused {addr} (fd {fd}): the room is full ({room} user{s}), close({fd})"
        );
        return;
    };
    todo!("register_user: register fd (EV_SET ... EV_ADD and kevent(); close it and return if that fails), then put the user in users[slot]");
    stepkit::log!("user #{slot} joined from {addr} (fd {fd})");
}

/// A user is readable: relay what arrived to everyone else, or remove the
/// user at end of file (or on a reset). Like chatserv.c this goes by what
/// read() says, not by the EV_EOF flag: EV_EOF can come while data is
/// still buffered, and nothing sent just before leaving is lost.
fn recv_msg(kq: &Kqueue, users: &mut [Option<User>], slot: usize, buf: &mut [u8]) {
    let user = users[slot].expect("conn_index found it");
    match stepkit::read(user.fd, buf) {
        Ok(0) => {
            stepkit::log!("user #{slot} ({}) left", user.addr);
            conn_delete(kq, users, slot);
        }
        Ok(got) => relay(users, slot, &buf[..got]),
        Err(e) => {
            stepkit::log!("user #{slot} ({}) dropped: {e}", user.addr);
            conn_delete(kq, users, slot);
        }
    }
}

/// Writes `msg` to every user but the sender, one after another.
///
/// The writes block: a user whose receive window is full (someone who
/// never reads) makes this loop wait, and with it the whole room. That is
/// chatserv.c's design, kept here on purpose; step 6 fixes it.
fn relay(users: &[Option<User>], from: usize, msg: &[u8]) {
    let reached: usize = todo!("relay: write msg to every user but the sender (`from`), with write_all; `reached` is how many writes succeeded (a failed one is only logged)");
    stepkit::log!(
        "user #{from}: relayed {} bytes to {reached} other user(s)",
        msg.len()
    );
}

/// write() until all of `buf` has gone out: one write() may take only
/// part of it (what the socket's send buffer has room for), so it loops.
///
/// The socket is blocking, so this loop is where the room stalls: while
/// a user's receive window is full, write() waits, and the whole server
/// waits with it. Nobody else hears anything, and nobody is accepted,
/// until that user reads or leaves. Step 6 takes the loop out of the
/// server's way.
fn write_all(fd: c_int, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match stepkit::write(fd, buf)? {
            // Nothing taken and no error: write(2) should not do that to a
            // socket; stop rather than spin.
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// `conn_delete()`: take the user out of the slot (it is free from here
/// on), then EV_DELETE, then close(). (close() alone would also remove the
/// kevent, step 4 shows both; close() then EV_DELETE fails with EBADF.)
fn conn_delete(kq: &Kqueue, users: &mut [Option<User>], slot: usize) {
    let Some(user) = users[slot].take() else {
        return;
    };
    let fd = user.fd;
    let deleted: io::Result<usize> = todo!("delete_user: conn_delete(): EV_DELETE the user's knote while fd is still theirs, then close(fd); `deleted` is kevent()'s result");
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
    exit(1);
}
