//! # Step 4: close() vs EV_DELETE (your turn)
//!
//! Your version of step 4: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 4` (`cargo test -p step4 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step4 --features exercise`.
//! - Stuck: `cargo learn hint 4`. Start over: `cargo learn reset 4`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! Step 3 dropped a client with `close()` alone, as the simple echo server
//! does: closing a descriptor removes its kevents. chatserv.c does it the
//! other way: `EV_DELETE` first, then `close()`. This step is step 3's echo
//! server with `--remove MODE`, so both can be watched side by side:
//!
//! - `delete` (the default): `EV_DELETE`, then `close()`. Explicit; the
//!   kevent() result is checked and logged.
//! - `close`: `close()` alone. Also correct on kqueue, and one system call
//!   cheaper.
//! - `close-then-delete`: the wrong order, for the lesson. The descriptor
//!   is gone, and its knote with it, so `EV_DELETE` fails with EBADF. Once
//!   the number is reused, ENOENT, or worse: if a new client got the number
//!   and registered it on this queue, `EV_DELETE` succeeds and silently
//!   deletes the *new* client's knote. Here the error is logged and
//!   handled; nothing breaks, but it shows why the order matters.
//!
//! Two more things become visible. Descriptor numbers are reused at once:
//! the next client usually gets the number just freed, and the log says so.
//! And one `kevent()` call returns a *batch*: if handling one event closes a
//! client, a later event of the same batch may still name that number,
//! although the client is gone and the number may already belong to someone
//! new. The loop remembers the numbers it closed during the batch and skips
//! such stale events.
//!
//! To make that happen on purpose, `--max-clients N` limits the server to N
//! clients: when a new one arrives and the server is full, the client that
//! has been connected longest is dropped to make room, in the middle of a
//! batch that may still hold its events.
//!
//! Like step 3, the echo is written with a blocking write: a client that
//! sends a lot but never reads stalls the server. Step 6 fixes that.
//!
//! Tests (`cargo test -p step4`, every one in each `--remove` mode): the
//! echo checks of step 3; 2000 connect/disconnect cycles leak nothing and log
//! no error; clients leaving in the middle of a busy batch; stale events
//! skipped; the wrong order's EBADF handled; removing a descriptor twice.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io;
use std::process::exit;
use std::ptr;

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD, EV_DELETE, EV_EOF};

/// How many events one `kevent()` call may return.
const NEVENTS: usize = 64;
/// The most bytes echoed per readable event. A client with more waiting is
/// simply reported again by the next `kevent()` (events are level-triggered).
const BUFSIZE: usize = 64 * 1024;

stepkit::options! {
    /// `--remove` and `--max-clients`, on top of `--host`, `--port` and
    /// `--quiet`: each option's type, default, flag, parser and help.
    struct Options {
        /// How a client is removed.
        remove: Remove = Remove::DeleteThenClose, "--remove MODE", Remove::parse,
            "delete (EV_DELETE, then close; the default), close (close \
             alone), or close-then-delete (the wrong order, to see it fail)";
        /// At most this many clients at once (None: no limit).
        max_clients: Option<usize> = None, "--max-clients N",
            |v| match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(format!("expected a number of at least 1, not '{v}'")),
            },
            "at most N clients; when full, the longest-connected one is \
             dropped to make room (default: no limit)";
    }
}

pub fn main() {
    let (args, opts) = stepkit::Args::parse_with::<Options>(stepkit::name!());
    let (mode, max_clients) = (opts.remove, opts.max_clients);
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
    let mut clients = Clients::new(mode);
    loop {
        // kevent(kq, NULL, 0, events, NEVENTS, NULL): no changes, wait for
        // ever until at least one registered event is ready.
        let n = match kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            // A signal interrupted the wait: nothing happened, wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => fatal("kevent(wait)", e),
        };
        clients.new_batch();

        for ev in &events[..n] {
            // Fields are read by value (`{ ev.data }`): on macOS the struct
            // is packed and references to its fields are not allowed.
            let fd = { ev.ident } as c_int;
            let (flags, fflags, data) = ({ ev.flags }, { ev.fflags }, { ev.data });

            // The batch was collected before we handled any of it. If an
            // earlier event of this batch made us close `fd`, this event is
            // about the client that is gone: its knote was removed, and the
            // number may already name a new client (accepted a moment ago,
            // with nothing to read: a blocking read would hang the server).
            // A new registration's events can only come in a later batch, so
            // anything here naming a number we closed is stale.
            let stale: bool = todo!("stale_event: is this event stale? It is when an earlier event of this batch made us close `fd`");
            if stale {
                stepkit::log!(
                    "fd {fd}: stale event (closed earlier in this batch), skipped"
                );
                continue;
            }

            if fd == listener {
                // On a listener, `data` is how many connections are waiting.
                // Accepting exactly that many never blocks: they are queued
                // in the kernel already. (More may arrive meanwhile; the
                // next kevent() reports them.)
                stepkit::log!("listener fd {fd}: data={data} connection(s) waiting");
                for _ in 0..data {
                    // Full: drop the longest-connected client first, so the
                    // newcomer gets its place (and, likely, its number).
                    if max_clients.is_some_and(|max| clients.len() >= max) {
                        clients.drop_oldest(&kq);
                    }
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
                    // accept() returns the lowest free number: usually one
                    // just closed. The log says when.
                    let reused = if clients.was_used(client) {
                        " (a reused number)"
                    } else {
                        ""
                    };
                    stepkit::log!("accepted fd {client}{reused} from {peer}");
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
                        continue;
                    }
                    clients.add(client);
                }
                continue;
            }

            // EV_EOF: the client closed its side (FIN), and everything it
            // sent has been echoed (`data` is 0); or the connection failed
            // (a reset: `fflags` holds the error), as in step 3.
            let gone = flags & EV_EOF != 0 && (data == 0 || fflags != 0);
            if gone {
                // Remove it the way --remove says.
                if fflags != 0 {
                    let err = io::Error::from_raw_os_error(fflags as i32);
                    stepkit::log!("fd {fd}: EOF with error ({err})");
                } else {
                    stepkit::log!("fd {fd}: EOF");
                }
                clients.remove(&kq, fd);
                continue;
            }

            // `data` bytes are waiting (EV_EOF may be set too: a
            // half-closed client still gets the rest of its bytes back).
            if data <= 0 {
                // Readable with nothing to read and no EOF should not
                // happen; reading would block the whole server, so don't.
                continue;
            }
            let want = (data as usize).min(BUFSIZE);
            let got = match stepkit::read(fd, &mut buf[..want]) {
                Ok(0) => {
                    stepkit::log!("fd {fd}: read() returned 0 (EOF)");
                    clients.remove(&kq, fd);
                    continue;
                }
                Ok(got) => got,
                // ECONNRESET and friends: drop the client the same way.
                Err(e) => {
                    clients.drop_client(&kq, fd, "read", e);
                    continue;
                }
            };
            // Written back with a blocking loop (write_all, below): it waits
            // while the client's receive window is full, and every other
            // client waits too.
            if let Err(e) = write_all(fd, &buf[..got]) {
                // EPIPE or ECONNRESET: the client is gone. Rust ignores
                // SIGPIPE, so this is an error, not a crash.
                clients.drop_client(&kq, fd, "write", e);
                continue;
            }
            stepkit::log!("fd {fd}: data={data}, echoed {got} bytes");
        }
    }
}

/// How a client is removed (`--remove`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Remove {
    DeleteThenClose,
    CloseOnly,
    CloseThenDelete,
}

impl Remove {
    /// `--remove`'s value.
    fn parse(v: &str) -> Result<Remove, String> {
        match v {
            "delete" => Ok(Remove::DeleteThenClose),
            "close" => Ok(Remove::CloseOnly),
            "close-then-delete" => Ok(Remove::CloseThenDelete),
            _ => Err(format!(
                "expected delete, close or close-then-delete, not '{v}'"
            )),
        }
    }
}

/// The clients, oldest first, and what the loop must remember about the
/// numbers it closes.
struct Clients {
    mode: Remove,
    oldest_first: VecDeque<c_int>,
    /// The numbers closed while handling the current batch of events.
    closed_in_batch: Vec<c_int>,
    /// Every number ever given to a client, to show numbers being reused.
    used: Vec<bool>,
}

impl Clients {
    fn new(mode: Remove) -> Clients {
        Clients {
            mode,
            oldest_first: VecDeque::new(),
            closed_in_batch: Vec::new(),
            used: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.oldest_first.len()
    }

    /// A new batch: nothing has been closed in it yet.
    fn new_batch(&mut self) {
        todo!("new_batch: a new batch of events begins: forget the numbers closed during the last one");
    }

    fn closed_in_batch(&self, fd: c_int) -> bool {
        self.closed_in_batch.contains(&fd)
    }

    fn was_used(&self, fd: c_int) -> bool {
        self.used.get(fd as usize).copied().unwrap_or(false)
    }

    fn add(&mut self, fd: c_int) {
        let idx = fd as usize;
        if self.used.len() <= idx {
            self.used.resize(idx + 1, false);
        }
        self.used[idx] = true;
        self.oldest_first.push_back(fd);
    }

    fn drop_oldest(&mut self, kq: &Kqueue) {
        if let Some(&oldest) = self.oldest_first.front() {
            stepkit::log!("full: dropping the longest-connected client, fd {oldest}");
            self.remove(kq, oldest);
        }
    }

    /// A read or write failed: the connection is dead.
    fn drop_client(&mut self, kq: &Kqueue, fd: c_int, call: &str, e: io::Error) {
        stepkit::log!("fd {fd}: {call}: {e}");
        self.remove(kq, fd);
    }

    /// Removes a client from the queue and closes it, as --remove says.
    fn remove(&mut self, kq: &Kqueue, fd: c_int) {
        match self.mode {
            Remove::DeleteThenClose => {
                // EV_SET(&change, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
                // kevent(kq, &change, 1, NULL, 0, NULL); close(fd);
                // As chatserv.c does: the knote goes first, while the number
                // still names this client. The result is checked.
                let deleted: io::Result<()> = todo!("delete_then_close: chatserv.c's order: EV_DELETE (ev_delete) while fd is still this client's, then close(fd); `deleted` is what ev_delete said");
                match deleted {
                    Ok(()) => stepkit::log!("fd {fd}: EV_DELETE ok, close({fd})"),
                    Err(e) => stepkit::say!("fd {fd}: EV_DELETE failed: {e}, close({fd})"),
                }
            }
            Remove::CloseOnly => {
                // close() removes every kevent of the descriptor: nothing
                // else to do, and one system call fewer.
                stepkit::log!("fd {fd}: close({fd}), its knote goes with it");
                stepkit::close(fd);
            }
            Remove::CloseThenDelete => {
                // The wrong order: after close() the number names nothing,
                // so EV_DELETE fails: EBADF. Once the number is reused,
                // ENOENT, or worse: if a new client got it and is registered
                // here, EV_DELETE deletes the new client's knote. Nothing
                // runs in between here, so it is EBADF, logged and handled;
                // in a real server it hides the mistake.
                stepkit::close(fd);
                match ev_delete(kq, fd) {
                    Ok(()) => stepkit::say!("fd {fd}: close, then EV_DELETE ok: unexpected"),
                    Err(e) => stepkit::log!(
                        "fd {fd}: close({fd}), then EV_DELETE: {e} (handled: the knote went with close())"
                    ),
                }
            }
        }
        self.oldest_first.retain(|&c| c != fd);
        todo!("remember_closed: remember that fd was closed during this batch, so that a later event of the batch naming it is skipped");
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

/// `EV_DELETE` of the client's `EVFILT_READ` knote.
fn ev_delete(kq: &Kqueue, fd: c_int) -> io::Result<()> {
    todo!("ev_delete: EV_SET(change, fd, EVFILT_READ, EV_DELETE) and kevent() it; give back kevent()'s result, without the count");
}

/// The queue itself failed: nothing sensible is left to do.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    exit(1);
}
