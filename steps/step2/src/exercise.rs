//! # Step 2: register the listener (your turn)
//!
//! Your version of step 2: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 2` (`cargo test -p step2 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step2 --features exercise`.
//! - Stuck: `cargo learn hint 2`. Start over: `cargo learn reset 2`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! Step 1 watched standard input with a kqueue. This step watches a
//! listening socket instead, as chatserv.c does: `mksock()` (socket,
//! SO_REUSEADDR, bind, listen), then `EV_SET(listener, EVFILT_READ, EV_ADD)`
//! and `kevent(changes)`. A listener is "readable" when connections are
//! waiting to be accepted, and `data` says how many.
//!
//! So the loop is: wait with `kevent(events)`; when the listener comes back,
//! accept exactly `data` connections, greet each with one line, and close
//! it. Clients are not registered yet: that is step 3.
//!
//! Tests (`cargo test -p step2`): several clients at once and in sequence
//! each get one greeting line, then EOF; bad arguments exit with status 2;
//! a port in use exits with status 1 and says which address.

use std::ffi::c_int;
use std::io;
use std::net::SocketAddr;
use std::process::exit;
use std::ptr;

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD};

/// How many events one `kevent()` call may return.
const NEVENTS: usize = 64;

pub fn main() {
    let args = stepkit::Args::parse(stepkit::name!());
    // mksock(): socket, SO_REUSEADDR, bind, listen; prints `listening on`.
    let listener = stepkit::listen_or_exit(stepkit::name!(), &args);

    // kqueue(): a new, empty event queue. It is a descriptor like any other.
    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));

    todo!("register_listener: put the listener on the queue: EV_SET(change, listener, EVFILT_READ, EV_ADD), then kevent() with that one change");

    let mut events = [kevent_zeroed(); NEVENTS];
    loop {
        // kevent(kq, NULL, 0, events, NEVENTS, NULL): no changes, wait for
        // ever until at least one registered event is ready.
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            // A signal interrupted the wait: nothing happened, wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(wait)", e),
        };

        for ev in &events[..n] {
            // Fields are read by value (`{ ev.data }`): on macOS the struct
            // is packed and references to its fields are not allowed.
            let fd = { ev.ident } as c_int;
            let data = { ev.data };

            if fd == listener {
                stepkit::log!("listener fd {fd}: data={data} connection(s) waiting");
                todo!("accept_clients: accept exactly as many connections as `data` says are waiting, and greet() each; an accept() that fails is logged and skipped");
            }
        }
    }
}

/// One line, then close(): the client reads the line, then end of file.
/// A new socket's send buffer is empty, so one write() takes the whole
/// line.
fn greet(client: c_int, peer: SocketAddr) {
    stepkit::log!("accepted fd {client} from {peer}");
    // One line, then close(): the client reads the line, then end of
    // file. A new socket's send buffer is empty, so one write() takes the
    // whole line.
    let greeting = format!("hello from {}, you are fd {client}\n", stepkit::name!());
    if let Err(e) = stepkit::write(client, greeting.as_bytes()) {
        stepkit::log!("fd {client}: write: {e}");
    }
    stepkit::log!("fd {client}: greeted, close({client})");
    stepkit::close(client);
}

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    exit(1);
}
