//! Trigger modes (kqueue(2), FreeBSD `kqueue_scan`): level-triggered by
//! default; EV_CLEAR, EV_ONESHOT, EV_DISPATCH, EV_ENABLE/EV_DISABLE; a
//! condition that already holds is reported as soon as the knote is added
//! or enabled. Shown on EVFILT_READ (socketpair, TCP, pipe) and EVFILT_USER.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use common::*;
use rstest::rstest;

/// A readable descriptor and the means to write to it and read from it.
enum Source {
    Unix(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
    Tcp(std::net::TcpStream, std::net::TcpStream),
    Pipe(OwnedFd, OwnedFd),
}

impl Source {
    fn new(kind: &str) -> Source {
        match kind {
            "unix" => {
                let (a, b) = socketpair();
                Source::Unix(a, b)
            }
            "tcp" => {
                let (a, b) = tcp_pair();
                Source::Tcp(a, b)
            }
            _ => {
                let (r, w) = pipe();
                Source::Pipe(r, w)
            }
        }
    }

    /// The descriptor being watched.
    fn fd(&self) -> RawFd {
        match self {
            Source::Unix(a, _) => a.as_raw_fd(),
            Source::Tcp(a, _) => a.as_raw_fd(),
            Source::Pipe(r, _) => r.as_raw_fd(),
        }
    }

    fn ident(&self) -> usize {
        self.fd() as usize
    }

    fn put(&mut self, bytes: &[u8]) {
        match self {
            Source::Unix(_, b) => send(b, bytes),
            Source::Tcp(_, b) => send(b, bytes),
            Source::Pipe(_, w) => {
                assert_eq!(write_fd(w.as_raw_fd(), bytes).expect("write"), bytes.len())
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        match self {
            Source::Unix(a, _) => read_exact_n(a, n),
            Source::Tcp(a, _) => read_exact_n(a, n),
            Source::Pipe(r, _) => read_fd(r.as_raw_fd(), n).expect("read"),
        }
    }

    /// Waits until `n` bytes are readable (TCP delivery is asynchronous),
    /// so that a following kevent() sees them.
    fn settle(&mut self, n: usize) {
        if let Source::Tcp(a, _) = self {
            let mut buf = vec![0u8; n];
            let start = std::time::Instant::now();
            // MSG_PEEK until everything arrived (bounded by DEADLINE).
            while start.elapsed() < DEADLINE {
                // SAFETY: `buf` is valid for writing n bytes.
                let got = unsafe {
                    libc::recv(
                        a.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        n,
                        libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    )
                };
                if got as usize == n {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            panic!("{n} bytes did not arrive on the TCP connection in {DEADLINE:?}");
        }
    }
}

/// Level-triggered by default: unread data is reported on every call, and
/// the event goes away once the data is read.
#[rstest]
fn level_triggered_by_default(#[values("unix", "tcp", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD)]);
    s.put(b"abc");
    s.settle(3);
    for round in 0..3 {
        let ev = wait_for(&kq, s.ident(), EVFILT_READ);
        assert_eq!(ev.data, 3, "round {round}: 3 bytes unread, got {ev:?}");
    }
    assert_eq!(s.take(3), b"abc");
    assert_quiet(&kq, s.ident(), EVFILT_READ, QUIET, "everything was read");
}

/// EV_CLEAR: reported once per new arrival; reading part of the data does
/// not re-arm it, new data does.
#[rstest]
fn clear_reports_each_new_arrival_once(#[values("unix", "tcp", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD | EV_CLEAR)]);
    s.put(b"ab");
    s.settle(2);
    let ev = wait_for(&kq, s.ident(), EVFILT_READ);
    assert_eq!(ev.data, 2, "wrote 2 bytes, got {ev:?}");
    assert!(
        ev.has(EV_CLEAR),
        "EV_CLEAR is kept in the returned flags, got {ev:?}"
    );
    assert_quiet(&kq, s.ident(), EVFILT_READ, QUIET, "EV_CLEAR: no new data");
    assert_eq!(s.take(1), b"a");
    assert_quiet(
        &kq,
        s.ident(),
        EVFILT_READ,
        QUIET,
        "EV_CLEAR: a read is not new data",
    );
    s.put(b"c");
    s.settle(2);
    let ev = wait_for(&kq, s.ident(), EVFILT_READ);
    assert_eq!(ev.data, 2, "1 left + 1 new byte, got {ev:?}");
}

/// Changing a knote runs its filter again (FreeBSD `kqueue_register`): an
/// EV_CLEAR knote whose data is still unread is reported once more after
/// EV_ADD modifies it (with the new udata), and after EV_ENABLE.
#[rstest]
fn modifying_a_clear_knote_reports_it_again_while_true(
    #[values("unix", "tcp", "pipe")] kind: &str,
    #[values(EV_ADD, EV_ENABLE)] how: Flags,
) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    add(
        &kq,
        &[change(s.ident(), EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 1)],
    );
    s.put(b"hello");
    s.settle(5);
    let first = wait_for(&kq, s.ident(), EVFILT_READ);
    assert_eq!(
        (first.data, first.udata),
        (5, 1),
        "5 bytes arrived: got {first:?}"
    );
    assert_quiet(&kq, s.ident(), EVFILT_READ, QUIET, "EV_CLEAR: nothing new");
    add(&kq, &[change(s.ident(), EVFILT_READ, how, 0, 0, 2)]);
    let again = wait_for(&kq, s.ident(), EVFILT_READ);
    assert_eq!(
        (again.data, again.udata),
        (5, 2),
        "changed the knote (flags {how:#x}, udata 2) with 5 bytes unread: got {again:?}"
    );
}

/// EV_ONESHOT: reported once, then the knote is deleted (EV_DELETE gives
/// ENOENT), although the data is still there.
#[rstest]
fn oneshot_fires_once_then_is_deleted(#[values("unix", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD | EV_ONESHOT)]);
    s.put(b"x");
    let ev = wait_for(&kq, s.ident(), EVFILT_READ);
    assert!(ev.has(EV_ONESHOT), "got {ev:?}");
    assert_quiet(
        &kq,
        s.ident(),
        EVFILT_READ,
        QUIET,
        "EV_ONESHOT fired already",
    );
    assert_eq!(
        errno_of(&kq, fd_change(s.fd(), EVFILT_READ, EV_DELETE)),
        libc::ENOENT
    );
}

/// EV_DISPATCH: reported once, then disabled (not deleted); EV_ENABLE
/// re-arms it and reports the pending data at once; EV_DELETE still works.
#[rstest]
fn dispatch_fires_once_then_waits_for_enable(#[values("unix", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD | EV_DISPATCH)]);
    s.put(b"x");
    let ev = wait_for(&kq, s.ident(), EVFILT_READ);
    assert!(ev.has(EV_DISPATCH), "got {ev:?}");
    assert_quiet(
        &kq,
        s.ident(),
        EVFILT_READ,
        QUIET,
        "dispatched: disabled until EV_ENABLE",
    );
    s.put(b"y");
    assert_quiet(
        &kq,
        s.ident(),
        EVFILT_READ,
        QUIET,
        "dispatched: new data does not re-arm it",
    );
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ENABLE)]);
    let ev = poll(&kq);
    assert!(
        ev.iter()
            .any(|e| e.is(s.ident(), EVFILT_READ) && e.data == 2),
        "EV_ENABLE with 2 bytes pending must report them at once, got {ev:?}"
    );
    assert_eq!(
        receipt_of(&kq, fd_change(s.fd(), EVFILT_READ, EV_DELETE)),
        0,
        "still registered"
    );
}

/// A knote added while its condition already holds reports it at once.
#[rstest]
fn pending_condition_is_reported_as_soon_as_added(#[values("unix", "tcp", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    s.put(b"hello");
    s.settle(5);
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD | EV_CLEAR)]);
    let evs = poll(&kq);
    assert!(
        evs.iter()
            .any(|e| e.is(s.ident(), EVFILT_READ) && e.data == 5),
        "5 bytes were waiting before EV_ADD (even with EV_CLEAR), got {evs:?}"
    );
}

/// EV_DISABLE: nothing is reported while disabled, even for a knote added
/// disabled with data pending; EV_ENABLE reports the pending data at once.
#[rstest]
fn enable_reports_what_became_pending_while_disabled(#[values("unix", "pipe")] kind: &str) {
    let kq = new_kq();
    let mut s = Source::new(kind);
    s.put(b"x");
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD | EV_DISABLE)]);
    assert_quiet(&kq, s.ident(), EVFILT_READ, QUIET, "added disabled");
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ENABLE)]);
    let evs = poll(&kq);
    assert!(
        evs.iter().any(|e| e.is(s.ident(), EVFILT_READ)),
        "pending at EV_ENABLE, got {evs:?}"
    );
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_DISABLE)]);
    s.put(b"y");
    assert_quiet(&kq, s.ident(), EVFILT_READ, QUIET, "disabled again");
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ENABLE)]);
    let evs = poll(&kq);
    assert!(
        evs.iter()
            .any(|e| e.is(s.ident(), EVFILT_READ) && e.data == 2),
        "got {evs:?}"
    );
}

/// EV_DISABLE and EV_DELETE drop an event that was already queued.
#[rstest]
#[case::disable(EV_DISABLE)]
#[case::delete(EV_DELETE)]
fn disable_or_delete_drops_a_queued_event(#[case] action: Flags) {
    let kq = new_kq();
    let mut s = Source::new("unix");
    add(&kq, &[fd_change(s.fd(), EVFILT_READ, EV_ADD)]);
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    s.put(b"x");
    add(
        &kq,
        &[
            fd_change(s.fd(), EVFILT_READ, action),
            change(1, EVFILT_USER, action, 0, 0, 0),
        ],
    );
    assert_no_events(
        &kq,
        QUIET,
        "both knotes were disabled/deleted with events pending",
    );
}

/// The same modes on EVFILT_USER: level (stays triggered), EV_CLEAR (once),
/// EV_ONESHOT (once, then gone), EV_DISPATCH (once, then disabled).
#[test]
fn user_event_honours_every_mode() {
    let kq = new_kq();
    let trig = |id: usize| change(id, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0),
            change(3, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, 0),
            change(4, EVFILT_USER, EV_ADD | EV_DISPATCH, 0, 0, 0),
        ],
    );
    add(&kq, &[trig(1), trig(2), trig(3), trig(4)]);
    let mut first: Vec<usize> = poll(&kq).iter().map(|e| e.ident).collect();
    first.sort();
    assert_eq!(first, vec![1, 2, 3, 4], "all four triggered");
    let second: Vec<usize> = poll(&kq).iter().map(|e| e.ident).collect();
    assert_eq!(
        second,
        vec![1],
        "only the level-triggered one is reported again"
    );
    assert_eq!(
        errno_of(&kq, change(3, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "oneshot deleted"
    );
    add(&kq, &[trig(4)]);
    assert!(
        !poll(&kq).iter().any(|e| e.ident == 4),
        "dispatched knote is disabled"
    );
    add(&kq, &[change(4, EVFILT_USER, EV_ENABLE, 0, 0, 0), trig(4)]);
    assert!(
        poll(&kq).iter().any(|e| e.ident == 4),
        "re-enabled and triggered"
    );
}

/// Returned events carry `EV_EOF` but a level knote keeps firing for it
/// (EOF does not go away), while the peer's data can still be read.
#[test]
fn eof_is_level_triggered_too() {
    let kq = new_kq();
    let (a, mut b) = socketpair();
    add(&kq, &[fd_change(a.as_raw_fd(), EVFILT_READ, EV_ADD)]);
    send(&mut b, b"z");
    drop(b);
    for _ in 0..2 {
        let ev = wait_for(&kq, a.as_raw_fd() as usize, EVFILT_READ);
        assert!(ev.has(EV_EOF), "peer closed, got {ev:?}");
    }
    let mut a = a;
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).expect("read");
    assert_eq!(rest, b"z");
    let ev = wait_for(&kq, a.as_raw_fd() as usize, EVFILT_READ);
    assert!(
        ev.has(EV_EOF) && ev.data == 0,
        "EOF stays after draining, got {ev:?}"
    );
}

/// With room for one event per call, a level knote that stays true (a
/// triggered EVFILT_USER without EV_CLEAR) does not starve a readable
/// socket: FreeBSD queues a re-reported knote behind the others, so the two
/// take turns.
#[test]
fn a_level_knote_that_stays_true_does_not_starve_others() {
    let kq = new_kq();
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd() as usize;
    add(
        &kq,
        &[
            change(42, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(42, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
            change(fd, EVFILT_READ, EV_ADD, 0, 0, 0),
        ],
    );
    send(&mut b, b"x");
    let mut one = [kevent_zeroed(); 1];
    let (mut user, mut socket) = (0, 0);
    for _ in 0..20 {
        let n = kq
            .kevent(&[], &mut one, Some(DEADLINE))
            .expect("kevent() failed");
        assert_eq!(n, 1, "both knotes are true: every call returns one");
        let ev = Ev::from_kevent(&one[0]);
        if ev.is(42, EVFILT_USER) {
            user += 1;
        } else if ev.is(fd, EVFILT_READ) {
            socket += 1;
        }
    }
    assert!(
        user >= 5 && socket >= 5,
        "20 calls with room for one event: the user knote came {user} times, the socket {socket} times; both should take turns"
    );
}
