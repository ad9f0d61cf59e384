//! EVFILT_SIGNAL (FreeBSD `filt_signal`): `data` counts the deliveries
//! since the last kevent().
//!
//! signalfd sees only blocked signals, so registering a signal blocks it in
//! the calling thread. A signalfd read consumes the signal, and kqueue(2)
//! records every delivery in every knote for it, so all knotes for one
//! signal, in any kqueue, share one signalfd: whoever reads it counts the
//! delivery for every knote and wakes the other kqueues through each
//! knote's own "mail" eventfd (`take_signals`).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

use libc::c_int;

use crate::linux::abi::*;
use crate::linux::filter::{nothing_to_catch_up, FilterKind, FilterOps};
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::os;
use crate::linux::queue::{set_registered, Out, Token};

pub(crate) struct Signal {
    /// The process-wide signalfd of this signal (owned by its
    /// `SignalState`), shared by every knote for it in every kqueue.
    pub(crate) sfd: RawFd,
    /// This knote's own eventfd: another kqueue that read the signal from
    /// `sfd` writes it, so this queue wakes and reports its share.
    pub(crate) mail: OwnedFd,
    /// `sfd` and `mail` are in the epoll set.
    pub(crate) registered: bool,
    pub(crate) knote: Knote,
}

/// Per signal, for the whole process: the one signalfd every knote for it
/// reads, each knote's mail eventfd with the deliveries counted for it and
/// not yet reported, and whether `kq` blocked the signal.
struct SignalState {
    sfd: OwnedFd,
    blocked_by_us: bool,
    /// (mail eventfd, deliveries not yet reported) per knote.
    watchers: Vec<(RawFd, u64)>,
}

/// The signals some knote watches, by number.
fn signals() -> MutexGuard<'static, BTreeMap<c_int, SignalState>> {
    static SIGNALS: Mutex<BTreeMap<c_int, SignalState>> = Mutex::new(BTreeMap::new());
    SIGNALS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A signal number a knote can watch: 1 to SIGRTMAX, except SIGKILL and
/// SIGSTOP, which no signalfd can catch (EINVAL otherwise).
fn signal_number(ident: usize) -> io::Result<c_int> {
    match c_int::try_from(ident) {
        Ok(s) if (1..=os::sigrtmax()).contains(&s) && s != libc::SIGKILL && s != libc::SIGSTOP => {
            Ok(s)
        }
        _ => Err(os::err(libc::EINVAL)),
    }
}

/// A new knote for `signo`: blocks the signal in this thread, opens the
/// shared signalfd if it is the first, and gives the knote a mail eventfd.
/// Returns (signalfd, mail).
fn watch_signal(signo: c_int) -> io::Result<(RawFd, OwnedFd)> {
    let mail = os::eventfd()?;
    let mut all = signals();
    let was_blocked = os::block_signal(signo)?;
    let st = match all.entry(signo) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => match os::signalfd(signo) {
            Ok(sfd) => v.insert(SignalState {
                sfd,
                blocked_by_us: false,
                watchers: Vec::new(),
            }),
            Err(e) => {
                if !was_blocked {
                    os::unblock_signal(signo);
                }
                return Err(e);
            }
        },
    };
    st.blocked_by_us |= !was_blocked;
    st.watchers.push((mail.as_raw_fd(), 0));
    Ok((st.sfd.as_raw_fd(), mail))
}

/// A knote for `signo` goes (EV_DELETE, or its kqueue closed). The last one
/// drops the signals still waiting (they were meant for kqueues), closes
/// the signalfd and unblocks the signal if `kq` blocked it. The knote's
/// mail is no longer written once this returns.
fn unwatch_signal(signo: c_int, mail: RawFd) {
    let mut all = signals();
    let Some(st) = all.get_mut(&signo) else {
        return;
    };
    st.watchers.retain(|&(m, _)| m != mail);
    if st.watchers.is_empty() {
        os::drain_signalfd(st.sfd.as_raw_fd());
        let blocked_by_us = st.blocked_by_us;
        all.remove(&signo); // closes the signalfd
        if blocked_by_us {
            os::unblock_signal(signo);
        }
    }
}

/// The deliveries of `signo` to report for the knote with mail `mail`:
/// reads what is waiting in the shared signalfd, counts it for every
/// knote (waking the others' kqueues through their mail), and takes this
/// knote's count.
fn take_signals(signo: c_int, mail: RawFd) -> u64 {
    let mut all = signals();
    let Some(st) = all.get_mut(&signo) else {
        return 0;
    };
    let arrived = os::drain_signalfd(st.sfd.as_raw_fd());
    let mut mine = 0;
    for (m, count) in &mut st.watchers {
        *count += arrived;
        if *m == mail {
            // Clear our mail (another kqueue may have written it); done
            // under the lock, with the count, so no wake-up is lost.
            os::read_counter(*m);
            mine = std::mem::take(count);
        } else if arrived > 0 {
            // The mail is open while it is listed here (under this lock).
            os::eventfd_signal(*m);
        }
    }
    mine
}

/// EVFILT_SIGNAL: the signal's shared signalfd, and a mail eventfd per
/// knote.
pub(crate) static OPS: FilterOps = FilterOps {
    // Numbers signalfd cannot watch are refused before the lookup.
    check_ident: |_, change| signal_number(change.ident).map(|_| None),
    attach: |t, r, knote, _, _| t.attach_signal(r.ident, knote),
    touch: None,
    catch_up: nothing_to_catch_up,
    detach: |t, r| t.delete_signal(r.ident),
    arm: |t, r, _| t.arm_signal(r.ident),
    deliver: |t, r, out| t.deliver_signal(r.ident, out),
};

impl Table {
    /// `filt_sigattach`: the signal blocked and watched.
    fn attach_signal(&mut self, ident: usize, mut knote: Knote) -> io::Result<()> {
        let signo = signal_number(ident)?;
        // FreeBSD: EV_CLEAR is implied.
        knote.flags |= EV_CLEAR;
        let (sfd, mail) = watch_signal(signo)?;
        self.signal_by_fd.insert(sfd, ident);
        self.signal_by_fd.insert(mail.as_raw_fd(), ident);
        self.signals.insert(
            ident,
            Signal {
                sfd,
                mail,
                registered: false,
                knote,
            },
        );
        Ok(())
    }

    /// The signal's descriptors wake the queue exactly while the knote is
    /// enabled.
    fn arm_signal(&mut self, ident: usize) -> io::Result<()> {
        let epfd = self.epfd;
        let Some(s) = self.signals.get_mut(&ident) else {
            return Ok(());
        };
        let want = !s.knote.disabled;
        if s.registered == want {
            return Ok(());
        }
        // The knote's two descriptors go in (or out) together.
        let mail = s.mail.as_raw_fd();
        let mut mail_registered = s.registered;
        set_registered(epfd, mail, Token::Signal(mail), &mut mail_registered, want)?;
        if let Err(e) = set_registered(epfd, s.sfd, Token::Signal(s.sfd), &mut s.registered, want) {
            let _ = set_registered(epfd, mail, Token::Signal(mail), &mut mail_registered, !want);
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn delete_signal(&mut self, ident: usize) {
        self.unqueue(KnoteRef::new(FilterKind::Signal, ident));
        let Some(mut s) = self.signals.remove(&ident) else {
            return;
        };
        self.signal_by_fd.remove(&s.sfd);
        self.signal_by_fd.remove(&s.mail.as_raw_fd());
        // The signalfd stays open for other knotes: take it out of this
        // epoll set explicitly (the mail leaves as it closes).
        let _ = set_registered(
            self.epfd,
            s.sfd,
            Token::Signal(s.sfd),
            &mut s.registered,
            false,
        );
        unwatch_signal(ident as c_int, s.mail.as_raw_fd());
    }

    pub(crate) fn deliver_signal(&mut self, ident: usize, out: &mut Out) {
        let Some(s) = self.signals.get_mut(&ident) else {
            return;
        };
        if s.knote.disabled || s.knote.queued {
            return;
        }
        let r = KnoteRef::new(FilterKind::Signal, ident);
        if !out.room() {
            self.queue(r);
            return;
        }
        let count = take_signals(ident as c_int, s.mail.as_raw_fd());
        if count == 0 {
            return;
        }
        let k = s.knote;
        let data = count.min(i64::MAX as u64) as i64;
        out.push(k.event(ident, FilterKind::Signal, 0, 0, data));
        self.after_delivery(r, k.flags, false);
    }
}
