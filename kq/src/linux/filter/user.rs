//! EVFILT_USER (FreeBSD `filt_user*`): nothing in the kernel, a flag per
//! knote. A triggered knote waits in the pending queue, whose eventfd wakes
//! a kevent() blocked in another thread.

use std::io;

use crate::linux::abi::*;
use crate::linux::filter::FilterKind;
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::os;
use crate::linux::queue::Out;

pub(crate) struct User {
    triggered: bool,
    pub(crate) knote: Knote,
}

impl Table {
    pub(crate) fn register_user(&mut self, change: &mut kevent) -> io::Result<()> {
        let ident = change.ident;
        let r = KnoteRef::new(FilterKind::User, ident);
        let Some(u) = self.users.get_mut(&ident) else {
            if change.flags & EV_ADD == 0 {
                return Err(os::err(libc::ENOENT));
            }
            let mut knote = Knote::new(change, 0);
            // The control bits and NOTE_TRIGGER are operations, not state.
            // FreeBSD does not fire a knote at creation even with
            // NOTE_TRIGGER (its attach looks at the zeroed `kn_fflags`;
            // macOS fires it): portable code adds, then triggers.
            knote.sfflags &= NOTE_FFLAGSMASK;
            change.fflags = 0;
            self.users.insert(
                ident,
                User {
                    triggered: false,
                    knote,
                },
            );
            return Ok(());
        };
        if change.flags & EV_DELETE != 0 {
            self.delete_user(ident);
            return Ok(());
        }
        // FreeBSD's filt_usertouch(EVENT_REGISTER).
        u.knote.udata = change.udata as usize;
        u.knote.apply_enable(change);
        if change.fflags & NOTE_TRIGGER != 0 {
            u.triggered = true;
        }
        let ffl = change.fflags & NOTE_FFLAGSMASK;
        match change.fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => u.knote.sfflags &= ffl,
            NOTE_FFOR => u.knote.sfflags |= ffl,
            NOTE_FFCOPY => u.knote.sfflags = ffl,
            _ => {} // NOTE_FFNOP
        }
        change.fflags = ffl;
        u.knote.sdata = change.data as i64;
        if change.flags & EV_CLEAR != 0 {
            u.triggered = false;
        }
        if u.triggered {
            self.queue(r);
        } else {
            self.unqueue(r);
        }
        Ok(())
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
