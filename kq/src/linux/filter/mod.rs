//! The filters, one module each: what FreeBSD's `filt_*` functions compute,
//! on top of what Linux can tell.
//!
//! | filter | module | Linux source of events |
//! |---|---|---|
//! | EVFILT_READ | [`read`] | epoll (`EPOLLIN`, `EPOLLRDHUP`); inotify for regular files |
//! | EVFILT_READ on a kqueue | [`kqueue`] | epoll (the inner epoll set); `data` from its knotes' sources |
//! | EVFILT_WRITE | [`write`] | epoll (`EPOLLOUT`) |
//! | EVFILT_VNODE | [`vnode`] | inotify on `/proc/self/fd/N` |
//! | EVFILT_PROC | [`proc`] | a pidfd per process |
//! | EVFILT_SIGNAL | [`signal`] | one signalfd per signal for the process |
//! | EVFILT_TIMER | [`timer`] | a timerfd per timer |
//! | EVFILT_USER | [`user`] | nothing: a flag, and the queue's wake-up eventfd |
//!
//! Each filter hands the register rules (`super::register`) a
//! [`FilterOps`], as each FreeBSD filter hands `kqueue_register` its
//! `struct filterops`: the parts that are its own (attach, touch, detach,
//! arm, deliver), never the rules themselves. EVFILT_READ and
//! EVFILT_WRITE share one, `super::fd`'s: their knotes share a
//! descriptor's entry.
//!
//! Adding a filter: a variant of [`FilterKind`], its module with the hooks
//! and a `pub(crate) static OPS: FilterOps`, one arm in
//! [`FilterKind::ops`] and in `FilterKind::from_raw`, and one in
//! `Table::knote_mut` (the matches are exhaustive, so the compiler lists
//! them); if its Linux source is a descriptor in the epoll set, a `Token`
//! for the scan (`super::queue`).

pub(crate) mod kqueue;
pub(crate) mod proc;
pub(crate) mod read;
pub(crate) mod signal;
pub(crate) mod timer;
pub(crate) mod user;
pub(crate) mod vnode;
pub(crate) mod write;

use std::io;

use super::abi::*;
use super::knote::{Knote, KnoteRef, Table};
use super::os;
use super::queue::Out;

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

impl FilterKind {
    /// The filter's hooks (FreeBSD `kqueue_fo_find`).
    pub(crate) fn ops(self) -> &'static FilterOps {
        match self {
            FilterKind::Read | FilterKind::Write => &super::fd::OPS,
            FilterKind::Vnode => &vnode::OPS,
            FilterKind::Proc => &proc::OPS,
            FilterKind::Signal => &signal::OPS,
            FilterKind::Timer => &timer::OPS,
            FilterKind::User => &user::OPS,
        }
    }
}

/// `f_touch(EVENT_REGISTER)`: the table, the knote, the proposed
/// registration, the change.
pub(crate) type Touch = fn(&mut Table, KnoteRef, &mut Knote, &mut kevent) -> io::Result<()>;

/// What one filter supplies to the register rules: FreeBSD's `struct
/// filterops` (`f_isfd`, `f_attach`, `f_detach`, `f_event`, `f_touch`),
/// shaped by what Linux needs. Every hook gets the knote by name; the
/// rules themselves (ENOENT, EV_DELETE, EV_ENABLE/EV_DISABLE, udata and
/// EV_KEEPUDATA, the stored flags, EV_FORCEONESHOT, EV_ONESHOT/EV_DISPATCH
/// after delivery) are applied by `Table::register` and
/// `Table::after_delivery`, never here.
pub(crate) struct FilterOps {
    /// Checks the change's ident before its knote is looked up, so even an
    /// EV_DELETE of a bad one fails with this error: FreeBSD's `f_isfd`
    /// filters `fget()` the descriptor (EBADF), and Linux's signalfd cannot
    /// watch every number (EINVAL). Returns the descriptor's `fstat`, for
    /// `attach`, when the ident is one.
    pub(crate) check_ident: fn(&mut Table, &kevent) -> io::Result<Option<libc::stat>>,
    /// `f_attach`: sets up the Linux source for a new knote and stores the
    /// knote (which it may still amend: FreeBSD's attach adds the flags the
    /// filter implies, such as EV_CLEAR for timers). On an error nothing
    /// is stored.
    pub(crate) attach:
        fn(&mut Table, KnoteRef, Knote, &kevent, Option<&libc::stat>) -> io::Result<()>,
    /// `f_touch` for `EVENT_REGISTER`, for the filters that have one (timer,
    /// user; proc and vnode too, not FreeBSD's: proc refuses the notes Linux
    /// cannot report, vnode widens its inotify watch): applies a change to an existing knote's parameters in
    /// `proposed` (the stored knote with EV_ENABLE/EV_DISABLE and udata
    /// already applied). An error leaves the knote as it was. Without it,
    /// the change's `fflags` and `data` replace `sfflags` and `sdata`.
    pub(crate) touch: Option<Touch>,
    /// Runs before a change reaches an existing knote (EV_DELETE aside):
    /// records what already happened under the parameters in force until
    /// now. FreeBSD's `f_event` records an event in the knote when it
    /// happens (`kn_fflags |= hint`, judged by `kn_sfflags` then), so a
    /// later change of `sfflags`, even EV_ENABLE's 0, cannot lose it; Linux
    /// may still hold it unread (an inotify event, an exited pidfd).
    pub(crate) catch_up: fn(&mut Table, KnoteRef),
    /// `f_detach` and `knote_drop`: forgets the knote and its Linux source.
    pub(crate) detach: fn(&mut Table, KnoteRef),
    /// After a knote was added, changed or disabled (`change` is None after
    /// an EV_DISPATCH delivery): brings its Linux source in line with it
    /// (in the epoll set exactly while enabled) and queues it if it is
    /// already true, as FreeBSD runs `f_event` at the end of
    /// `kqueue_register`.
    pub(crate) arm: fn(&mut Table, KnoteRef, Option<&kevent>) -> io::Result<()>,
    /// `f_event` plus the copy-out of `kqueue_scan`: reports the knote, taken
    /// from the pending queue, if it is true (room permitting), then
    /// `Table::after_delivery`.
    pub(crate) deliver: fn(&mut Table, KnoteRef, &mut Out),
}

/// A `catch_up` for filters whose Linux source holds nothing the old
/// parameters would have judged (their events are counted, not filtered by
/// `sfflags`, or looked at again at every delivery as FreeBSD does).
pub(crate) fn nothing_to_catch_up(_: &mut Table, _: KnoteRef) {}

/// A `check_ident` for filters whose ident is any number.
pub(crate) fn any_ident(_: &mut Table, _: &kevent) -> io::Result<Option<libc::stat>> {
    Ok(None)
}
