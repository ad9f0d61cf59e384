//! close() frees a kqueue (kqueue(2): the queue is a descriptor, and
//! closing it frees the queue and its knotes).
//!
//! On Linux the translation holds descriptors of its own for a queue (an
//! eventfd, a timerfd per timer), so these tests count the entries of
//! /proc/self/fd. They live in their own test binary (its own process) and
//! take a lock, so no other test opens or closes descriptors while they
//! count. On the BSDs a queue is one descriptor and timers hold none, so
//! there is nothing more to count there.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Mutex;

use common::*;

static COUNTING: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Another test of this binary may have closed a kqueue with a raw
/// close(); its bookkeeping goes at the next kqueue() call. Make that call
/// now (through the safe layer, which frees its own queue on drop), so it
/// does not happen in the middle of a count.
fn sweep_raw_closed_queues() {
    drop(new_kq());
}

fn timers(n: usize) -> Vec<kevent> {
    (1..=n)
        .map(|i| change(i, EVFILT_TIMER, EV_ADD, 0, 60_000, 0))
        .collect()
}

/// Dropping a Kqueue (close() through the safe layer) frees every
/// descriptor it used, its timers' included.
#[test]
fn dropping_a_kqueue_frees_its_timers_descriptors() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    sweep_raw_closed_queues();
    let before = open_fds();
    let kq = new_kq();
    add(&kq, &timers(5));
    add(&kq, &[change(1, EVFILT_USER, EV_ADD, 0, 0, 0)]);
    let during = open_fds();
    assert!(
        during > before,
        "a kqueue with 5 timers holds descriptors ({before} -> {during})"
    );
    drop(kq);
    assert_eq!(
        open_fds(),
        before,
        "after dropping the kqueue (it had {during})"
    );
}

/// A kqueue closed with a raw close() is freed too, its timers'
/// descriptors included, by the next kqueue() call (the translation cannot
/// see a plain close(); kq crate docs, item 7).
#[test]
fn raw_close_of_a_kqueue_frees_it_by_the_next_kqueue_call() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    sweep_raw_closed_queues();
    let before = open_fds();
    // What an empty queue costs.
    // SAFETY: kqueue() has no preconditions.
    let empty = unsafe { kqueue() };
    assert!(empty >= 0);
    let cost = open_fds() - before;
    // SAFETY: closing the descriptor we just created.
    unsafe { libc::close(empty) };

    // SAFETY: kqueue() has no preconditions.
    let kq = unsafe { kqueue() };
    assert!(kq >= 0, "kqueue(): {}", std::io::Error::last_os_error());
    let changes = timers(5);
    // SAFETY: `changes` holds 5 events; no eventlist; NULL timeout is fine
    // with nevents = 0.
    let rc = unsafe {
        kevent(
            kq,
            changes.as_ptr(),
            5,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "adding 5 timers: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: closing our own kqueue descriptor.
    let rc = unsafe { libc::close(kq) };
    assert_eq!(rc, 0);

    // SAFETY: kqueue() has no preconditions.
    let next = unsafe { kqueue() };
    assert!(next >= 0);
    let now = open_fds();
    // SAFETY: closing our own kqueue descriptor.
    unsafe { libc::close(next) };
    assert_eq!(
        now,
        before + cost,
        "after close(kq) and a new kqueue(): only the new queue's {cost} descriptors"
    );
}

/// A closed kqueue descriptor is no longer a kqueue: kevent() on it fails
/// with EBADF.
#[test]
fn kevent_on_a_closed_kqueue_is_ebadf() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: kqueue() has no preconditions.
    let kq = unsafe { kqueue() };
    // SAFETY: closing our own kqueue descriptor.
    unsafe { libc::close(kq) };
    let mut out = [kevent_zeroed(); 1];
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: no changes, room for one event, a live timespec. No other
    // test of this binary opens descriptors while we hold the lock, so the
    // number is still free.
    let rc = unsafe { kevent(kq, std::ptr::null(), 0, out.as_mut_ptr(), 1, &zero) };
    let err = std::io::Error::last_os_error().raw_os_error();
    assert_eq!((rc, err), (-1, Some(libc::EBADF)));
}

/// A kqueue number closed with a raw close() and reused by another file is
/// not a kqueue any more: kevent() fails with EBADF for every change, of
/// every filter, as on BSD (its old knotes are gone with it).
#[test]
fn kevent_on_a_kqueue_number_reused_by_another_file_is_ebadf() {
    let _serial = COUNTING.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: kqueue() has no preconditions.
    let kq = unsafe { kqueue() };
    assert!(kq >= 0, "kqueue(): {}", std::io::Error::last_os_error());
    let setup = [change(1, EVFILT_USER, EV_ADD, 0, 0, 0)];
    // SAFETY: one change, no eventlist.
    let rc = unsafe {
        kevent(
            kq,
            setup.as_ptr(),
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "EV_ADD of a user event: {}",
        std::io::Error::last_os_error()
    );
    let (sock, _peer) = socketpair();
    // SAFETY: closing our own kqueue, then putting the socket on its number
    // (no other test of this binary opens descriptors while we hold the lock).
    unsafe {
        libc::close(kq);
        assert_eq!(libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&sock), kq), kq);
    }
    let sfd = std::os::fd::AsRawFd::as_raw_fd(&sock) as usize;
    let cases = [
        change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        change(2, EVFILT_USER, EV_ADD, 0, 0, 0),
        change(1, EVFILT_TIMER, EV_ADD, 0, 1000, 0),
        change(sfd, EVFILT_READ, EV_ADD, 0, 0, 0),
    ];
    for ch in cases {
        let mut out = [kevent_zeroed(); 1];
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        for nevents in [0, 1] {
            // SAFETY: one change, room for `nevents` (0 or 1) events, a live
            // timespec.
            let rc = unsafe { kevent(kq, &ch, 1, out.as_mut_ptr(), nevents, &zero) };
            let err = std::io::Error::last_os_error().raw_os_error();
            assert_eq!(
                (rc, err),
                (-1, Some(libc::EBADF)),
                "kevent() on number {kq} (a socket now) with {:?}, nevents {nevents}",
                show(&[ch])
            );
        }
    }
    // SAFETY: closing the duplicate we made.
    unsafe { libc::close(kq) };
}
