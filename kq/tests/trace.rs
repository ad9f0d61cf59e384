//! `KQ_TRACE`: a traced `Kqueue::kevent` call is written to the trace's
//! file, decoded (changes, events with flag names and `data`, the result or
//! errno), and the call still returns what it returned untraced.
//!
//! The variable is read once per process, so this binary sets it before
//! its first call, and its tests take turns (one lock) so that each reads
//! only the blocks its own calls appended.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use common::*;

/// The trace file of this process, and the lock the tests take turns by.
fn trace_file() -> (MutexGuard<'static, ()>, PathBuf) {
    static TURN: Mutex<()> = Mutex::new(());
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let path = PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("kq-trace-test-{}.txt", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Before any kevent() of this process: every test comes here first.
        std::env::set_var("KQ_TRACE", &path);
        path
    });
    (turn, path.clone())
}

/// What the trace file holds after `from` bytes.
fn appended(path: &PathBuf, from: usize) -> String {
    let all = std::fs::read_to_string(path).unwrap_or_default();
    all.get(from..).unwrap_or("").to_string()
}

fn len_of(path: &PathBuf) -> usize {
    std::fs::metadata(path).map_or(0, |m| m.len() as usize)
}

/// A registration, the read event with its byte count, and (once read
/// and closed) EV_EOF are
/// written as `EV_SET(...)` lines with their flag names and `data`.
#[test]
fn a_traced_call_shows_its_changes_and_events_decoded() {
    let (_turn, path) = trace_file();
    assert!(
        kq::trace::enabled(),
        "KQ_TRACE={path:?} did not turn the trace on"
    );
    let kq = new_kq();
    let (mut peer, sock) = UnixStream::pair().expect("socketpair");
    peer.write_all(b"hello\n").expect("write 6 bytes");
    let fd = sock.as_raw_fd();
    let from = len_of(&path);

    let mut events = [kevent_zeroed(); 4];
    let ch = fd_change(fd, EVFILT_READ, EV_ADD | EV_CLEAR);
    let n = kq
        .kevent(&[ch], &mut events, Some(Duration::from_secs(5)))
        .expect("kevent");
    assert_eq!(n, 1, "one read event for 6 bytes: {:?}", show(&events[..n]));
    let mut got = [0u8; 6];
    (&sock).read_exact(&mut got).expect("read the 6 bytes");
    drop(peer);
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_secs(5)))
        .expect("kevent after the peer closed");
    assert_eq!(n, 1, "one EOF event: {:?}", show(&events[..n]));

    let trace = appended(&path, from);
    let kqfd = kq.as_raw_fd();
    let expected = [
        format!("kevent({kqfd}, 1 change, 4 events, {{5, 0}}) = 1, waited "),
        format!("  change EV_SET({fd}, EVFILT_READ, EV_ADD|EV_CLEAR, 0, 0, NULL)\n"),
        format!("  event  EV_SET({fd}, EVFILT_READ, EV_CLEAR, 0, 6, NULL)\n"),
        format!("kevent({kqfd}, 0 changes, 4 events, {{5, 0}}) = 1, waited "),
        format!("  event  EV_SET({fd}, EVFILT_READ, EV_CLEAR|EV_EOF, 0, 0, NULL)\n"),
    ];
    let mut at = 0;
    for line in &expected {
        match trace[at..].find(line.as_str()) {
            Some(i) => at += i + line.len(),
            None => panic!(
                "expected, in this order:\n{expected:#?}\nmissing {line:?} in the trace:\n{trace}"
            ),
        }
    }
}

/// A change that fails is an `EV_ERROR` event with its errno named, and a
/// call that fails shows `-1` and its errno, which the caller still gets.
#[test]
fn a_failed_change_and_a_failed_call_are_named_by_errno() {
    let (_turn, path) = trace_file();
    let kq = new_kq();
    let (_peer, sock) = UnixStream::pair().expect("socketpair");
    let fd = sock.as_raw_fd();
    let from = len_of(&path);

    let ch = fd_change(fd, EVFILT_READ, EV_DELETE);
    let mut events = [kevent_zeroed(); 2];
    let n = kq
        .kevent(&[ch], &mut events, Some(Duration::ZERO))
        .expect("a failed change with room for its EV_ERROR entry");
    assert_eq!(n, 1, "one EV_ERROR entry: {:?}", show(&events[..n]));
    let err = kq
        .kevent(&[ch], &mut [], Some(Duration::ZERO))
        .expect_err("a failed change with no room for its entry fails the call");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOENT),
        "the trace kept errno: {err}"
    );

    let trace = appended(&path, from);
    let kqfd = kq.as_raw_fd();
    let entry = format!(
        "  event  EV_SET({fd}, EVFILT_READ, EV_ERROR, 0, {} /* ENOENT */, NULL)\n",
        libc::ENOENT
    );
    let failed = format!("kevent({kqfd}, 1 change, 0 events, {{0, 0}}) = -1 ENOENT (");
    for line in [&entry, &failed] {
        assert!(
            trace.contains(line.as_str()),
            "missing {line:?} in the trace:\n{trace}"
        );
    }
}

/// Filters' fflags are named by their filter, unknown bits in hex, and a
/// udata pointer is printed as one.
#[test]
fn fflags_are_named_by_their_filter() {
    let user = change(
        1,
        EVFILT_USER,
        EV_ADD | EV_ONESHOT,
        NOTE_FFOR | NOTE_TRIGGER | 0x5,
        0,
        0,
    );
    assert_eq!(
        kq::trace::ev_set(&user, false),
        "EV_SET(1, EVFILT_USER, EV_ADD|EV_ONESHOT, NOTE_FFOR|NOTE_TRIGGER|0x5, 0, NULL)"
    );
    let timer = change(2, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3, 0x10);
    assert_eq!(
        kq::trace::ev_set(&timer, false),
        "EV_SET(2, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3, 0x10)"
    );
    let mut eof = change(7, EVFILT_READ, EV_EOF, libc::ECONNRESET as u32, 0, 0);
    assert_eq!(
        kq::trace::ev_set(&eof, true),
        "EV_SET(7, EVFILT_READ, EV_EOF, ECONNRESET, 0, NULL)",
        "an EV_EOF event's fflags are the socket's error"
    );
    eof.fflags = NOTE_LOWAT;
    assert_eq!(
        kq::trace::ev_set(&eof, false),
        "EV_SET(7, EVFILT_READ, EV_EOF, NOTE_LOWAT, 0, NULL)",
        "a change's fflags are notes"
    );
}
