//! The changelist (kqueue(2), FreeBSD `kqueue_kevent`): changes are applied
//! in order before waiting; failed changes and `EV_RECEIPT` produce
//! `EV_ERROR` entries with `data` = errno while there is room, else the call
//! fails with -1/errno and the rest is not processed; once any such entry is
//! written the call returns without waiting. Plus the per-change errors
//! (EBADF, ENOENT, EINVAL) and "EV_ADD on an existing knote modifies it".

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use rstest::rstest;

/// Changes are applied one by one, in order: ADD then DELETE of the same
/// knote leaves nothing, DELETE then ADD leaves it registered.
#[test]
fn changes_are_applied_in_order() {
    let kq = new_kq();
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, EV_DELETE, 0, 0, 0),
        ],
    );
    assert_eq!(
        errno_of(&kq, change(1, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "after [ADD 1, DELETE 1] knote 1 must be gone"
    );

    // DELETE first fails (nothing yet), then ADD succeeds: one EV_ERROR entry.
    let mut out = [kevent_zeroed(); 4];
    let n = kq
        .kevent(
            &[
                change(2, EVFILT_USER, EV_DELETE, 0, 0, 0),
                change(2, EVFILT_USER, EV_ADD, 0, 0, 0),
            ],
            &mut out,
            Some(Duration::ZERO),
        )
        .expect("kevent");
    assert_eq!(
        n, 1,
        "sent [DELETE 2, ADD 2]: expected one EV_ERROR entry for the DELETE"
    );
    let e = Ev::from_kevent(&out[0]);
    assert!(
        e.has(EV_ERROR) && e.data == libc::ENOENT as i64,
        "got {e:?}"
    );
    assert_eq!(
        receipt_of(&kq, change(2, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        0,
        "knote 2 must exist"
    );
}

/// The changelist is applied before anything is read from the queue: an
/// event made ready by a change in this very call is returned by it, with
/// the udata of the last modification.
#[test]
fn changes_are_applied_before_waiting() {
    let kq = new_kq();
    let mut out = [kevent_zeroed(); 4];
    let n = kq
        .kevent(
            &[
                change(7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 1),
                change(7, EVFILT_USER, 0, NOTE_TRIGGER, 0, 2),
            ],
            &mut out,
            Some(DEADLINE),
        )
        .expect("kevent");
    assert_eq!(
        n, 1,
        "added and triggered user event 7 in one call: expected it back"
    );
    let e = Ev::from_kevent(&out[0]);
    assert!(
        e.is(7, EVFILT_USER) && e.udata == 2,
        "expected ident 7 with udata 2, got {e:?}"
    );
}

/// A failed change yields an EV_ERROR entry with `data` = errno, keeps
/// ident/filter, and the call returns at once without draining pending
/// events (even with a long timeout).
#[test]
fn failed_change_yields_ev_error_entry_and_returns_without_waiting() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD, 0, 0, 0)]);
    add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]); // pending, level
    let mut out = [kevent_zeroed(); 4];
    let start = Instant::now();
    let n = kq
        .kevent(
            &[change(99, EVFILT_USER, EV_DELETE, 0, 0, 0)],
            &mut out,
            Some(Duration::from_secs(3)),
        )
        .expect("kevent with room for the error must not fail");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(
        n, 1,
        "expected only the EV_ERROR entry, not the pending user event"
    );
    let e = Ev::from_kevent(&out[0]);
    assert!(e.has(EV_ERROR), "expected EV_ERROR, got {e:?}");
    assert_eq!(
        e.data,
        libc::ENOENT as i64,
        "data must be the errno, got {e:?}"
    );
    assert!(
        e.is(99, EVFILT_USER),
        "ident and filter are kept, got {e:?}"
    );
    // The pending event was not consumed.
    assert!(
        poll(&kq).iter().any(|e| e.is(1, EVFILT_USER)),
        "user event 1 must still be pending"
    );
}

/// Returning without waiting also holds for a NULL timeout.
#[test]
fn failed_change_returns_at_once_even_with_null_timeout() {
    let kq = new_kq();
    let n = within(
        DEADLINE,
        "kevent(NULL timeout) with a failing change",
        move || {
            let mut out = [kevent_zeroed(); 2];
            kq.kevent(
                &[change(5, EVFILT_USER, EV_DISABLE, 0, 0, 0)],
                &mut out,
                None,
            )
            .map(|n| (n, Ev::from_kevent(&out[0])))
        },
    )
    .expect("kevent");
    assert_eq!(n.0, 1);
    assert!(
        n.1.has(EV_ERROR) && n.1.data == libc::ENOENT as i64,
        "got {:?}",
        n.1
    );
}

/// EV_RECEIPT: every change, successful or not, yields an EV_ERROR entry
/// (data 0 on success), in changelist order, and the call does not wait or
/// return pending events.
#[test]
fn receipts_report_each_change_in_order_without_waiting() {
    let kq = new_kq();
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    let changes = [
        change(2, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, 0),
        change(3, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, 0),
        change(2, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, 0),
    ];
    let mut out = [kevent_zeroed(); 8];
    let start = Instant::now();
    let n = kq.kevent(&changes, &mut out, None).expect("kevent");
    assert!(start.elapsed() < Duration::from_secs(1));
    let got: Vec<(usize, bool, i64)> = out[..n]
        .iter()
        .map(Ev::from_kevent)
        .map(|e| (e.ident, e.has(EV_ERROR), e.data))
        .collect();
    assert_eq!(
        got,
        vec![(2, true, 0), (3, true, libc::ENOENT as i64), (2, true, 0)],
        "sent ADD 2, DELETE 3 (absent), DELETE 2, all with EV_RECEIPT"
    );
}

/// A receipt carries the change as the filter left it: FreeBSD's
/// `kqueue_register` zeroes the `fflags` of a change that creates a knote,
/// and EVFILT_USER's touch keeps only the user bits (no NOTE_TRIGGER, no
/// control bits). (XNU leaves them; this test is not built for macOS.)
#[cfg(not(target_os = "macos"))]
#[test]
fn a_receipt_has_the_fflags_the_filter_left() {
    let kq = new_kq();
    let changes = [
        change(1, EVFILT_TIMER, EV_ADD | EV_RECEIPT, NOTE_SECONDS, 60, 0),
        change(2, EVFILT_USER, EV_ADD | EV_RECEIPT, NOTE_FFCOPY | 0x7, 0, 0),
        change(
            2,
            EVFILT_USER,
            EV_RECEIPT,
            NOTE_TRIGGER | NOTE_FFOR | 0x30,
            0,
            0,
        ),
    ];
    let mut out = [kevent_zeroed(); 4];
    let n = kq
        .kevent(&changes, &mut out, Some(Duration::ZERO))
        .expect("kevent");
    let got: Vec<(usize, u32, i64)> = out[..n]
        .iter()
        .map(Ev::from_kevent)
        .map(|e| (e.ident, e.fflags, e.data))
        .collect();
    assert_eq!(
        got,
        vec![(1, 0, 0), (2, 0, 0), (2, 0x30, 0)],
        "receipts for {:?}",
        show(&changes)
    );
}

/// The same array may be both changelist and eventlist (the mio pattern).
#[test]
fn one_array_can_be_changelist_and_eventlist() {
    let kq = new_kq();
    let mut list = [
        change(1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, 0),
        change(2, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, 0),
        change(3, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, 0),
    ];
    let ptr = list.as_mut_ptr();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `list` holds 3 events and is both lists, which kqueue(2) allows.
    let n = unsafe { kq::kevent(kq.as_raw_fd(), ptr, 3, ptr, 3, &zero) };
    assert_eq!(n, 3);
    let got: Vec<(usize, i64)> = list
        .iter()
        .map(Ev::from_kevent)
        .map(|e| (e.ident, e.data))
        .collect();
    assert_eq!(got, vec![(1, 0), (2, libc::ENOENT as i64), (3, 0)]);
}

/// With no room left for its EV_ERROR entry, a failed change makes the call
/// fail with -1/errno, and the changes after it are not processed.
#[test]
fn failed_change_without_room_fails_the_call_and_stops_processing() {
    let kq = new_kq();
    let err = apply(
        &kq,
        &[
            change(1, EVFILT_USER, EV_DELETE, 0, 0, 0),
            change(2, EVFILT_USER, EV_ADD, 0, 0, 0),
        ],
    )
    .expect_err("DELETE of a missing knote with nevents = 0 must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(
        errno_of(&kq, change(2, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "the ADD after the failed change must not have been processed"
    );
}

/// Room runs out part way: the first error is written, the second fails the
/// call with its own errno, and later changes are not processed.
#[test]
fn errors_fill_the_eventlist_then_the_next_one_fails_the_call() {
    let kq = new_kq();
    let mut out = [kevent_zeroed(); 1];
    let err = kq
        .kevent(
            &[
                change(1, EVFILT_USER, EV_DELETE, 0, 0, 0), // ENOENT
                change(2, EVFILT_USER, EV_ENABLE | EV_DISABLE | EV_ADD, 0, 0, 0), // EINVAL
                change(3, EVFILT_USER, EV_ADD, 0, 0, 0),
            ],
            &mut out,
            Some(Duration::ZERO),
        )
        .expect_err("second failure with no room must fail the call");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EINVAL),
        "errno of the second failed change"
    );
    let e = Ev::from_kevent(&out[0]);
    assert!(
        e.has(EV_ERROR) && e.data == libc::ENOENT as i64,
        "first entry: {e:?}"
    );
    assert_eq!(
        errno_of(&kq, change(3, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "change 3 must not run"
    );
}

/// A successful EV_RECEIPT change with no room left: FreeBSD returns 0 at
/// once and does not process the rest (the man page: "subsequent changes
/// will not get processed"). macOS skips the receipt and carries on.
#[test]
fn receipt_without_room_stops_processing() {
    let kq = new_kq();
    let n = apply(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, 0),
            change(2, EVFILT_USER, EV_ADD, 0, 0, 0),
        ],
    )
    .expect("a successful receipt is not an error");
    assert_eq!(n, 0);
    assert_eq!(
        receipt_of(&kq, change(1, EVFILT_USER, EV_DELETE, 0, 0, 0)),
        0,
        "change 1 was applied"
    );
    let second = receipt_of(&kq, change(2, EVFILT_USER, EV_DELETE, 0, 0, 0));
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    assert_eq!(
        second,
        libc::ENOENT as i64,
        "change 2 must not have been processed"
    );
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    assert_eq!(second, 0, "macOS skips the receipt and processes change 2");
}

/// EBADF: a descriptor filter on a number that is not open, for EV_ADD and
/// EV_DELETE alike (the descriptor is checked before the knote lookup).
#[rstest]
#[case::read_add(EVFILT_READ, EV_ADD)]
#[case::write_add(EVFILT_WRITE, EV_ADD)]
#[case::read_delete(EVFILT_READ, EV_DELETE)]
#[case::write_enable(EVFILT_WRITE, EV_ENABLE)]
fn closed_descriptor_gives_ebadf(#[case] filter: Filter, #[case] flags: Flags) {
    let kq = new_kq();
    // 10_000 is far above anything the tests open (they are allocated
    // lowest-first), and below the fd limit.
    let fd = 10_000;
    assert!(!is_open(fd));
    assert_eq!(errno_of(&kq, fd_change(fd, filter, flags)), libc::EBADF);
    assert_eq!(
        receipt_of(&kq, fd_change(fd, filter, flags)),
        libc::EBADF as i64
    );
}

/// ENOENT: deleting, enabling, disabling (or a bare change to) a knote
/// that is not registered, on an open descriptor and for other filters.
#[rstest]
#[case::read_delete(EVFILT_READ, EV_DELETE)]
#[case::read_enable(EVFILT_READ, EV_ENABLE)]
#[case::read_disable(EVFILT_READ, EV_DISABLE)]
#[case::read_no_flags(EVFILT_READ, 0)]
#[case::write_delete(EVFILT_WRITE, EV_DELETE)]
#[case::timer_delete(EVFILT_TIMER, EV_DELETE)]
#[case::timer_enable(EVFILT_TIMER, EV_ENABLE)]
#[case::user_delete(EVFILT_USER, EV_DELETE)]
#[case::user_disable(EVFILT_USER, EV_DISABLE)]
#[case::signal_delete(EVFILT_SIGNAL, EV_DELETE)]
fn missing_knote_gives_enoent(#[case] filter: Filter, #[case] flags: Flags) {
    let kq = new_kq();
    let (a, _b) = socketpair();
    let ident = if filter == EVFILT_SIGNAL {
        libc::SIGUSR1 as usize
    } else if filter == EVFILT_READ || filter == EVFILT_WRITE {
        a.as_raw_fd() as usize
    } else {
        42
    };
    let ch = change(ident, filter, flags, 0, 0, 0);
    assert_eq!(errno_of(&kq, ch), libc::ENOENT, "sent {:?}", show(&[ch]));
    assert_eq!(
        receipt_of(&kq, ch),
        libc::ENOENT as i64,
        "sent {:?}",
        show(&[ch])
    );
}

/// ENOENT also after the knote was deleted.
#[test]
fn deleting_twice_gives_enoent() {
    let kq = new_kq();
    let (a, _b) = socketpair();
    let fd = a.as_raw_fd();
    add(&kq, &[fd_change(fd, EVFILT_READ, EV_ADD)]);
    add(&kq, &[fd_change(fd, EVFILT_READ, EV_DELETE)]);
    assert_eq!(
        errno_of(&kq, fd_change(fd, EVFILT_READ, EV_DELETE)),
        libc::ENOENT
    );
}

/// A filter number far outside the table: filters are negative numbers on
/// FreeBSD and macOS (and in `kq` on Linux) but unsigned on NetBSD.
#[cfg(not(target_os = "netbsd"))]
const FAR_OUTSIDE: Filter = -100;
#[cfg(target_os = "netbsd")]
const FAR_OUTSIDE: Filter = 100_000;

/// EINVAL for a filter number that does not exist.
#[rstest]
#[case::far_outside(FAR_OUTSIDE)]
#[case::positive(42)]
fn unknown_filter_gives_einval(#[case] filter: Filter) {
    let kq = new_kq();
    let ch = change(1, filter, EV_ADD, 0, 0, 0);
    assert_eq!(errno_of(&kq, ch), libc::EINVAL, "filter {filter}");
    assert_eq!(receipt_of(&kq, ch), libc::EINVAL as i64, "filter {filter}");
}

/// EINVAL for an invalid timeout: negative seconds or nanoseconds, or
/// nanoseconds of a whole second or more.
#[rstest]
#[case::negative_nsec(0, -1)]
#[case::nsec_too_big(0, 1_000_000_000)]
#[case::negative_sec(-1, 0)]
fn bad_timeout_gives_einval(#[case] sec: i64, #[case] nsec: i64) {
    let kq = new_kq();
    let ts = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let fd = kq.as_raw_fd();
    let rc = within(DEADLINE, "kevent with a bad timeout", move || {
        let mut out = [kevent_zeroed(); 1];
        // SAFETY: no changes; `out` has room for 1 event; `ts` is live.
        let rc = unsafe { kq::kevent(fd, std::ptr::null(), 0, out.as_mut_ptr(), 1, &ts) };
        (rc, std::io::Error::last_os_error().raw_os_error())
    });
    assert_eq!(rc, (-1, Some(libc::EINVAL)), "timeout {{{sec}, {nsec}}}");
    drop(kq);
}

/// EV_ADD on an existing (ident, filter) modifies it: the udata is
/// replaced and there is still only one knote (one event, one delete).
#[rstest]
#[case::read(EVFILT_READ)]
#[case::write(EVFILT_WRITE)]
fn adding_again_modifies_and_never_duplicates(#[case] filter: Filter) {
    let kq = new_kq();
    let (a, mut b) = socketpair();
    send(&mut b, b"x"); // makes `a` readable; it is writable anyway
    let fd = a.as_raw_fd() as usize;
    add(&kq, &[change(fd, filter, EV_ADD, 0, 0, 111)]);
    add(&kq, &[change(fd, filter, EV_ADD, 0, 0, 222)]);
    let evs = poll(&kq);
    let mine: Vec<_> = evs.iter().filter(|e| e.is(fd, filter)).collect();
    assert_eq!(mine.len(), 1, "one knote per (ident, filter), got {evs:?}");
    assert_eq!(
        mine[0].udata, 222,
        "udata must be the latest one, got {:?}",
        mine[0]
    );
    add(&kq, &[change(fd, filter, EV_DELETE, 0, 0, 0)]);
    assert_eq!(
        errno_of(&kq, change(fd, filter, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "one delete removes it"
    );
}

/// The same for a user event: re-adding replaces udata, keeps one knote.
#[test]
fn adding_a_user_event_again_replaces_udata() {
    let kq = new_kq();
    add(&kq, &[change(9, EVFILT_USER, EV_ADD, 0, 0, 1)]);
    add(&kq, &[change(9, EVFILT_USER, EV_ADD, 0, 0, 2)]);
    add(&kq, &[change(9, EVFILT_USER, 0, NOTE_TRIGGER, 0, 3)]);
    let evs = poll(&kq);
    assert_eq!(evs.len(), 1, "got {evs:?}");
    assert_eq!(
        evs[0].udata, 3,
        "every modification replaces udata, got {:?}",
        evs[0]
    );
}
