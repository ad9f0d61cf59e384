//! The filters, one module each: what FreeBSD's `filt_*` functions compute,
//! on top of what Linux can tell.
//!
//! | filter | module | Linux source of events |
//! |---|---|---|
//! | EVFILT_READ | [`read`] | epoll (`EPOLLIN`, `EPOLLRDHUP`); inotify for regular files |
//! | EVFILT_WRITE | [`write`] | epoll (`EPOLLOUT`) |
//! | EVFILT_VNODE | [`vnode`] | inotify on `/proc/self/fd/N` |
//! | EVFILT_PROC | [`proc`] | a pidfd per process |
//! | EVFILT_SIGNAL | [`signal`] | one signalfd per signal for the process |
//! | EVFILT_TIMER | [`timer`] | a timerfd per timer |
//! | EVFILT_USER | [`user`] | nothing: a flag, and the queue's wake-up eventfd |
//!
//! Adding a filter: a variant of [`FilterKind`], its module with
//! `register_*` (the change), `deliver_*` (the event), `delete_*` and
//! `arm_*` (EV_DISABLE / EV_ENABLE), then one arm in each `match` on
//! `FilterKind` (they are exhaustive, so the compiler lists them).

pub(crate) mod proc;
pub(crate) mod read;
pub(crate) mod signal;
pub(crate) mod timer;
pub(crate) mod user;
pub(crate) mod vnode;
pub(crate) mod write;

use std::io;

use super::abi::*;
use super::os;

/// Which filter a change or a knote belongs to: the `filter` field of a
/// `struct kevent`, checked once when a change comes in, so no later code
/// has to guess what an unknown number means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub(crate) enum FilterKind {
    Read = EVFILT_READ,
    Write = EVFILT_WRITE,
    Vnode = EVFILT_VNODE,
    Proc = EVFILT_PROC,
    Signal = EVFILT_SIGNAL,
    Timer = EVFILT_TIMER,
    User = EVFILT_USER,
}

impl FilterKind {
    /// The filter a `struct kevent` names; EINVAL for a filter that does
    /// not exist here (FreeBSD: EINVAL for an unknown filter).
    pub(crate) fn from_raw(filter: Filter) -> io::Result<FilterKind> {
        Ok(match filter {
            EVFILT_READ => FilterKind::Read,
            EVFILT_WRITE => FilterKind::Write,
            EVFILT_VNODE => FilterKind::Vnode,
            EVFILT_PROC => FilterKind::Proc,
            EVFILT_SIGNAL => FilterKind::Signal,
            EVFILT_TIMER => FilterKind::Timer,
            EVFILT_USER => FilterKind::User,
            _ => return Err(os::err(libc::EINVAL)),
        })
    }

    /// The number C sees in `struct kevent.filter`.
    #[inline(always)]
    pub(crate) fn raw(self) -> Filter {
        self as Filter
    }
}
