//! The queue itself (kqueue(2)): timeouts NULL (wait for ever), zero (poll)
//! and positive; `nevents == 0` returns at once; a signal interrupts a
//! waiting kevent() with EINTR after the changes were applied; a kqueue is
//! itself a pollable descriptor (a kqueue can watch a kqueue, not itself);
//! kevent() on something that is not a kqueue fails with EBADF.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;

/// A NULL timeout waits until an event arrives (here: a trigger from
/// another thread 100 ms later).
#[test]
fn null_timeout_waits_for_an_event() {
    let kq = Arc::new(new_kq());
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    // Before the trigger thread starts its 100 ms.
    let start = Instant::now();
    let trigger = {
        let kq = Arc::clone(&kq);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
        })
    };
    let waiter = Arc::clone(&kq);
    let got = within(DEADLINE, "kevent(NULL timeout)", move || {
        let mut out = [kevent_zeroed(); 2];
        let n = waiter.kevent(&[], &mut out, None).expect("kevent");
        out[..n].iter().map(Ev::from_kevent).collect::<Vec<_>>()
    });
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "returned after {:?} with {got:?}",
        start.elapsed()
    );
    assert!(got.len() == 1 && got[0].is(1, EVFILT_USER), "got {got:?}");
    trigger.join().expect("trigger thread");
}

/// A zero timeout polls: it returns 0 at once on an empty queue.
#[test]
fn zero_timeout_returns_at_once() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 10_000, 0)]);
    let start = Instant::now();
    let evs = wait(&kq, Duration::ZERO);
    assert!(evs.is_empty(), "got {evs:?}");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "took {:?}",
        start.elapsed()
    );
}

/// A positive timeout waits that long, then returns 0.
#[test]
fn positive_timeout_waits_then_returns_zero() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD, 0, 0, 0)]);
    let start = Instant::now();
    let evs = wait(&kq, Duration::from_millis(200));
    let took = start.elapsed();
    assert!(evs.is_empty(), "got {evs:?}");
    assert!(
        took >= Duration::from_millis(195),
        "returned early, after {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "returned late, after {took:?}"
    );
}

/// A sub-millisecond timeout is honoured, not rounded down to a busy poll
/// or up to for ever.
#[test]
fn sub_millisecond_timeout_returns() {
    let kq = new_kq();
    let start = Instant::now();
    for _ in 0..10 {
        assert!(wait(&kq, Duration::from_micros(300)).is_empty());
    }
    assert!(
        start.elapsed() >= Duration::from_millis(3),
        "10 x 0.3 ms took {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "10 x 0.3 ms took {:?}",
        start.elapsed()
    );
}

/// `nevents == 0` returns at once, whatever the timeout (even NULL) and
/// even with events pending, after applying the changes.
#[test]
fn zero_nevents_returns_at_once_even_with_null_timeout() {
    let kq = new_kq();
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    let fd = kq.as_raw_fd();
    let n = within(DEADLINE, "kevent(nevents = 0, NULL timeout)", move || {
        let ch = change(2, EVFILT_USER, EV_ADD, 0, 0, 0);
        // SAFETY: one change, no eventlist, NULL timeout.
        unsafe { kq::kevent(fd, &ch, 1, std::ptr::null_mut(), 0, std::ptr::null()) }
    });
    assert_eq!(n, 0);
    let start = Instant::now();
    assert_eq!(
        kq.kevent(&[], &mut [], Some(Duration::from_secs(3)))
            .expect("kevent"),
        0
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        receipt_of(&kq, change(2, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        0,
        "change was applied"
    );
    assert!(
        poll(&kq).iter().any(|e| e.ident == 1),
        "pending event 1 was not consumed"
    );
}

extern "C" fn noop(_: libc::c_int) {}

/// A signal (no-op handler installed without SA_RESTART) sent to a thread
/// blocked in kevent() makes it fail with EINTR; the changes of that call
/// were applied.
#[test]
fn signal_interrupts_a_waiting_kevent_with_eintr() {
    let sig = libc::SIGUSR1;
    // SAFETY: installs a handler that does nothing (async-signal-safe),
    // without SA_RESTART, for a signal only this test sends.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
    let kq = Arc::new(new_kq());
    let (result_tx, result_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let waiter = {
        let kq = Arc::clone(&kq);
        std::thread::spawn(move || {
            let mut out = [kevent_zeroed(); 4];
            let r = kq.kevent(
                &[change(5, EVFILT_USER, EV_ADD, 0, 0, 0)],
                &mut out,
                Some(Duration::from_secs(10)),
            );
            let _ = result_tx.send(r.map_err(|e| e.raw_os_error()));
            // Stay alive until told: pthread_kill needs a live thread.
            let _ = exit_rx.recv_timeout(DEADLINE);
        })
    };
    let thread = waiter.as_pthread_t();
    let start = Instant::now();
    let result = loop {
        // Repeat until it lands while the thread is inside kevent().
        // SAFETY: the thread is alive until we send on `exit_tx`.
        unsafe { libc::pthread_kill(thread, sig) };
        if let Ok(r) = result_rx.recv_timeout(Duration::from_millis(20)) {
            break r;
        }
        assert!(start.elapsed() < DEADLINE, "kevent() was not interrupted");
    };
    let _ = exit_tx.send(());
    waiter.join().expect("waiter");
    assert_eq!(result, Err(Some(libc::EINTR)), "expected -1/EINTR");
    assert_eq!(
        receipt_of(&kq, change(5, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        0,
        "changes applied before EINTR"
    );
}

/// A kqueue descriptor is pollable: an outer kqueue watching an inner one
/// with EVFILT_READ reports it when the inner one has events.
#[test]
fn a_kqueue_can_watch_a_kqueue() {
    let inner = new_kq();
    let outer = new_kq();
    let ifd = inner.as_raw_fd() as usize;
    add(
        &inner,
        &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)],
    );
    add(&outer, &[change(ifd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    assert_quiet(&outer, ifd, EVFILT_READ, QUIET, "inner queue is empty");
    add(&inner, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    wait_for(&outer, ifd, EVFILT_READ);
    let evs = poll(&inner);
    assert!(evs.iter().any(|e| e.is(1, EVFILT_USER)), "got {evs:?}");
    assert_quiet(&outer, ifd, EVFILT_READ, QUIET, "inner queue drained");
}

/// A kqueue watched by a kqueue reports `data` = how many events it has
/// pending (FreeBSD `filt_kqueue`: `kq_count`), and the count goes down as
/// they are taken.
#[test]
fn a_watched_kqueue_reports_how_many_events_it_has_pending() {
    let inner = new_kq();
    let outer = new_kq();
    let ifd = inner.as_raw_fd() as usize;
    let (r, w) = pipe();
    let rfd = r.as_raw_fd() as usize;
    let mut changes: Vec<kevent> = (1..=3)
        .map(|id| change(id, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0))
        .collect();
    changes.push(change(rfd, EVFILT_READ, EV_ADD, 0, 0, 0));
    add(&inner, &changes);
    add(&outer, &[change(ifd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    for id in 1..=3 {
        add(&inner, &[change(id, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    }
    write_fd(w.as_raw_fd(), b"x").expect("write");
    let ev = wait_for(&outer, ifd, EVFILT_READ);
    assert_eq!(
        ev.data, 4,
        "3 triggered EVFILT_USER knotes and a readable pipe: got {ev:?}"
    );
    // Take the three user events (EV_CLEAR: gone once reported); the pipe's
    // level knote stays pending.
    let mut taken = Vec::new();
    while taken
        .iter()
        .filter(|e: &&Ev| e.filter == EVFILT_USER)
        .count()
        < 3
    {
        let got = wait(&inner, DEADLINE);
        assert!(!got.is_empty(), "the inner queue ran dry after {taken:?}");
        taken.extend(got);
    }
    let ev = wait_for(&outer, ifd, EVFILT_READ);
    assert_eq!(ev.data, 1, "only the pipe is left: got {ev:?}");
}

/// The same through poll(2): a kqueue with a pending event is readable.
#[test]
fn a_kqueue_with_pending_events_is_readable_for_poll() {
    let kq = new_kq();
    let mut pfd = libc::pollfd {
        fd: kq.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert_eq!(n, 0, "empty queue is not readable");
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    // SAFETY: one live pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, DEADLINE.as_millis() as libc::c_int) };
    assert_eq!(n, 1, "queue with a pending event must be readable");
    assert!(pfd.revents & libc::POLLIN != 0);
}

/// A kqueue cannot watch itself: EINVAL.
#[test]
fn a_kqueue_cannot_watch_itself() {
    let kq = new_kq();
    let me = kq.as_raw_fd() as usize;
    assert_eq!(
        errno_of(&kq, change(me, EVFILT_READ, EV_ADD, 0, 0, 0)),
        libc::EINVAL
    );
}

/// kevent() on a descriptor that is not a kqueue, or not open, is EBADF.
#[test]
fn kevent_on_something_else_is_ebadf() {
    let (r, _w) = pipe();
    for fd in [r.as_raw_fd(), 10_001] {
        let mut out = [kevent_zeroed(); 1];
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: no changes, room for one event, a live timespec.
        let rc = unsafe { kq::kevent(fd, std::ptr::null(), 0, out.as_mut_ptr(), 1, &zero) };
        let err = std::io::Error::last_os_error().raw_os_error();
        assert_eq!((rc, err), (-1, Some(libc::EBADF)), "kevent() on fd {fd}");
    }
}

/// Each kqueue is independent: a knote in one is not seen by another.
#[test]
fn kqueues_are_independent() {
    let (a, b) = (new_kq(), new_kq());
    add(
        &a,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    assert!(poll(&b).is_empty());
    assert_eq!(
        errno_of(&b, change(1, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT
    );
    assert_eq!(poll(&a).len(), 1);
}

/// A kqueue can be watched for reading only: EVFILT_WRITE on a kqueue
/// descriptor is EINVAL (FreeBSD `kqueue_kqfilter`).
#[test]
fn a_kqueue_cannot_be_watched_for_writing() {
    let (inner, outer) = (new_kq(), new_kq());
    let ifd = inner.as_raw_fd() as usize;
    assert_eq!(
        errno_of(&outer, change(ifd, EVFILT_WRITE, EV_ADD, 0, 0, 0)),
        libc::EINVAL,
        "EV_ADD of EVFILT_WRITE on a kqueue descriptor"
    );
}

/// One kevent() call returns every ready event that fits in the event list,
/// however many (FreeBSD fills the list up to `nevents`): 300 expired
/// timers come back in one call with room for 400, and 280 of them with
/// room for 280.
#[test]
fn one_call_returns_every_ready_event_that_fits() {
    let kq = new_kq();
    let timers: Vec<kevent> = (1..=300)
        .map(|i| change(i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, 0))
        .collect();
    add(&kq, &timers);
    // Every 1 ms one-shot timer has expired well before this.
    std::thread::sleep(Duration::from_millis(100));
    let mut room = vec![kevent_zeroed(); 400];
    let n = kq
        .kevent(&[], &mut room[..280], Some(Duration::ZERO))
        .expect("kevent()");
    assert_eq!(n, 280, "300 timers expired, room for 280");
    let n = kq
        .kevent(&[], &mut room, Some(Duration::ZERO))
        .expect("kevent()");
    assert_eq!(n, 20, "the 20 that did not fit come with the next call");
    add(&kq, &timers);
    std::thread::sleep(Duration::from_millis(100));
    let n = kq
        .kevent(&[], &mut room, Some(Duration::ZERO))
        .expect("kevent()");
    assert_eq!(n, 300, "300 timers expired again, room for 400");
}
