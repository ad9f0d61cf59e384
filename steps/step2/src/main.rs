//! # Step 2: register the listener
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

    // ANCHOR: create_queue
    // kqueue(): a new, empty event queue. It is a descriptor like any other.
    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));
    // ANCHOR_END: create_queue

    // ANCHOR: register_listener
    // LESSON: register_listener
    // EV_SET(&change, listener, EVFILT_READ, EV_ADD, 0, 0, NULL);
    // A listener is "readable" when connections wait to be accepted.
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
    // kevent(kq, &change, 1, NULL, 0, NULL): a changelist, no eventlist.
    if let Err(e) = kq.kevent(&[change], &mut [], None) {
        fatal("kevent(EV_ADD listener)", e);
    }
    // LESSON_END
    // ANCHOR_END: register_listener

    let mut events = [kevent_zeroed(); NEVENTS];
    loop {
        // ANCHOR: wait_for_events
        // kevent(kq, NULL, 0, events, NEVENTS, NULL): no changes, wait for
        // ever until at least one registered event is ready.
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            // A signal interrupted the wait: nothing happened, wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(wait)", e),
        };
        // ANCHOR_END: wait_for_events

        for ev in &events[..n] {
            // Fields are read by value (`{ ev.data }`): on macOS the struct
            // is packed and references to its fields are not allowed.
            let fd = { ev.ident } as c_int;
            let data = { ev.data };

            if fd == listener {
                // ANCHOR: accept_clients
                stepkit::log!("listener fd {fd}: data={data} connection(s) waiting");
                // LESSON: accept_clients
                // On a listener, `data` is how many connections are waiting.
                // Accepting exactly that many never blocks: they are queued
                // in the kernel already. (More may arrive meanwhile; the
                // next kevent() reports them.)
                for _ in 0..data {
                    match stepkit::accept(listener) {
                        Ok((client, peer)) => greet(client, peer),
                        // Gone before we got to it (the BSDs say ECONNABORTED),
                        // or out of descriptors (EMFILE). That one is not
                        // harmless: the connection stays in the listen queue,
                        // the listener stays readable, and the next kevent()
                        // brings us back here at once, for ever: a spin at
                        // 100% CPU. Step 8 stops watching the listener.
                        Err(e) => stepkit::say!("accept: {e}"),
                    }
                }
                // LESSON_END
                // ANCHOR_END: accept_clients
            }
        }
    }
}

// ANCHOR: greet
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
// ANCHOR_END: greet

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    exit(1);
}
