//! # Step 3: the echo loop
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

    // ANCHOR: create_queue
    // kqueue(): a new, empty event queue. It is a descriptor like any other.
    let kq = Kqueue::new().unwrap_or_else(|e| fatal("kqueue()", e));
    // ANCHOR_END: create_queue

    // ANCHOR: register_listener
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
    // ANCHOR_END: register_listener

    let mut events = [kevent_zeroed(); NEVENTS];
    let mut buf = vec![0u8; BUFSIZE];
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
            let (flags, fflags, data) = ({ ev.flags }, { ev.fflags }, { ev.data });

            if fd == listener {
                // ANCHOR: accept_clients
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
                    // LESSON: register_client
                    // EV_SET(&change, client, EVFILT_READ, EV_ADD, 0, 0, NULL);
                    // and kevent(changes): the client joins the same queue.
                    ev_set(
                        &mut change,
                        client as usize,
                        EVFILT_READ,
                        EV_ADD,
                        0,
                        0,
                        ptr::null_mut(),
                    );
                    if let Err(e) = kq.kevent(&[change], &mut [], None) {
                        stepkit::say!("fd {client}: kevent(EV_ADD): {e}, close({client})");
                        stepkit::close(client);
                    }
                    // LESSON_END
                }
                // ANCHOR_END: accept_clients
                continue;
            }

            // ANCHOR: client_gone
            // LESSON: client_gone -> gone: bool
            // EV_EOF: the client closed its side (FIN), and everything it
            // sent has been echoed (`data` is 0); or the connection failed
            // (a reset: `fflags` holds the error), and there is nobody left
            // to echo to. EV_EOF with `data` > 0 is a client that sent its
            // last bytes and left: echo them first.
            let gone = flags & EV_EOF != 0 && (data == 0 || fflags != 0);
            // LESSON_END
            // ANCHOR_END: client_gone
            if gone {
                // ANCHOR: drop_client
                if fflags != 0 {
                    let err = io::Error::from_raw_os_error(fflags as i32);
                    stepkit::log!("fd {fd}: EOF with error ({err}), close({fd})");
                } else {
                    stepkit::log!("fd {fd}: EOF, close({fd})");
                }
                // LESSON: close_client
                // close() is all it takes: closing a descriptor removes its
                // kevents from every queue, so no EV_DELETE is needed.
                stepkit::close(fd);
                // LESSON_END
                // ANCHOR_END: drop_client
                continue;
            }

            // ANCHOR: echo_client
            // `data` bytes are waiting (EV_EOF may be set too: a
            // half-closed client still gets the rest of its bytes back).
            if data <= 0 {
                // Readable with nothing to read and no EOF should not
                // happen; reading would block the whole server, so don't.
                continue;
            }
            // LESSON: echo -> got: usize
            let want = (data as usize).min(BUFSIZE);
            let got = match stepkit::read(fd, &mut buf[..want]) {
                Ok(0) => {
                    stepkit::log!("fd {fd}: read() returned 0 (EOF), close({fd})");
                    stepkit::close(fd);
                    continue;
                }
                Ok(got) => got,
                // ECONNRESET and friends: drop the client the same way.
                Err(e) => {
                    drop_client(fd, "read", e);
                    continue;
                }
            };
            // Written back with a blocking loop (write_all, below): it waits
            // while the client's receive window is full, and every other
            // client waits too.
            if let Err(e) = write_all(fd, &buf[..got]) {
                // EPIPE or ECONNRESET: the client is gone. Rust ignores
                // SIGPIPE, so this is an error, not a crash.
                drop_client(fd, "write", e);
                continue;
            }
            // LESSON_END
            stepkit::log!("fd {fd}: data={data}, echoed {got} bytes");
            // ANCHOR_END: echo_client
        }
    }
}

// ANCHOR: write_all
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
// ANCHOR_END: write_all

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
