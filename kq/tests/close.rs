//! close() and knotes (kqueue(2): "Calling close() on a file descriptor will
//! remove any kevents that reference the descriptor"; FreeBSD
//! `knote_fdclose`): the knotes of a closed descriptor never fire again,
//! even when its number is reused; EV_ADD on the reused number watches the
//! new file; EV_DELETE after close() gives EBADF, or ENOENT once the number
//! was reused (the descriptor is checked before the knote lookup).
//!
//! Descriptor numbers: the tests run as threads of one process, so another
//! test could take a number we just closed. These tests therefore move their
//! descriptors to numbers far above anything the suite opens (descriptors
//! are allocated lowest-first, so nobody else ever gets them) and reuse a
//! number with dup2(), each test with its own number.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use common::*;
use rstest::rstest;

/// A socketpair whose first end is moved to descriptor `number`, with
/// `pending` bytes waiting to be read on it.
fn readable_at(number: i32, pending: &[u8]) -> (OwnedFd, UnixStream) {
    let (a, mut b) = socketpair();
    send(&mut b, pending);
    (move_to(OwnedFd::from(a), number), b)
}

/// After close(), a descriptor's knote never fires again, not even when the
/// number is reused by a file that is ready.
#[test]
fn closed_descriptor_never_fires_again_even_if_its_number_is_reused() {
    let kq = new_kq();
    let n = 3001;
    let (a, _peer) = readable_at(n, b"old");
    add(
        &kq,
        &[
            fd_change(n, EVFILT_READ, EV_ADD),
            fd_change(n, EVFILT_WRITE, EV_ADD),
        ],
    );
    assert!(
        poll(&kq).iter().any(|e| e.ident == n as usize),
        "registered and ready"
    );
    drop(a); // close(n)
    assert_quiet(&kq, n as usize, EVFILT_READ, QUIET, "closed");
    assert_quiet(&kq, n as usize, EVFILT_WRITE, Default::default(), "closed");
    let (_b, _peer2) = readable_at(n, b"new file"); // the number is reused
    assert_no_events(
        &kq,
        QUIET,
        "the new file under the old number was never registered",
    );
}

/// EV_ADD on a reused number registers the new file: its events, its data.
#[test]
fn adding_a_reused_number_watches_the_new_file() {
    let kq = new_kq();
    let n = 3002;
    let (a, _peer) = readable_at(n, b"old");
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 1)]);
    drop(a);
    let (_b, _peer2) = readable_at(n, b"new file");
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 2)]);
    let ev = wait_for(&kq, n as usize, EVFILT_READ);
    assert_eq!(
        (ev.data, ev.udata),
        (8, 2),
        "the new file has 8 bytes, got {ev:?}"
    );
    assert!(!ev.has(EV_EOF), "got {ev:?}");
}

/// EV_DELETE after close() gives EBADF: the number is not open.
#[test]
fn delete_after_close_gives_ebadf() {
    let kq = new_kq();
    let n = 3003;
    let (a, _peer) = readable_at(n, b"");
    add(&kq, &[fd_change(n, EVFILT_READ, EV_ADD)]);
    drop(a);
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_READ, EV_DELETE)),
        libc::EBADF
    );
}

/// EV_DELETE after close() gives ENOENT once the number names another,
/// unregistered file.
#[test]
fn delete_after_close_and_reuse_gives_enoent() {
    let kq = new_kq();
    let n = 3004;
    let (a, _peer) = readable_at(n, b"");
    add(
        &kq,
        &[
            fd_change(n, EVFILT_READ, EV_ADD),
            fd_change(n, EVFILT_WRITE, EV_ADD),
        ],
    );
    drop(a);
    let (_b, _peer2) = readable_at(n, b"");
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_READ, EV_DELETE)),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_WRITE, EV_DELETE)),
        libc::ENOENT
    );
}

/// The same with the number reused the ordinary way: close() and let the
/// next socket() take the lowest free number.
#[test]
fn closed_number_reused_by_socket_is_a_fresh_descriptor() {
    let kq = new_kq();
    let (a, mut peer) = socketpair();
    send(&mut peer, b"x");
    let n = a.as_raw_fd();
    add(&kq, &[fd_change(n, EVFILT_READ, EV_ADD)]);
    drop(a);
    // Another test thread may take the number first: keep what we get
    // until a socket lands on it (it is free again when that thread closes).
    let mut held = Vec::new();
    let start = std::time::Instant::now();
    let reused = loop {
        let (s, t) = socketpair();
        if s.as_raw_fd() == n {
            break (s, t);
        }
        held.push((s, t));
        assert!(
            start.elapsed() < DEADLINE,
            "descriptor {n} was not reused within {DEADLINE:?}"
        );
        if held.len() > 20 {
            held.clear();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    drop(held);
    let (_s, mut t) = reused;
    send(&mut t, b"ready");
    assert_quiet(
        &kq,
        n as usize,
        EVFILT_READ,
        QUIET,
        "the old knote died with close()",
    );
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_READ, EV_DELETE)),
        libc::ENOENT
    );
}

/// Closing one descriptor leaves the knotes of others alone.
#[test]
fn closing_one_descriptor_leaves_others_registered() {
    let kq = new_kq();
    let (a, _pa) = socketpair();
    let (b, mut pb) = socketpair();
    add(
        &kq,
        &[
            fd_change(a.as_raw_fd(), EVFILT_READ, EV_ADD),
            fd_change(b.as_raw_fd(), EVFILT_READ, EV_ADD),
        ],
    );
    let bfd = b.as_raw_fd() as usize;
    drop(a);
    send(&mut pb, b"y");
    let ev = wait_for(&kq, bfd, EVFILT_READ);
    assert_eq!(ev.data, 1, "got {ev:?}");
    drop(b);
}

/// A registered descriptor closed while a dup() keeps its file open
/// reports nothing more under its old number: the knote died with close(),
/// as on BSD (on Linux kq drops the orphaned epoll registration; crate docs,
/// limitation 1).
#[test]
fn close_drops_the_knote_even_while_a_dup_keeps_the_file_open() {
    let kq = new_kq();
    let n = 3005;
    let (r, w) = pipe();
    let r = move_to(r, n);
    add(&kq, &[fd_change(n, EVFILT_READ, EV_ADD)]);
    let dup = r.try_clone().expect("dup");
    drop(r); // close(n); the pipe lives on through `dup`
    write_fd(w.as_raw_fd(), b"data").expect("write");
    assert_quiet(
        &kq,
        n as usize,
        EVFILT_READ,
        QUIET,
        "close() removed the knote, although a dup() keeps the pipe open",
    );
    // The queue still works for everything else.
    let (r2, w2) = pipe();
    add(&kq, &[fd_change(r2.as_raw_fd(), EVFILT_READ, EV_ADD)]);
    write_fd(w2.as_raw_fd(), b"x").expect("write");
    let ev = wait_for(&kq, r2.as_raw_fd() as usize, EVFILT_READ);
    assert_eq!(ev.data, 1, "the other pipe still reports, got {ev:?}");
    drop(dup);
}

/// A kevent() that has nothing to report sleeps until its timeout, even
/// when a registered descriptor was closed while a dup() keeps its file
/// (and the file's readiness) alive: it must not spin on the CPU.
#[test]
fn waiting_with_a_closed_but_duplicated_descriptor_does_not_spin() {
    let kq = new_kq();
    let n = 3006;
    let (r, w) = pipe();
    let r = move_to(r, n);
    add(&kq, &[fd_change(n, EVFILT_READ, EV_ADD)]);
    let dup = r.try_clone().expect("dup");
    drop(r);
    write_fd(w.as_raw_fd(), b"data").expect("write");
    let cpu = thread_cpu();
    let start = std::time::Instant::now();
    let evs = wait(&kq, std::time::Duration::from_millis(300));
    let (took, burnt) = (start.elapsed(), thread_cpu() - cpu);
    assert!(
        burnt < std::time::Duration::from_millis(100),
        "kevent() used {burnt:?} of CPU in {took:?}: {evs:?}"
    );
    drop(dup);
}

/// A FIFO closed and opened again under the same number is a new file, even
/// though it has the same inode: EV_ADD watches it, and the old knote's
/// EV_DELETE would find nothing (FreeBSD drops knotes at close()).
#[test]
fn a_fifo_reopened_on_the_same_number_is_a_fresh_descriptor() {
    let dir = std::env::temp_dir().join(format!("kq-fifo-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let path = dir.join("fifo");
    let _ = std::fs::remove_file(&path);
    let c_path = std::ffi::CString::new(path.to_str().expect("utf-8 path")).expect("no NUL");
    // SAFETY: a valid C string and a mode.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {path:?}");
    let open = |flags: libc::c_int| {
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert!(
            fd >= 0,
            "open {path:?}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor we just opened and nobody else owns.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    };
    let kq = new_kq();
    let n = 3010;
    let reader = move_to(open(libc::O_RDONLY), n);
    let writer = open(libc::O_WRONLY);
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 1)]);
    write_fd(writer.as_raw_fd(), b"x").expect("write to the fifo");
    let first = wait_for(&kq, n as usize, EVFILT_READ);
    assert_eq!(
        (first.data, first.udata),
        (1, 1),
        "first open: got {first:?}"
    );

    assert_eq!(read_fd(reader.as_raw_fd(), 8).expect("read the fifo"), b"x");
    drop(reader); // close(n), while the writer keeps the FIFO alive
    let _reader2 = move_to(open(libc::O_RDONLY), n);
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_READ, EV_DELETE)),
        libc::ENOENT,
        "the knote of the closed reader must be gone, not found under the new one"
    );
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 2)]);
    write_fd(writer.as_raw_fd(), b"yy").expect("write to the fifo");
    let second = wait_for(&kq, n as usize, EVFILT_READ);
    assert_eq!(
        (second.data, second.udata),
        (2, 2),
        "reopened fifo, 2 bytes written, EV_ADD with udata 2: got {second:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A regular file of 100 bytes, opened for reading and moved to `number`.
fn regular_file_at(dir: &TempDir, number: i32) -> OwnedFd {
    let path = dir.path("file");
    std::fs::write(&path, [b'r'; 100]).expect("write the file");
    let f = std::fs::File::open(&path).expect("open the file");
    move_to(OwnedFd::from(f), number)
}

/// A level-triggered READ knote on a regular file ends with close(): no
/// event after it (kq re-checks such knotes itself on Linux), and none
/// once the number is reused by a socket that has nothing to read.
#[test]
fn level_knote_on_a_regular_file_ends_with_close() {
    let dir = TempDir::new("close-regular");
    let kq = new_kq();
    let n = 3011;
    let f = regular_file_at(&dir, n);
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 7)]);
    let ev = wait_for(&kq, n as usize, EVFILT_READ);
    assert_eq!((ev.data, ev.udata), (100, 7), "registered: got {ev:?}");
    drop(f); // close(n)
    for round in 0..3 {
        assert_no_events(&kq, QUIET, &format!("call {round} after close({n})"));
    }
    let (idle, _peer) = socketpair();
    let _idle = move_to(OwnedFd::from(idle), n);
    for round in 0..3 {
        assert_no_events(
            &kq,
            QUIET,
            &format!("call {round} after {n} was reused by an idle socket"),
        );
    }
}

/// How a READ knote on `n` ends up re-checked by kq itself on Linux rather
/// than by epoll.
#[derive(Debug, Clone, Copy)]
enum Recheck {
    /// A level READ knote beside an EV_CLEAR WRITE knote on one descriptor.
    ClearNeighbour,
    /// A level READ knote with NOTE_LOWAT.
    LowWaterMark,
    /// Two knotes of one descriptor ready, room for one event per call: the
    /// other waits for the next call.
    NoRoom,
}

/// Whatever re-checks a knote, close() ends it: once the number is closed
/// and reused by a new socket with bytes to read, nothing is reported
/// under that number (the old udata would point at freed memory in a C
/// program).
#[rstest]
#[case::level_read_beside_an_edge_triggered_write(Recheck::ClearNeighbour, 3012)]
#[case::note_lowat(Recheck::LowWaterMark, 3013)]
#[case::event_that_did_not_fit(Recheck::NoRoom, 3014)]
fn rechecked_knote_ends_with_close_even_if_the_number_is_reused(
    #[case] how: Recheck,
    #[case] n: i32,
) {
    let kq = new_kq();
    let (a, _peer) = readable_at(n, b"12345");
    let changes = match how {
        Recheck::ClearNeighbour => vec![
            change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 1),
            change(n as usize, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, 2),
        ],
        Recheck::LowWaterMark => vec![change(n as usize, EVFILT_READ, EV_ADD, NOTE_LOWAT, 2, 1)],
        Recheck::NoRoom => vec![
            change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 1),
            change(n as usize, EVFILT_WRITE, EV_ADD, 0, 0, 2),
        ],
    };
    add(&kq, &changes);
    // One call with room for one event: the READ knote is delivered, and
    // (on Linux) what is left of `n` waits in kq to be re-checked.
    let mut one = [kevent_zeroed(); 1];
    let got = kq
        .kevent(&[], &mut one, Some(DEADLINE))
        .expect("kevent() failed");
    let seen: Vec<Ev> = one[..got].iter().map(Ev::from_kevent).collect();
    assert!(
        seen.iter().any(|e| e.is(n as usize, EVFILT_READ)),
        "{how:?}: registered {:?}, expected the READ knote to fire, got {seen:?}",
        show(&changes)
    );
    drop(a); // close(n)
    let (_b, _peer2) = readable_at(n, b"new socket, never registered");
    for round in 0..3 {
        assert_no_events(
            &kq,
            QUIET,
            &format!("{how:?}: call {round} after {n} was closed and reused by a readable socket"),
        );
    }
}
