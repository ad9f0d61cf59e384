//! EV_KEEPUDATA (kqueue(2), FreeBSD 14): a change to an existing knote that
//! carries it leaves the knote's udata as it was, so code that triggers or
//! re-enables a knote need not know what it was registered with. Without
//! it every change that reaches a knote replaces its udata.
#![cfg(any(target_os = "linux", target_os = "freebsd"))]

mod common;

use std::os::fd::AsRawFd;

use common::*;

/// `EV_SET(&kev, id, EVFILT_USER, EV_KEEPUDATA, NOTE_TRIGGER, 0, NULL)`
/// fires the knote, which still reports the udata it was added with.
#[test]
fn a_trigger_with_ev_keepudata_keeps_the_udata() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 11)]);
    add(
        &kq,
        &[change(1, EVFILT_USER, EV_KEEPUDATA, NOTE_TRIGGER, 0, 0)],
    );
    let ev = wait_for(&kq, 1, EVFILT_USER);
    assert_eq!(
        ev.udata, 11,
        "added with udata 11, triggered with EV_KEEPUDATA and 0: arrived {ev:?}"
    );
    assert!(
        !ev.has(EV_KEEPUDATA),
        "EV_KEEPUDATA is not stored: arrived {ev:?}"
    );
    add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 12)]);
    let ev = wait_for(&kq, 1, EVFILT_USER);
    assert_eq!(
        ev.udata, 12,
        "triggered without EV_KEEPUDATA, udata 12: arrived {ev:?}"
    );
}

/// `EV_ENABLE | EV_KEEPUDATA` on a disabled READ knote re-enables it with
/// its old udata.
#[test]
fn enable_with_ev_keepudata_keeps_the_udata() {
    let kq = new_kq();
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd() as usize;
    add(
        &kq,
        &[change(fd, EVFILT_READ, EV_ADD | EV_DISABLE, 0, 0, 21)],
    );
    send(&mut b, b"hi");
    add(
        &kq,
        &[change(fd, EVFILT_READ, EV_ENABLE | EV_KEEPUDATA, 0, 0, 0)],
    );
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        (ev.udata, ev.data),
        (21, 2),
        "added disabled with udata 21, 2 bytes sent, EV_ENABLE | EV_KEEPUDATA: arrived {ev:?}"
    );
}
