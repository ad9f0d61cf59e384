//! Knotes: what every registration keeps, the table of a queue's knotes,
//! the pending queue, and a knote's life once it is delivered.
//!
//! What a change does to a knote (FreeBSD's `kqueue_register`) is
//! `super::register`'s. This module keeps what the rules work on, and
//! the rules of `kqueue_scan` once a knote was delivered: EV_ONESHOT
//! deletes it, EV_DISPATCH disables it, and a level-triggered knote whose
//! condition kq must check itself goes back into the `pending` queue.
//! Each filter's own part lives in its module (`super::filter::*`),
//! reached through its `FilterOps`.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_void;

use super::abi::*;
use super::fd::FdEntry;
use super::filter::proc::Proc;
use super::filter::signal::Signal;
use super::filter::timer::Timer;
use super::filter::user::User;
use super::filter::vnode::{Inotify, Vnode};
use super::filter::FilterKind;
use super::os;
use super::queue::Out;

/// What every knote stores: the registration, as FreeBSD keeps it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Knote {
    /// Returned unchanged with every event; replaced by every modification.
    pub(crate) udata: usize,
    /// The registration's `data` (`kn_sdata`): a timer period, a low-water
    /// mark, EVFILT_USER's data.
    pub(crate) sdata: i64,
    /// The registration's `fflags` (`kn_sfflags`).
    pub(crate) sfflags: u32,
    /// Flags returned with events: the registration's minus the actions,
    /// plus what the filter implies (EV_CLEAR for timers).
    pub(crate) flags: Flags,
    pub(crate) disabled: bool,
    /// Waiting in `Table::pending`.
    pub(crate) queued: bool,
    /// EV_FORCEONESHOT: reported once at the next scan, whether its filter
    /// finds it true or not (FreeBSD `KNOTE_ACTIVATE`).
    pub(crate) forced: bool,
}

impl Knote {
    #[inline(always)]
    pub(crate) fn event(
        &self,
        ident: usize,
        filter: FilterKind,
        extra: Flags,
        fflags: u32,
        data: i64,
    ) -> kevent {
        kevent {
            ident,
            filter: filter.raw(),
            flags: self.flags | extra,
            fflags,
            data: data as Data,
            udata: self.udata as *mut c_void,
        }
    }
}

/// A knote by name: (filter, ident), the key FreeBSD uses too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KnoteRef {
    pub(crate) filter: FilterKind,
    pub(crate) ident: usize,
}

impl KnoteRef {
    pub(crate) fn new(filter: FilterKind, ident: usize) -> KnoteRef {
        KnoteRef { filter, ident }
    }
}

/// A queue's knotes, and what the translation holds for them.
pub(crate) struct Table {
    /// The kqueue descriptor: the caller's epoll set (not ours to close).
    pub(crate) epfd: RawFd,
    /// Our eventfd in the epoll set, readable exactly while `pending` is
    /// not empty, so a blocked kevent() (in any thread) or an outer kqueue
    /// notices knotes that are ready in userspace.
    pub(crate) wake: OwnedFd,
    pub(crate) wake_armed: bool,
    /// Flips on every kevent() call: when set, epoll's events are taken
    /// before the userspace queue (fairness; see `Kq::scan`).
    pub(crate) epoll_turn: bool,
    /// Counts the scan's rounds of epoll_wait chunks, so a descriptor
    /// handed out twice in one round is recognised (`first_sight`).
    pub(crate) sweep: u32,
    /// Knotes to look at in userspace, in order (each at most once).
    pub(crate) pending: VecDeque<KnoteRef>,
    /// EVFILT_READ and EVFILT_WRITE, indexed by descriptor number (numbers
    /// are small and dense).
    pub(crate) fds: Vec<FdEntry>,
    /// EVFILT_VNODE, by descriptor number.
    pub(crate) vnodes: HashMap<RawFd, Vnode>,
    /// The queue's inotify instance, made for the first knote that needs
    /// it (a vnode, or a regular file read).
    pub(crate) inotify: Option<Inotify>,
    pub(crate) timers: HashMap<usize, Timer>,
    pub(crate) timer_by_fd: HashMap<RawFd, usize>,
    pub(crate) signals: HashMap<usize, Signal>,
    pub(crate) signal_by_fd: HashMap<RawFd, usize>,
    pub(crate) procs: HashMap<usize, Proc>,
    pub(crate) proc_by_fd: HashMap<RawFd, usize>,
    pub(crate) users: HashMap<usize, User>,
}

impl Table {
    pub(crate) fn new(epfd: RawFd, wake: OwnedFd) -> Table {
        Table {
            epfd,
            wake,
            wake_armed: false,
            epoll_turn: false,
            sweep: 0,
            pending: VecDeque::new(),
            fds: Vec::new(),
            vnodes: HashMap::new(),
            inotify: None,
            timers: HashMap::new(),
            timer_by_fd: HashMap::new(),
            signals: HashMap::new(),
            signal_by_fd: HashMap::new(),
            procs: HashMap::new(),
            proc_by_fd: HashMap::new(),
            users: HashMap::new(),
        }
    }

    pub(crate) fn knote_mut(&mut self, r: KnoteRef) -> Option<&mut Knote> {
        match r.filter {
            FilterKind::Read | FilterKind::Write => {
                self.fds.get_mut(r.ident)?.knote(r.filter).as_mut()
            }
            FilterKind::Vnode => self
                .vnodes
                .get_mut(&(r.ident as RawFd))
                .map(|v| &mut v.knote),
            FilterKind::Proc => self.procs.get_mut(&r.ident).map(|p| &mut p.knote),
            FilterKind::Signal => self.signals.get_mut(&r.ident).map(|s| &mut s.knote),
            FilterKind::Timer => self.timers.get_mut(&r.ident).map(|t| &mut t.knote),
            FilterKind::User => self.users.get_mut(&r.ident).map(|u| &mut u.knote),
        }
    }

    /// Deletes a knote known to exist (EV_ONESHOT after delivery).
    fn delete(&mut self, r: KnoteRef) {
        self.unqueue(r);
        (r.filter.ops().detach)(self, r);
    }

    /// Disables a knote (EV_DISPATCH after delivery): its source of events
    /// stops waking the queue until EV_ENABLE; what happens meanwhile is
    /// kept for EV_ENABLE.
    fn disable(&mut self, r: KnoteRef) {
        if let Some(k) = self.knote_mut(r) {
            k.disabled = true;
        }
        self.unqueue(r);
        let _ = (r.filter.ops().arm)(self, r, None);
    }

    // --- the pending queue --------------------------------------------------

    /// Puts an enabled knote in the pending queue (once).
    pub(crate) fn queue(&mut self, r: KnoteRef) {
        if let Some(k) = self.knote_mut(r) {
            if !k.disabled && !k.queued {
                k.queued = true;
                self.pending.push_back(r);
            }
        }
    }

    pub(crate) fn unqueue(&mut self, r: KnoteRef) {
        if let Some(k) = self.knote_mut(r) {
            if !std::mem::take(&mut k.queued) {
                return;
            }
        }
        self.pending.retain(|p| *p != r);
    }

    /// Keeps the wake eventfd readable exactly while knotes are pending, so
    /// waiters (in this or another thread, or an outer kqueue) notice them.
    pub(crate) fn sync_wake(&mut self) {
        let want = !self.pending.is_empty();
        if want == self.wake_armed {
            return;
        }
        if want {
            os::eventfd_signal(self.wake.as_raw_fd());
        } else {
            os::read_counter(self.wake.as_raw_fd());
        }
        self.wake_armed = want;
    }

    /// Delivers the knotes waiting in userspace, each at most once per call.
    pub(crate) fn deliver_pending(&mut self, out: &mut Out) {
        for _ in 0..self.pending.len() {
            if !out.room() {
                return;
            }
            let Some(r) = self.pending.pop_front() else {
                return;
            };
            match self.knote_mut(r) {
                Some(k) => k.queued = false,
                None => continue,
            }
            (r.filter.ops().deliver)(self, r, out);
            self.deliver_forced(r, out);
        }
    }

    /// A knote EV_FORCEONESHOT activated that its filter did not report
    /// (nothing true): FreeBSD's scan copies a one-shot knote out without
    /// running the filter, so it is reported anyway, with what it holds
    /// (no notes, no data), and deleted.
    fn deliver_forced(&mut self, r: KnoteRef, out: &mut Out) {
        let Some(k) = self.knote_mut(r).copied() else {
            return; // delivered (and deleted as one-shot), or dropped
        };
        if !k.forced || k.queued || k.disabled || !out.room() {
            return;
        }
        out.push(k.event(r.ident, r.filter, 0, 0, 0));
        self.delete(r);
    }

    /// After a knote was delivered: EV_ONESHOT deletes it, EV_DISPATCH
    /// disables it, and a level knote kq watches itself (`requeue`) goes
    /// back in the queue to be looked at again on the next call.
    pub(crate) fn after_delivery(&mut self, r: KnoteRef, flags: Flags, requeue: bool) {
        if flags & EV_ONESHOT != 0 {
            self.delete(r);
        } else if flags & EV_DISPATCH != 0 {
            self.disable(r);
        } else if requeue {
            self.queue(r);
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // Closing a kqueue removes its knotes: what they hold outside this
        // table (process-wide signal state, shared socket errors) is
        // released as EV_DELETE would. The descriptors are OwnedFds and
        // close themselves.
        let signals: Vec<usize> = self.signals.keys().copied().collect();
        for ident in signals {
            self.delete_signal(ident);
        }
        for e in &mut self.fds {
            e.release();
        }
    }
}
