//! EVFILT_TIMER (FreeBSD `filt_timer*`): a timerfd per timer. `data` is
//! the number of expirations since the last delivery, read from the
//! timerfd. A relative timer is EV_CLEAR by nature; an absolute one
//! (NOTE_ABSTIME) fires once at its time on the realtime clock and keeps
//! the flags it was registered with, so without EV_CLEAR it stays true
//! (FreeBSD keeps its `kn_data`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::linux::abi::*;
use crate::linux::filter::{any_ident, nothing_to_catch_up, FilterKind, FilterOps};
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::os;
use crate::linux::queue::{set_registered, Out, Token};

pub(crate) struct Timer {
    tfd: OwnedFd,
    /// The timerfd is in the epoll set (the knote is enabled).
    pub(crate) registered: bool,
    /// NOTE_ABSTIME: a deadline on the realtime clock.
    absolute: bool,
    /// Expirations not yet reported (FreeBSD's `kn_data`).
    fired: u64,
    pub(crate) knote: Knote,
}

impl Timer {
    pub(crate) fn fd(&self) -> RawFd {
        self.tfd.as_raw_fd()
    }
}

/// The timer units FreeBSD knows, and its absolute flag: any other fflags
/// bit is EINVAL (`filt_timervalidate`).
const UNITS: u32 = NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS;

/// What to set a timerfd to for a timer knote: its period `sdata` in the
/// unit `sfflags` names (milliseconds by default), periodic unless
/// EV_ONESHOT or NOTE_ABSTIME.
fn timer_spec(k: &Knote) -> io::Result<libc::itimerspec> {
    let invalid = || os::err(libc::EINVAL);
    if k.sdata < 0 || k.sfflags & !(UNITS | NOTE_ABSTIME) != 0 {
        return Err(invalid());
    }
    let per_second: i64 = match k.sfflags & UNITS {
        0 | NOTE_MSECONDS => 1_000,
        NOTE_SECONDS => 1,
        NOTE_USECONDS => 1_000_000,
        NOTE_NSECONDS => 1_000_000_000,
        _ => return Err(invalid()), // more than one unit
    };
    let absolute = k.sfflags & NOTE_ABSTIME != 0;
    let oneshot = absolute || k.flags & EV_ONESHOT != 0;
    // FreeBSD: a periodic timer of 0 runs every 1 unit.
    let amount = if k.sdata == 0 && !oneshot { 1 } else { k.sdata };
    let mut value = libc::timespec {
        tv_sec: (amount / per_second) as libc::time_t,
        tv_nsec: ((amount % per_second) * (1_000_000_000 / per_second)) as _,
    };
    if absolute {
        // FreeBSD measures an absolute time from boot: one before the
        // system started is invalid.
        let now = os::clock_now(libc::CLOCK_REALTIME);
        let up = os::clock_now(libc::CLOCK_BOOTTIME);
        if value.tv_sec < now.tv_sec - up.tv_sec - 1 {
            return Err(invalid());
        }
    }
    if value.tv_sec == 0 && value.tv_nsec == 0 {
        value.tv_nsec = 1; // {0, 0} would disarm a timerfd: fire at once
    }
    let none = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    Ok(libc::itimerspec {
        it_interval: if oneshot { none } else { value },
        it_value: value,
    })
}

/// EVFILT_TIMER: a timerfd per knote, re-set by EV_ADD on an existing one.
pub(crate) static OPS: FilterOps = FilterOps {
    check_ident: any_ident,
    attach: |t, r, knote, _, _| t.attach_timer(r.ident, knote),
    touch: Some(|t, r, k, change| t.touch_timer(r.ident, k, change)),
    catch_up: nothing_to_catch_up,
    detach: |t, r| t.delete_timer(r.ident),
    arm: |t, r, _| t.arm_timer(r.ident),
    deliver: |t, r, out| t.deliver_timer(r.ident, out),
};

impl Table {
    /// `filt_timerattach`: the timerfd, set to the knote's period.
    fn attach_timer(&mut self, ident: usize, mut knote: Knote) -> io::Result<()> {
        let absolute = knote.sfflags & NOTE_ABSTIME != 0;
        // A relative timer counts expirations since the last delivery:
        // EV_CLEAR is implied. FreeBSD adds nothing to an absolute one.
        if !absolute {
            knote.flags |= EV_CLEAR;
        }
        let spec = timer_spec(&knote)?;
        let tfd = os::timerfd(absolute)?;
        os::timerfd_settime(tfd.as_raw_fd(), absolute, &spec)?;
        self.timer_by_fd.insert(tfd.as_raw_fd(), ident);
        self.timers.insert(
            ident,
            Timer {
                tfd,
                registered: false,
                absolute,
                fired: 0,
                knote,
            },
        );
        Ok(())
    }

    /// `filt_timertouch(EVENT_REGISTER)`: only EV_ADD changes a timer
    /// (EV_ENABLE, EV_DISABLE and udata are the register rules'). Re-adding
    /// restarts the timer with the new parameters and throws away
    /// expirations not yet delivered (FreeBSD >= 12, macOS); parameters it
    /// refuses leave the timer as it was.
    fn touch_timer(&mut self, ident: usize, k: &mut Knote, change: &kevent) -> io::Result<()> {
        if change.flags & EV_ADD == 0 {
            return Ok(());
        }
        let Some(t) = self.timers.get_mut(&ident) else {
            return Ok(());
        };
        k.sfflags = change.fflags;
        k.sdata = change.data as i64;
        let spec = timer_spec(k)?;
        let absolute = k.sfflags & NOTE_ABSTIME != 0;
        if absolute != t.absolute {
            // The other clock: a new timerfd (the old one leaves the epoll
            // set as it closes).
            let tfd = os::timerfd(absolute)?;
            self.timer_by_fd.remove(&t.fd());
            self.timer_by_fd.insert(tfd.as_raw_fd(), ident);
            t.tfd = tfd;
            t.registered = false;
            t.absolute = absolute;
        }
        os::timerfd_settime(t.fd(), absolute, &spec)?;
        t.fired = 0;
        self.unqueue(KnoteRef::new(FilterKind::Timer, ident));
        Ok(())
    }

    /// The timerfd wakes the queue exactly while the knote is enabled.
    fn arm_timer(&mut self, ident: usize) -> io::Result<()> {
        let epfd = self.epfd;
        let Some(t) = self.timers.get_mut(&ident) else {
            return Ok(());
        };
        let want = !t.knote.disabled;
        let fd = t.fd();
        set_registered(epfd, fd, Token::Timer(fd), &mut t.registered, want)?;
        if want && t.fired > 0 {
            // A trigger while disabled is reported on EV_ENABLE.
            self.queue(KnoteRef::new(FilterKind::Timer, ident));
        }
        Ok(())
    }

    pub(crate) fn delete_timer(&mut self, ident: usize) {
        self.unqueue(KnoteRef::new(FilterKind::Timer, ident));
        if let Some(t) = self.timers.remove(&ident) {
            self.timer_by_fd.remove(&t.fd());
            // Closing the timerfd also takes it out of the epoll set.
        }
    }

    pub(crate) fn deliver_timer(&mut self, ident: usize, out: &mut Out) {
        let Some(t) = self.timers.get_mut(&ident) else {
            return;
        };
        if t.knote.disabled || t.knote.queued {
            return;
        }
        let r = KnoteRef::new(FilterKind::Timer, ident);
        if !out.room() {
            self.queue(r);
            return;
        }
        t.fired += os::read_counter(t.fd());
        if t.fired == 0 {
            return; // another thread took this expiration
        }
        let k = t.knote;
        let data = t.fired.min(i64::MAX as u64) as i64;
        if k.flags & EV_CLEAR != 0 {
            t.fired = 0;
        }
        // FreeBSD reports fflags 0 and the number of expirations in data.
        out.push(k.event(ident, FilterKind::Timer, 0, 0, data));
        let level = k.flags & EV_CLEAR == 0;
        self.after_delivery(r, k.flags, level);
    }
}
