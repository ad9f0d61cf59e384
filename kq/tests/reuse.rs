//! A kqueue watched by another kqueue, closed, and replaced by a new kqueue
//! under the same number: EV_ADD on the number watches the new queue
//! (kqueue(2): close() removes the kevents of a descriptor). On Linux every
//! kqueue is an epoll descriptor and all of them share one inode, so only
//! epoll's own registration can tell the old queue from the new one.
//!
//! Its own test binary with a single test: descriptor numbers are handed
//! out lowest-first, and no other test may take the number in between.

mod common;

use std::os::fd::AsRawFd;

use common::*;

/// EV_ADD on a kqueue's number after that kqueue was closed and a new one
/// took the number watches the new kqueue, with the new udata.
#[test]
fn a_kqueue_replaced_on_the_same_number_is_watched() {
    let outer = new_kq();
    let inner1 = new_kq();
    let n = inner1.as_raw_fd();
    add(&outer, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 3)]);
    drop(inner1);
    let inner2 = new_kq();
    assert_eq!(
        inner2.as_raw_fd(),
        n,
        "the new kqueue should take the lowest free number, {n}"
    );
    add(&outer, &[change(n as usize, EVFILT_READ, EV_ADD, 0, 0, 4)]);
    add(
        &inner2,
        &[
            change(7, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(7, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    let ev = wait_for(&outer, n as usize, EVFILT_READ);
    assert_eq!(
        ev.udata, 4,
        "the new inner kqueue has an event pending, EV_ADD gave udata 4: got {ev:?}"
    );
}
