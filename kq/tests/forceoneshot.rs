//! EV_FORCEONESHOT (FreeBSD's kqueue_register, `KNOTE_ACTIVATE`): a change
//! carrying it makes an existing knote one-shot and activates it, so the
//! next kevent() reports it once, whether its filter finds it true or not,
//! and the knote is then gone. When a knote is created the flag is
//! ignored, and it is never returned.
#![cfg(any(target_os = "linux", target_os = "freebsd"))]

mod common;

use std::os::fd::AsRawFd;

use common::*;

/// A READ knote on a socket with nothing to read, forced: reported once
/// (EV_ONESHOT set), then deleted.
#[test]
fn forces_one_report_of_a_knote_that_is_not_true() {
    let kq = new_kq();
    let (a, _b) = socketpair();
    let fd = a.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 31)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "nothing to read");
    add(&kq, &[change(fd, EVFILT_READ, EV_FORCEONESHOT, 0, 0, 32)]);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert!(
        ev.has(EV_ONESHOT) && !ev.has(EV_FORCEONESHOT) && ev.udata == 32,
        "EV_FORCEONESHOT with udata 32 on a quiet READ knote: arrived {ev:?}"
    );
    assert_eq!(
        errno_of(&kq, fd_change(a.as_raw_fd(), EVFILT_READ, EV_DELETE)),
        libc::ENOENT,
        "the forced one-shot knote is gone once reported"
    );
}

/// A forced knote that is true (a triggered EVFILT_USER knote) is reported
/// once, not again on the next call.
#[test]
fn a_forced_true_knote_is_reported_once() {
    let kq = new_kq();
    add(&kq, &[change(2, EVFILT_USER, EV_ADD, 0, 0, 0)]);
    add(&kq, &[change(2, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    add(&kq, &[change(2, EVFILT_USER, EV_FORCEONESHOT, 0, 0, 0)]);
    let got = wait(&kq, DEADLINE);
    assert!(
        got.len() == 1 && got[0].is(2, EVFILT_USER) && got[0].has(EV_ONESHOT),
        "a triggered level user knote, forced: arrived {got:?}"
    );
    assert_no_events(&kq, QUIET, "reported once, then deleted");
}

/// A disabled knote that is forced waits for EV_ENABLE, then is reported.
#[test]
fn a_forced_disabled_knote_is_reported_when_enabled() {
    let kq = new_kq();
    add(&kq, &[change(3, EVFILT_USER, EV_ADD | EV_DISABLE, 0, 0, 0)]);
    add(&kq, &[change(3, EVFILT_USER, EV_FORCEONESHOT, 0, 0, 0)]);
    assert_quiet(&kq, 3, EVFILT_USER, QUIET, "forced while disabled");
    add(&kq, &[change(3, EVFILT_USER, EV_ENABLE, 0, 0, 0)]);
    let ev = wait_for(&kq, 3, EVFILT_USER);
    assert!(ev.has(EV_ONESHOT), "forced, then enabled: arrived {ev:?}");
}

/// EV_ADD | EV_FORCEONESHOT of a new knote makes a plain knote: not
/// one-shot, not reported until its filter is true.
#[test]
fn ev_forceoneshot_is_ignored_when_a_knote_is_created() {
    let kq = new_kq();
    add(
        &kq,
        &[change(4, EVFILT_USER, EV_ADD | EV_FORCEONESHOT, 0, 0, 0)],
    );
    assert_quiet(&kq, 4, EVFILT_USER, QUIET, "created with EV_FORCEONESHOT");
    add(&kq, &[change(4, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    let ev = wait_for(&kq, 4, EVFILT_USER);
    assert!(
        !ev.has(EV_ONESHOT) && !ev.has(EV_FORCEONESHOT),
        "EV_ADD | EV_FORCEONESHOT, then a trigger: arrived {ev:?}"
    );
}
