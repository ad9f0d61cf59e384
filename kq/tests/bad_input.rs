//! What kevent() does with arguments a careless or hostile caller passes
//! (kqueue(2), FreeBSD `kqueue_kevent` and `kqueue_scan` in
//! sys/kern/kern_event.c): FreeBSD copies changes in and events out in
//! chunks of KQ_NEVENTS, so no count the caller passes decides how much
//! memory the kernel takes, and a count that is not positive simply means
//! "nothing". (The FreeBSD answers are checked on Linux and FreeBSD only:
//! macOS and NetBSD answer some of these their own way.)

mod common;

use std::time::Duration;

use common::*;

/// kevent() with `nevents` = INT_MAX and room for one event, on a queue
/// with nothing pending, times out and returns 0: nothing is allocated by
/// the caller's count (kq used to abort, failing to allocate 24 GiB).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn huge_nevents_with_nothing_pending_times_out() {
    let kq = new_kq();
    let mut one = kevent_zeroed();
    let ms = timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    let started = std::time::Instant::now();
    // SAFETY: nothing is pending, so kevent() writes no entry; `one` is a
    // live event the call may not go past.
    let n = unsafe { kq::kevent(kq_fd(&kq), std::ptr::null(), 0, &mut one, i32::MAX, &ms) };
    assert_eq!(n, 0, "sent nevents INT_MAX, 1 ms timeout, nothing pending");
    assert!(
        started.elapsed() < DEADLINE,
        "returned after {:?}",
        started.elapsed()
    );
}

/// With a huge `nevents` and one event pending, exactly that one is
/// written, to the first slot.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn huge_nevents_returns_only_what_is_pending() {
    let kq = new_kq();
    add(&kq, &[change(7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    add(&kq, &[change(7, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    let mut two = [kevent_zeroed(); 2];
    let ms = timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    // SAFETY: one event is pending, so kevent() writes only `two[0]`.
    let n = unsafe {
        kq::kevent(
            kq_fd(&kq),
            std::ptr::null(),
            0,
            two.as_mut_ptr(),
            i32::MAX,
            &ms,
        )
    };
    let got: Vec<Ev> = two.iter().map(Ev::from_kevent).collect();
    assert_eq!(n, 1, "one trigger pending; arrived {got:?}");
    assert!(got[0].is(7, EVFILT_USER), "arrived {got:?}");
    assert_eq!(got[1], Ev::from_kevent(&kevent_zeroed()), "slot 1 written");
}

/// More ready descriptors than kq takes from epoll at once (it reads them
/// in chunks): with room for all, one call reports each exactly once.
#[test]
fn many_ready_descriptors_are_each_reported_once_per_call() {
    raise_descriptor_limit(1000);
    let kq = new_kq();
    let pairs: Vec<_> = (0..300).map(|_| socketpair()).collect();
    for (a, b) in &pairs {
        use std::os::fd::AsRawFd;
        write_fd(b.as_raw_fd(), b"x").expect("write");
        add(&kq, &[fd_change(a.as_raw_fd(), EVFILT_READ, EV_ADD)]);
    }
    let mut room = vec![kevent_zeroed(); 1000];
    let n = kq
        .kevent(&[], &mut room, Some(Duration::ZERO))
        .expect("kevent()");
    let mut idents: Vec<usize> = room[..n].iter().map(|k| k.ident).collect();
    idents.sort_unstable();
    idents.dedup();
    assert_eq!(
        (n, idents.len()),
        (300, 300),
        "300 readable sockets (level), room for 1000"
    );
}

/// A negative `nchanges` means no changes (FreeBSD's loop runs while
/// `nchanges > 0`): the call goes on to collect events, it is not EINVAL.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn negative_nchanges_applies_no_changes_and_collects_events() {
    let kq = new_kq();
    add(&kq, &[change(3, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    add(&kq, &[change(3, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    let ignored = change(4, EVFILT_USER, EV_ADD, 0, 0, 0);
    let mut out = [kevent_zeroed(); 2];
    let zero = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ignored` and `out` are live; nchanges < 0 reads nothing.
    let rc = unsafe { kq::kevent(kq_fd(&kq), &ignored, -1, out.as_mut_ptr(), 2, &zero) };
    let err = (rc < 0).then(|| std::io::Error::last_os_error().raw_os_error());
    assert_eq!((rc, err), (1, None), "nchanges -1, one trigger pending");
    assert!(
        Ev::from_kevent(&out[0]).is(3, EVFILT_USER),
        "arrived {:?}",
        Ev::from_kevent(&out[0])
    );
    assert_eq!(
        errno_of(&kq, change(4, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "the change passed with nchanges -1 was not applied"
    );
}

/// A NULL eventlist with `nevents` > 0 and nothing pending waits out the
/// timeout and returns 0, as FreeBSD does (it only fails, EFAULT, when it
/// has an event to copy out).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn null_eventlist_with_nothing_pending_returns_zero() {
    let kq = new_kq();
    let ms = timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    // SAFETY: nothing is pending, so nothing is written through the null
    // eventlist.
    let rc = unsafe {
        kq::kevent(
            kq_fd(&kq),
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            4,
            &ms,
        )
    };
    let err = (rc < 0).then(|| std::io::Error::last_os_error().raw_os_error());
    assert_eq!(
        (rc, err),
        (0, None),
        "NULL eventlist, nevents 4, 1 ms, nothing pending"
    );
}

/// A NULL eventlist with an event pending: EFAULT (FreeBSD's copyout of the
/// event fails).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn null_eventlist_with_an_event_pending_is_efault() {
    let kq = new_kq();
    add(&kq, &[change(5, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    add(&kq, &[change(5, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    let zero = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: kevent() must not write through the null eventlist.
    let rc = unsafe {
        kq::kevent(
            kq_fd(&kq),
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            4,
            &zero,
        )
    };
    let err = (rc < 0).then(|| std::io::Error::last_os_error().raw_os_error());
    assert_eq!(
        (rc, err),
        (-1, Some(Some(libc::EFAULT))),
        "NULL eventlist, one trigger pending"
    );
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn kq_fd(kq: &Kqueue) -> i32 {
    use std::os::fd::AsRawFd;
    kq.as_raw_fd()
}

/// Raises this process's soft descriptor limit to at least `want` (macOS
/// starts at 256), within the hard limit.
fn raise_descriptor_limit(want: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one live rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}
