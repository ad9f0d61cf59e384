//! kqueue(2) on Linux: a userspace translation onto epoll, timerfd,
//! signalfd, eventfd, inotify and pidfds.
//!
//! # Shape
//!
//! A kqueue *is* an epoll descriptor: `kqueue()` returns the epoll fd itself,
//! so the queue can be polled, watched by another kqueue, and closed with
//! `close()`. Beside it, this module keeps a table of knotes per queue, keyed
//! by (ident, filter) exactly as the BSD kernel does:
//!
//! | kqueue                         | here                                              |
//! |--------------------------------|---------------------------------------------------|
//! | EVFILT_READ / EVFILT_WRITE     | one epoll registration per descriptor, shared by both knotes (epoll allows one) |
//! | level-triggered (default)      | epoll level-triggered                             |
//! | EV_CLEAR                       | `EPOLLET`                                         |
//! | EV_ONESHOT / EV_DISPATCH       | delete / disable the knote as it is delivered     |
//! | EV_DISABLE / EV_ENABLE         | drop / restore the interest with `EPOLL_CTL_MOD`; the kernel re-checks on enable |
//! | `data` of a stream or pipe     | `ioctl(FIONREAD)`, one call per returned event    |
//! | `data` of a TCP listener       | `TCP_INFO.tcpi_unacked`: the accept queue length  |
//! | `data` of EVFILT_WRITE         | `SO_SNDBUF` (read at EV_ADD) minus `ioctl(TIOCOUTQ)` |
//! | `data` of a watched kqueue     | its pending knotes, and its knotes' sources polled at once (`filter::kqueue`) |
//! | EVFILT_READ on a regular file  | size minus offset (`fstat`, `lseek`), re-checked when inotify says the file changed |
//! | EVFILT_VNODE                   | an inotify watch on `/proc/self/fd/N`, one inotify descriptor per queue |
//! | EVFILT_PROC                    | a pidfd per process; the wait status from `waitid(WNOWAIT)` |
//! | EVFILT_TIMER                   | a timerfd per timer; `data` = expirations read from it |
//! | EVFILT_SIGNAL                  | a signalfd per signal (the signal is blocked in the registering thread) |
//! | EVFILT_USER                    | a flag in the table, plus one eventfd per queue that wakes `epoll_wait` |
//!
//! Knotes that are ready without the kernel's help (triggered EVFILT_USER
//! knotes, regular files, which epoll refuses, and level knotes sharing an
//! edge-triggered registration) wait in a `pending` queue; while it is not
//! empty the queue's eventfd stays readable, so a blocked `kevent()` in
//! another thread wakes up and an outer kqueue sees this one as readable.
//! Before kq reports such a knote it checks that its descriptor number
//! still names the same file (epoll, or `fstat`), because close() must end
//! a knote and Linux tells nobody about a close().
//!
//! The code is split the way FreeBSD's kern_event.c is: `register` is
//! `kqueue_register`, FreeBSD's rules for what one change does to a knote
//! (ENOENT, EV_ADD, EV_DELETE, EV_ENABLE/EV_DISABLE, udata, the stored
//! flags), written once for every filter; `knote` is the knote table, the
//! pending queue and what `kqueue_scan` does once a knote is delivered
//! (EV_ONESHOT, EV_DISPATCH); `queue` is the queue, the registry of
//! queues and one call's scan. Each filter supplies only its own part, a
//! `FilterOps` like FreeBSD's `struct filterops` (attach, touch, detach,
//! arm, deliver): descriptor knotes in `fd`, one module per filter under
//! `filter`. Every system call is a small wrapper in `os`.
//!
//! In steady state a `kevent()` with an empty changelist is one `epoll_wait`
//! plus one cheap syscall per returned event (for `data`); nothing is
//! allocated per call, and `epoll_ctl` runs only when something changed.

pub(crate) mod abi;
mod fd;
mod filter;
mod knote;
mod os;
mod queue;
mod register;

use std::io;
use std::time::Duration;

use abi::*;
use libc::c_int;
use queue::{Kq, Out};

// ---------------------------------------------------------------------------
// The C entry points
// ---------------------------------------------------------------------------

/// `kqueue()`: create a new kernel event queue and return its descriptor,
/// or -1 with `errno` set.
///
/// # Safety
/// Always safe to call; `unsafe` only to match the C declaration.
pub unsafe fn kqueue() -> c_int {
    match Kq::create() {
        Ok(fd) => fd,
        Err(e) => fail(&e),
    }
}

/// `kevent()`: apply `nchanges` changes from `changelist` in order, then
/// return up to `nevents` events in `eventlist`, waiting at most `timeout`
/// (NULL: for ever). Returns the number of entries written, or -1 with
/// `errno` set, exactly as kqueue(2) describes.
///
/// # Safety
/// `changelist` must be valid for reading `nchanges` entries and
/// `eventlist` for writing `nevents` entries (they may be the same array),
/// unless it is null: then nothing is written, and an event to report is
/// EFAULT;
/// `timeout` must be null or point to a valid `timespec`.
pub unsafe fn kevent(
    kq: c_int,
    changelist: *const kevent,
    nchanges: c_int,
    eventlist: *mut kevent,
    nevents: c_int,
    timeout: *const timespec,
) -> c_int {
    if nevents < 0 {
        return fail(&os::err(libc::EINVAL));
    }
    // FreeBSD's loop over the changelist runs while `nchanges > 0`: a
    // negative count is no changes.
    let nchanges = nchanges.max(0);
    if nchanges > 0 && changelist.is_null() {
        return fail(&os::err(libc::EFAULT)); // FreeBSD's copyin fails
    }
    let Some(q) = Kq::lookup(kq) else {
        return fail(&os::err(libc::EBADF));
    };
    // A null eventlist with room is not an error in itself on FreeBSD:
    // only copying an entry out to it fails. Its EV_ERROR entries are
    // counted and dropped (FreeBSD ignores that copyout's error), and an
    // event to report is EFAULT.
    let mut out = if eventlist.is_null() {
        Out::discarding(nevents as usize)
    } else {
        // SAFETY: the caller guarantees `eventlist` holds `nevents` entries.
        unsafe { Out::new(eventlist, nevents as usize) }
    };

    // 1. The changelist, in order, before anything is read from the queue.
    let mut nerrors = 0;
    if nchanges > 0 {
        // The number may have been closed with a raw close() and reused by
        // another file: then it is no kqueue, and every change is EBADF.
        if !q.alive() {
            Kq::forget(kq, &q);
            return fail(&os::err(libc::EBADF));
        }
        let mut table = q.lock();
        for i in 0..nchanges as usize {
            // SAFETY: the caller guarantees `changelist` holds `nchanges`
            // entries. The change is copied out before any output slot
            // (always at an index <= i) is written, so one array may serve
            // as both lists.
            let mut change = unsafe { changelist.add(i).read() };
            change.flags &= !EV_SYSFLAGS;
            if change.filter == 0 {
                continue; // FreeBSD skips empty entries
            }
            let result = table.register(&mut change);
            if result.is_err() || change.flags & EV_RECEIPT != 0 {
                let error = result.err().map_or(0, |e| os::errno_of(&e));
                if !out.room() {
                    // No room to report it: stop here; the remaining
                    // changes are not processed (kqueue(2), EV_RECEIPT).
                    table.sync_wake();
                    drop(table);
                    return if error != 0 { fail(&os::err(error)) } else { 0 };
                }
                change.flags = EV_ERROR;
                change.data = error as Data;
                out.push(change);
                nerrors += 1;
            }
        }
        table.sync_wake();
    }
    // 2. Any EV_ERROR entry written: return them without waiting.
    if nerrors > 0 {
        return nerrors;
    }
    if nevents == 0 {
        return 0;
    }
    // 3. Wait for events.
    let timeout = if timeout.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees a non-null `timeout` is valid.
        let ts = unsafe { timeout.read() };
        if ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1_000_000_000 {
            return fail(&os::err(libc::EINVAL));
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    if eventlist.is_null() {
        // Nowhere to copy an event to: collect at most one, to learn
        // whether there was one to copy out (FreeBSD's copyout fails, and
        // the event is spent, as there).
        let mut one = [crate::kevent_zeroed()];
        // SAFETY: `one` holds one entry.
        let mut scratch = unsafe { Out::new(one.as_mut_ptr(), 1) };
        return match q.scan(&mut scratch, timeout) {
            Ok(()) if scratch.n == 0 => 0,
            Ok(()) => fail(&os::err(libc::EFAULT)),
            Err(e) => fail(&e),
        };
    }
    match q.scan(&mut out, timeout) {
        Ok(()) => out.n as c_int,
        Err(e) => {
            if os::errno_of(&e) == libc::EBADF {
                Kq::forget(kq, &q);
            }
            fail(&e)
        }
    }
}

/// Drops this crate's bookkeeping for a kqueue that is about to be closed
/// (the safe layer calls it from `Drop`). Closing a raw kqueue descriptor
/// with `close()` is also fine: the bookkeeping is then freed the next time
/// `kqueue()` or `kevent()` notices the descriptor is gone.
pub(crate) fn forget(kq: c_int) {
    if let Some(q) = Kq::lookup(kq) {
        Kq::forget(kq, &q);
    }
}

/// Returns -1 with `errno` set to the error's, as a C call fails.
fn fail(e: &io::Error) -> c_int {
    os::set_errno(os::errno_of(e));
    -1
}
