//! # Step 3: the echo loop (your turn)
//!
//! Your version of step 3: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 3` (`cargo test -p step3 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step3 --features exercise`.
//! - Stuck: `cargo learn hint 3`. Start over: `cargo learn reset 3`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! The simple kqueue echo server. Step 2 registered the listener and greeted
//! each client before closing it; this step keeps the clients. Each accepted
//! client is registered for `EVFILT_READ` on the same queue, so one
//! `kevent()` call now waits for two kinds of event:
//!
//! - the listener is readable: `data` connections are waiting, accept them
//!   and register each one (as in step 2, plus the registration);
//! - a client is readable: `data` bytes are waiting, read them and write
//!   them back; or the client has left (`EV_EOF`), and `close()` alone
//!   drops it, because closing a descriptor removes its kevents.
//!
//! Read the code top to bottom: `kqueue()`, `EV_SET` + `kevent(changes)` for
//! the listener, the `kevent(events)` wait, then one branch per event kind.
//!
//! One honest limit: the echo is written with a *blocking* write. A client
//! that sends a lot but never reads fills its receive window, the write
//! waits, and the whole server waits with it, for every client. Step 6
//! fixes that; until then, the tests that send 1 MiB read the echo while
//! they send.
//!
//! Tests (`cargo test -p step3`): a line comes back; 100 concurrent clients;
//! 1 MiB and binary payloads round-trip exactly; a half-closed client gets
//! the rest echoed then EOF; a reset client does not disturb the others;
//! 1000 connect/disconnect cycles leak no descriptor.

use std::ffi::c_int;
use std::io;
use std::process::exit;
use std::ptr;

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD, EV_EOF};

/// How many events one `kevent()` call may return.
const NEVENTS: usize = 64;
/// The most bytes echoed per readable event. A client with more waiting is
/// simply reported again by the next `kevent()` (events are level-triggered).
const BUFSIZE: usize = 64 * 1024;

pub fn main() {
    let args = stepkit::Args::parse(stepkit::name!());
    // mksock(): socket, SO_REUSEADDR, bind, listen; prints `listening on`.
    let listener = stepkit::listen_or_exit(stepkit::name!(), &args);

    // kqueue(): a new, empty event queue. It is a descriptor like any other.
    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));

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

    let mut events = [kevent_zeroed(); NEVENTS];
    let mut buf = vec![0u8; BUFSIZE];
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
            let (flags, fflags, data) = ({ ev.flags }, { ev.fflags }, { ev.data });

            if fd == listener {
                // On a listener, `data` is how many connections are waiting.
                // Accepting exactly that many never blocks: they are queued
                // in the kernel already. (More may arrive meanwhile; the
                // next kevent() reports them.)
                stepkit::log!("listener fd {fd}: data={data} connection(s) waiting");
                for _ in 0..data {
                    let (client, peer) = match stepkit::accept(listener) {
                        Ok(accepted) => accepted,
                        // Gone before we got to it (the BSDs say ECONNABORTED),
                        // or out of descriptors (EMFILE). That one is not
                        // harmless: the connection stays in the listen queue,
                        // the listener stays readable, and the next kevent()
                        // brings us back here at once, for ever: a spin at
                        // 100% CPU. Step 8 stops watching the listener.
                        Err(e) => {
                            stepkit::say!("accept: {e}");
                            continue;
                        }
                    };
                    stepkit::log!("accepted fd {client} from {peer}");
                    todo!("register_client: put the new client on the queue: EV_SET(change, client, EVFILT_READ, EV_ADD) and kevent() it (close it if that fails)");
                }
                continue;
            }

            let gone: bool = todo!("client_gone: is this client gone? EV_EOF with nothing left to echo (data 0), or with an error in fflags (a reset)");
            if gone {
                if fflags != 0 {
                    let err = io::Error::from_raw_os_error(fflags as i32);
                    stepkit::log!("fd {fd}: EOF with error ({err}), close({fd})");
                } else {
                    stepkit::log!("fd {fd}: EOF, close({fd})");
                }
                todo!("close_client: drop the client: one call, which also removes its kevent from the queue");
                continue;
            }

            // `data` bytes are waiting (EV_EOF may be set too: a
            // half-closed client still gets the rest of its bytes back).
            if data <= 0 {
                // Readable with nothing to read and no EOF should not
                // happen; reading would block the whole server, so don't.
                continue;
            }
            let got: usize = todo!("echo: read at most `data` bytes (never more than BUFSIZE), write them back with write_all; drop the client on an error; `got` is how many");
            stepkit::log!("fd {fd}: data={data}, echoed {got} bytes");
        }
    }
}

/// write() until all of `buf` has gone out: one write() may take only
/// part of it (what the socket's send buffer has room for), so it loops.
///
/// The socket is blocking, so this loop is where the server stalls: while
/// the client's receive window is full, write() waits, and the whole
/// server waits with it. No other client is read, echoed or accepted until
/// this one reads. Step 6 takes the loop out of the server's way.
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

/// A read or write failed: the connection is dead. close() removes its
/// kevent, exactly as on EOF.
fn drop_client(fd: c_int, call: &str, e: io::Error) {
    stepkit::log!("fd {fd}: {call}: {e}, close({fd})");
    stepkit::close(fd);
}

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    exit(1);
}
