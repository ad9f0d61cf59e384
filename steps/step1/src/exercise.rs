//! # Step 1: create a kqueue (your turn)
//!
//! Your version of step 1: the program of `src/main.rs` with the step's
//! lesson cut out. Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.
//!
//! - Check it: `cargo learn check 1` (`cargo test -p step1 --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p step1 --features exercise`.
//! - Stuck: `cargo learn hint 1`. Start over: `cargo learn reset 1`.
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! `scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
//!
//! The first lesson needs no network: a kqueue watching standard input.
//!
//! 1. `kqueue()` makes a new, empty queue. It is a file descriptor, a small
//!    number like any other (the program prints it).
//! 2. `kevent()` with nothing to register and nothing registered has
//!    nothing to report: with a zero timeout it returns 0 at once, with a
//!    short timeout it returns 0 when the time is up.
//! 3. `EV_SET(0, EVFILT_READ, EV_ADD)` and `kevent(changes)` register
//!    standard input (descriptor 0) for reading.
//! 4. The loop waits with `kevent(events)`. Each event says stdin is
//!    readable and `data` how many bytes are waiting; the program reads
//!    them and echoes them to standard output. `EV_EOF` (or a `read()` of 0
//!    bytes) means the input has ended, and the program exits with status 0;
//!    so does reading a regular file to its end.
//!
//! Every line about the queue goes to standard error, so standard output
//! carries exactly the bytes that came in. Try `echo hi | cargo run -p
//! step1`, or run it without the pipe and type lines (Ctrl-D ends the
//! input).
//!
//! Tests: piped input comes out unchanged (binary
//! bytes too); empty input and /dev/null end with status 0; stderr shows the
//! kqueue descriptor, the two empty polls and `data=N` for each readiness.

use std::ffi::c_int;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::exit;
use std::ptr;
use std::time::{Duration, Instant};

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD, EV_EOF};

/// Standard input's descriptor number, in every Unix process.
const STDIN: c_int = 0;
/// How many events one `kevent()` call may return.
const NEVENTS: usize = 8;
/// The most bytes read per readable event; the rest is reported again.
const BUFSIZE: usize = 64 * 1024;

const USAGE: &str = concat!(
    "usage: ",
    stepkit::name!(),
    "
  Watches standard input with a kqueue: echoes what arrives to standard
  output and reports each event on standard error. Try: echo hi | ",
    stepkit::name!()
);

pub fn main() {
    parse_args();

    let kq: Kqueue = todo!(
        "create_queue: kqueue(): make a new, empty queue (on failure, fatal(\"kqueue()\", e))"
    );
    stepkit::say!("kqueue() returned descriptor {}", kq.as_raw_fd());

    // kevent(kq, NULL, 0, events, NEVENTS, &timeout): no changes, and
    // nothing registered yet, so nothing can be ready. A zero timeout polls
    // and returns at once; a short one waits it out. (No timeout at all
    // would wait for ever.)
    let mut events = [kevent_zeroed(); NEVENTS];
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        let started = Instant::now();
        let n: usize = todo!("poll_empty: kevent() with no changes, room for NEVENTS events and this timeout: n is how many came back");
        stepkit::say!(
            "kevent() with no changes, timeout {} ms: {n} events after {} ms",
            timeout.as_millis(),
            started.elapsed().as_millis()
        );
    }

    todo!("register_stdin: register stdin: EV_SET(change, STDIN, EVFILT_READ, EV_ADD), then kevent() with that one change");
    stepkit::say!("registered EVFILT_READ for stdin (fd {STDIN})");

    // A regular file is readable until its end, and `data` counts the bytes
    // up to it. At the end FreeBSD (and kq on Linux) report nothing more:
    // the file may still grow, which is what `tail -f` waits for. (macOS
    // reports it readable with data=0.) So for a file, having read all
    // that `data` promised is the end of the input.
    let stdin_is_a_file = is_regular_file(io::stdin().as_fd());

    let mut buf = vec![0u8; BUFSIZE];
    let mut stdout = io::stdout().lock();
    loop {
        let n: usize = todo!("wait_for_events: wait: kevent() with no changes and no timeout; a signal (ErrorKind::Interrupted) means wait again");

        for ev in &events[..n] {
            // Fields are read by value (`{ ev.data }`): on macOS the struct
            // is packed and references to its fields are not allowed.
            let (flags, data) = ({ ev.flags }, { ev.data });
            let eof = flags & EV_EOF != 0;
            stepkit::say!(
                "fd {} readable: data={data}{}",
                { ev.ident },
                if eof { " EV_EOF" } else { "" }
            );
            let want: usize = todo!("how_much: how many bytes to read: `data` says how many are waiting (at most BUFSIZE); EV_EOF with data 0 means the input is over: exit(0)");
            match read(STDIN, &mut buf[..want]) {
                Ok(0) => {
                    stepkit::say!("read() returned 0: end of input");
                    exit(0);
                }
                Ok(got) => {
                    // Stdout is buffered: flush so the echo shows now.
                    if let Err(e) = stdout.write_all(&buf[..got]).and_then(|()| stdout.flush()) {
                        fatal("write(stdout)", e);
                    }
                    if stdin_is_a_file && data > 0 && got == data as usize {
                        stepkit::say!("read to the end of the file: end of input");
                        exit(0);
                    }
                }
                Err(e) => fatal("read(stdin)", e),
            }
        }
    }
}

/// `read(fd, buf, len)`, retrying when a signal interrupts it. Not
/// `io::stdin()`: that has a buffer of its own, and bytes waiting in it are
/// invisible to the kqueue, which only sees the descriptor.
fn read(fd: c_int, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writing `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `fd` is a regular file (not a pipe, a terminal or a device).
fn is_regular_file(fd: BorrowedFd<'_>) -> bool {
    fd.try_clone_to_owned()
        .map(File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.is_file())
}

/// No network options here: `--help` (or `-h`) prints the usage, anything
/// else is a usage error (status 2, the convention).
fn parse_args() {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            exit(0);
        }
        stepkit::say!("unknown argument '{arg}'\n{USAGE}");
        exit(2);
    }
}

/// Something failed that the program cannot work around.
fn fatal(call: &str, e: io::Error) -> ! {
    stepkit::say!("{call}: {e}");
    exit(1);
}
