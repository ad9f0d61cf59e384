//! EVFILT_USER (FreeBSD `filt_user*`): nothing in the kernel, a flag per
//! knote. A triggered knote waits in the pending queue, whose eventfd wakes
//! a kevent() blocked in another thread.

use crate::linux::abi::*;
use crate::linux::filter::{any_ident, nothing_to_catch_up, FilterKind, FilterOps};
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::queue::Out;

pub(crate) struct User {
    triggered: bool,
    pub(crate) knote: Knote,
}

/// EVFILT_USER: a flag per knote, set by a NOTE_TRIGGER change.
pub(crate) static OPS: FilterOps = FilterOps {
    check_ident: any_ident,
    attach: |t, r, knote, _, _| {
        t.attach_user(r.ident, knote);
        Ok(())
    },
    touch: Some(|t, r, k, change| {
        t.touch_user(r.ident, k, change);
        Ok(())
    }),
    catch_up: nothing_to_catch_up,
    detach: |t, r| t.delete_user(r.ident),
    arm: |t, r, _| {
        t.arm_user(r.ident);
        Ok(())
    },
    deliver: |t, r, out| t.deliver_user(r.ident, out),
};

impl Table {
    /// `filt_userattach`: a knote that is not triggered.
    fn attach_user(&mut self, ident: usize, mut knote: Knote) {
        // The control bits and NOTE_TRIGGER are operations, not state.
        // FreeBSD does not fire a knote at creation even with NOTE_TRIGGER
        // (its attach looks at the zeroed `kn_fflags`; macOS fires it):
        // portable code adds, then triggers.
        knote.sfflags &= NOTE_FFLAGSMASK;
        self.users.insert(
            ident,
            User {
                triggered: false,
                knote,
            },
        );
    }

    /// `filt_usertouch(EVENT_REGISTER)`, for every change that reaches the
    /// knote (EV_ADD or not): NOTE_TRIGGER fires it, the control bits say
    /// how the low 24 bits combine with the stored ones, `data` is stored,
    /// and EV_CLEAR in the change resets the trigger.
    fn touch_user(&mut self, ident: usize, k: &mut Knote, change: &mut kevent) {
        let Some(u) = self.users.get_mut(&ident) else {
            return;
        };
        if change.fflags & NOTE_TRIGGER != 0 {
            u.triggered = true;
        }
        let ffl = change.fflags & NOTE_FFLAGSMASK;
        match change.fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => k.sfflags &= ffl,
            NOTE_FFOR => k.sfflags |= ffl,
            NOTE_FFCOPY => k.sfflags = ffl,
            _ => {} // NOTE_FFNOP
        }
        change.fflags = ffl;
        k.sdata = change.data as i64;
        if change.flags & EV_CLEAR != 0 {
            u.triggered = false;
        }
    }

    /// A triggered knote waits in the pending queue (while enabled).
    fn arm_user(&mut self, ident: usize) {
        let r = KnoteRef::new(FilterKind::User, ident);
        if self.users.get(&ident).is_some_and(|u| u.triggered) {
            self.queue(r);
        } else {
            self.unqueue(r);
        }
    }

    pub(crate) fn delete_user(&mut self, ident: usize) {
        self.unqueue(KnoteRef::new(FilterKind::User, ident));
        self.users.remove(&ident);
    }

    pub(crate) fn deliver_user(&mut self, ident: usize, out: &mut Out) {
        let Some(u) = self.users.get_mut(&ident) else {
            return;
        };
        if u.knote.disabled || !u.triggered {
            return;
        }
        let k = u.knote;
        out.push(k.event(ident, FilterKind::User, 0, k.sfflags, k.sdata));
        if k.flags & EV_CLEAR != 0 {
            u.triggered = false;
        }
        // Without EV_CLEAR a triggered knote stays true: report it again on
        // the next call, as the kernel's level-triggered scan would.
        let again = k.flags & EV_CLEAR == 0;
        self.after_delivery(KnoteRef::new(FilterKind::User, ident), k.flags, again);
    }
}
