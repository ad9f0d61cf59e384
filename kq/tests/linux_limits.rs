//! Where the Linux translation cannot match FreeBSD, as the `kq` crate docs
//! list it ("Where Linux differs"): each difference here is pinned by a
//! test, so the list stays true. (The others are tested beside the
//! behaviour they qualify, in the filter's own test file.)
#![cfg(target_os = "linux")]

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use common::*;

/// Crate docs, item 1: a registered number closed while a dup() keeps its
/// file open, then reused by another file that has data, is reported under
/// the old knote (its udata) until a change names the number or an event
/// finds nothing true. epoll keys its entry by the old file, which only
/// that number could remove. (FreeBSD: nothing is reported.)
#[test]
fn a_number_closed_while_duplicated_and_reused_is_reported_on_linux() {
    let kq = new_kq();
    let n = 3015;
    let (a, mut a_peer) = socketpair();
    let a = move_to(OwnedFd::from(a), n);
    add(&kq, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 7)]);
    let dup = a.try_clone().expect("dup");
    drop(a); // close(n); the socket lives on through `dup`
    send(&mut a_peer, b"old");
    let (b, mut b_peer) = socketpair();
    send(&mut b_peer, b"new!");
    let _b = move_to(OwnedFd::from(b), n);
    let ev = wait_for(&kq, n as usize, EVFILT_READ);
    assert_eq!(
        (ev.data, ev.udata),
        (4, 7),
        "the old file's readiness, the new file's data, the old udata: got {ev:?}"
    );
    // A change naming the number ends it (the queue's epoll set is rebuilt
    // without the old file at the first event with nothing true).
    assert_eq!(
        errno_of(&kq, fd_change(n, EVFILT_READ, EV_DELETE)),
        libc::ENOENT,
        "EV_DELETE finds the number reused"
    );
    drop(dup);
}

/// Crate docs, "Filters and flags that do not exist": EVFILT_AIO,
/// EVFILT_PROCDESC, EVFILT_FS, EVFILT_LIO, EVFILT_SENDFILE and EVFILT_EMPTY
/// (FreeBSD's -3, -8 to -10, -12, -13) are EINVAL.
#[test]
fn filters_kq_does_not_have_are_einval_on_linux() {
    let kq = new_kq();
    let (a, _b) = socketpair();
    for filter in [-3, -8, -9, -10, -12, -13] {
        assert_eq!(
            errno_of(&kq, change(a.as_raw_fd() as usize, filter, EV_ADD, 0, 0, 0)),
            libc::EINVAL,
            "filter {filter}"
        );
    }
}

/// Crate docs, "Signals": SIGKILL and SIGSTOP cannot be watched (no
/// signalfd sees them), nor signals above SIGRTMAX (FreeBSD has 128): EINVAL.
#[test]
fn signals_linux_cannot_catch_are_einval_on_linux() {
    let kq = new_kq();
    let above = libc::SIGRTMAX() as usize + 1;
    for sig in [libc::SIGKILL as usize, libc::SIGSTOP as usize, above] {
        assert_eq!(
            errno_of(&kq, change(sig, EVFILT_SIGNAL, EV_ADD, 0, 0, 0)),
            libc::EINVAL,
            "signal {sig}"
        );
    }
}

/// Crate docs, "EVFILT_VNODE": a truncate() that grows a file looks like a
/// write to inotify and is reported NOTE_WRITE | NOTE_EXTEND (FreeBSD:
/// NOTE_ATTRIB); one that shrinks it is NOTE_ATTRIB, as on FreeBSD.
#[test]
fn truncating_a_file_is_reported_by_its_size_on_linux() {
    let dir = TempDir::new("limits-truncate");
    std::fs::write(dir.path("f"), b"0123456789").expect("write the file");
    let f = std::fs::File::open(dir.path("f")).expect("open");
    let fd = f.as_raw_fd() as usize;
    let kq = new_kq();
    let notes = NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB;
    add(
        &kq,
        &[change(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, notes, 0, 0)],
    );
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path("f"))
        .expect("open for writing");
    w.set_len(4).expect("shrink");
    assert_eq!(
        wait_for(&kq, fd, EVFILT_VNODE).fflags,
        NOTE_ATTRIB,
        "shrunk"
    );
    w.set_len(100).expect("grow");
    assert_eq!(
        wait_for(&kq, fd, EVFILT_VNODE).fflags,
        NOTE_WRITE | NOTE_EXTEND,
        "grown"
    );
}

/// Crate docs, "Regular files": an EV_CLEAR READ knote on a file fires
/// when the file changes, not after each read() (FreeBSD 14 runs the filter
/// on reads too, so a partial read reports the rest again).
#[test]
fn a_clear_read_knote_on_a_file_waits_for_a_change_on_linux() {
    use std::io::Read;
    let dir = TempDir::new("limits-clear-file");
    std::fs::write(dir.path("f"), b"0123456789").expect("write the file");
    let mut f = std::fs::File::open(dir.path("f")).expect("open");
    let fd = f.as_raw_fd() as usize;
    let kq = new_kq();
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    assert_eq!(wait_for(&kq, fd, EVFILT_READ).data, 10);
    let mut four = [0u8; 4];
    f.read_exact(&mut four).expect("read 4 bytes");
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "a read is not a change");
    // Any change of the file runs the filter again: 6 bytes are left.
    std::fs::set_permissions(dir.path("f"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(wait_for(&kq, fd, EVFILT_READ).data, 6);
}

/// Crate docs, "EVFILT_PROC": a knote asking for NOTE_FORK, NOTE_EXEC or
/// NOTE_TRACK is refused with ENOTSUP (Linux reports forks and execs only
/// to privileged listeners), whether it is added or modified, so the
/// program finds out; asked for NOTE_EXIT alone, the exit is reported.
#[test]
fn note_fork_exec_and_track_are_refused_with_enotsup_on_linux() {
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read _; /bin/true; exit 5"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let pid = child.id() as usize;
    let kq = new_kq();
    for note in [NOTE_FORK, NOTE_EXEC, NOTE_TRACK] {
        let ch = change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT | note, 0, 0);
        assert_eq!(
            errno_of(&kq, ch),
            libc::ENOTSUP,
            "EV_ADD, NOTE_EXIT | {note:#x}"
        );
        assert_eq!(
            receipt_of(&kq, ch),
            libc::ENOTSUP as i64,
            "EV_RECEIPT, {note:#x}"
        );
    }
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 0)]);
    assert_eq!(
        errno_of(
            &kq,
            change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT | NOTE_FORK, 0, 0)
        ),
        libc::ENOTSUP,
        "a re-add asking for NOTE_FORK"
    );
    drop(child.stdin.take()); // the child reads EOF, forks /bin/true, exits
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data),
        (NOTE_EXIT, 5 << 8),
        "the refused re-add left the NOTE_EXIT knote as it was: arrived {ev:?}"
    );
    child.wait().expect("reap");
}

/// Crate docs, "Datagram sockets ... A kqueue watched by a kqueue": the
/// count of a watched kqueue includes an EV_CLEAR knote already reported
/// whose condition still holds (its pipe still has the byte), because
/// epoll's ready list cannot be read without taking its events, so kq
/// polls each knote's source. (FreeBSD counts only the user event: 1.)
#[test]
fn a_watched_kqueue_counts_a_reported_clear_knote_still_true_on_linux() {
    let inner = new_kq();
    let outer = new_kq();
    let ifd = inner.as_raw_fd() as usize;
    let (r, w) = pipe();
    let rfd = r.as_raw_fd() as usize;
    add(
        &inner,
        &[
            change(rfd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 0),
            change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0),
        ],
    );
    write_fd(w.as_raw_fd(), b"x").expect("write");
    wait_for(&inner, rfd, EVFILT_READ); // reported; the byte stays
    add(&outer, &[change(ifd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    add(&inner, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    let ev = wait_for(&outer, ifd, EVFILT_READ);
    assert_eq!(
        ev.data, 2,
        "the user event and the pipe's EV_CLEAR knote (reported, still true): got {ev:?}"
    );
}

/// Crate docs, "Socket errors": an AF_UNIX socket's error (ECONNRESET when
/// the peer closed with data it never read) can only be read with
/// SO_ERROR, which clears it: after the EV_EOF reports it, SO_ERROR says 0.
/// (TCP errors are told without clearing them: see read.rs.)
#[test]
fn a_unix_socket_error_is_cleared_by_reporting_it_on_linux() {
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    send(&mut &a, b"never read");
    let kq = new_kq();
    add(&kq, &[fd_change(fd, EVFILT_READ, EV_ADD)]);
    drop(b); // closed with unread data: Linux sets ECONNRESET on `a`
    let ev = wait_for(&kq, fd as usize, EVFILT_READ);
    assert_eq!(
        (ev.has(EV_EOF), ev.fflags),
        (true, libc::ECONNRESET as u32),
        "got {ev:?}"
    );
    assert_eq!(
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR),
        0,
        "reporting the error read SO_ERROR, which cleared it"
    );
}

/// Crate docs, "EVFILT_VNODE": a utimes() that changes only the access
/// time, merged by inotify with a link() after it, is reported as the link
/// alone (FreeBSD: NOTE_ATTRIB | NOTE_LINK): reads change the access time
/// too, so kq cannot take its change for a setattr.
#[test]
fn an_access_time_change_merged_with_a_link_is_the_link_alone_on_linux() {
    let dir = TempDir::new("limits-atime-link");
    std::fs::write(dir.path("f"), b"x").expect("write the file");
    let f = std::fs::File::open(dir.path("f")).expect("open");
    let fd = f.as_raw_fd() as usize;
    let kq = new_kq();
    let notes = NOTE_ATTRIB | NOTE_LINK;
    add(
        &kq,
        &[change(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, notes, 0, 0)],
    );
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    f.set_times(std::fs::FileTimes::new().set_accessed(long_ago))
        .expect("utimes");
    std::fs::hard_link(dir.path("f"), dir.path("g")).expect("link");
    assert_eq!(
        wait_for(&kq, fd, EVFILT_VNODE).fflags,
        NOTE_LINK,
        "utimes(access time) then link()"
    );
}
