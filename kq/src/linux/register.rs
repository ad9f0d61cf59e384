//! FreeBSD's register rules, in one place: what one change of a changelist
//! does to a knote (`kqueue_register` in FreeBSD's sys/kern/kern_event.c),
//! top to bottom in FreeBSD's order.
//!
//! Every filter goes through [`Table::register`]; what differs between
//! filters comes from its [`FilterOps`] (`super::filter`), as FreeBSD's
//! `struct filterops` does: checking the ident, attaching, catching up on
//! what already happened, touching, detaching, arming. The rules a knote meets after this (EV_ONESHOT and
//! EV_DISPATCH once delivered, a level knote looked at again) are
//! `kqueue_scan`'s, in `Table::after_delivery` (`super::knote`).

use std::io;

use super::abi::*;
use super::filter::{FilterKind, FilterOps};
use super::knote::{Knote, KnoteRef, Table};
use super::os;

/// The action bits of a change, which FreeBSD strips from the flags it
/// stores (and so returns with every event), EV_FORCEONESHOT among them.
/// EV_KEEPUDATA acts on one change too, and is never stored either.
const ACTIONS: Flags = EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE | EV_FORCEONESHOT | EV_KEEPUDATA;

impl Table {
    /// Applies one change (FreeBSD `kqueue_register`). Like FreeBSD it may
    /// rewrite the change, which becomes the EV_ERROR / EV_RECEIPT entry:
    /// the `fflags` of a change that creates a knote are zeroed.
    pub(crate) fn register(&mut self, change: &mut kevent) -> io::Result<()> {
        // EV_ENABLE and EV_DISABLE together: EINVAL, before anything else.
        if change.flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE {
            return Err(os::err(libc::EINVAL));
        }
        // `kqueue_fo_find`: an unknown filter is EINVAL.
        let filter = FilterKind::from_raw(change.filter)?;
        let ops = filter.ops();
        // `f_isfd`: the descriptor is checked before the knote is looked
        // up (EBADF for a closed one, EINVAL for this kqueue itself), so an
        // EV_DELETE after close() is EBADF.
        let st = (ops.check_ident)(self, change)?;
        let r = KnoteRef::new(filter, change.ident);

        // No knote for (ident, filter).
        if self.knote_mut(r).is_none() {
            // Without EV_ADD (EV_DELETE, EV_ENABLE, EV_DISABLE, or flags 0
            // with NOTE_TRIGGER): ENOENT.
            if change.flags & EV_ADD == 0 {
                return Err(os::err(libc::ENOENT));
            }
            return self.create(ops, r, change, st.as_ref());
        }

        // EV_DELETE drops the knote and whatever it had pending
        // (`knote_drop`), whatever else the change says.
        if change.flags & EV_DELETE != 0 {
            (ops.detach)(self, r);
            return Ok(());
        }

        self.modify(ops, r, change)?;
        // `done_ev_add`: the filter runs again at once, so a knote that is
        // already true (data waiting, a pending trigger) is queued now.
        let armed = (ops.arm)(self, r, Some(change));
        // A knote EV_FORCEONESHOT activated waits to be reported while it
        // is enabled, true or not.
        if self.knote_mut(r).is_some_and(|k| k.forced) {
            self.queue(r);
        }
        armed
    }

    /// EV_ADD of a knote that does not exist yet.
    fn create(
        &mut self,
        ops: &FilterOps,
        r: KnoteRef,
        change: &mut kevent,
        st: Option<&libc::stat>,
    ) -> io::Result<()> {
        // FreeBSD keeps the change's fflags and data as the knote's
        // parameters (`kn_sfflags`, `kn_sdata`) and zeroes them in the change
        // (which an EV_RECEIPT entry then shows). The flags it stores are the
        // change's minus the actions (EV_FORCEONESHOT among them): EV_CLEAR,
        // EV_ONESHOT, EV_DISPATCH and EV_RECEIPT stay for good, and come back
        // with every event. EV_DISABLE creates the knote disabled.
        let knote = Knote {
            udata: change.udata as usize,
            sdata: change.data as i64,
            sfflags: change.fflags,
            flags: change.flags & !ACTIONS,
            disabled: change.flags & EV_DISABLE != 0,
            queued: false,
            // EV_FORCEONESHOT acts on an existing knote only.
            forced: false,
        };
        change.fflags = 0;
        // `f_attach`: the filter may refuse (its error is the change's), and
        // then nothing was created.
        (ops.attach)(self, r, knote, change, st)?;
        // `done_ev_add`. A knote whose Linux source cannot be set up is
        // dropped again, as FreeBSD drops one whose f_attach failed.
        let armed = (ops.arm)(self, r, Some(change));
        if armed.is_err() {
            (ops.detach)(self, r);
        }
        armed
    }

    /// A change (other than EV_DELETE) to an existing knote, EV_ADD or not.
    fn modify(&mut self, ops: &FilterOps, r: KnoteRef, change: &mut kevent) -> io::Result<()> {
        // What already happened was recorded, on FreeBSD, when it happened,
        // with the parameters in force then: record it now, before this
        // change replaces them (an EV_ENABLE with fflags 0 must still report
        // an exit or a write that happened while the knote was disabled).
        (ops.catch_up)(self, r);
        let Some(stored) = self.knote_mut(r) else {
            return Ok(()); // looked up by register()
        };
        let mut k = *stored;
        // EV_FORCEONESHOT makes the knote one-shot for good and activates
        // it: it is reported at the next scan, true or not, then deleted
        // (FreeBSD `KNOTE_ACTIVATE`; its scan copies a one-shot knote out
        // without running the filter).
        if change.flags & EV_FORCEONESHOT != 0 {
            k.flags |= EV_ONESHOT;
            k.forced = true;
        }
        // EV_ENABLE clears the disabled state, EV_DISABLE sets it; what
        // happened meanwhile is kept for EV_ENABLE to report.
        if change.flags & EV_ENABLE != 0 {
            k.disabled = false;
        } else if change.flags & EV_DISABLE != 0 {
            k.disabled = true;
        }
        // "The user may change some filter values after the initial EV_ADD,
        // but doing so will not reset any filter which has already been
        // triggered." udata is replaced by every change that reaches an
        // existing knote (EV_ADD or not), unless it carries EV_KEEPUDATA
        // (kqueue(2): the change need not know the udata). The stored flags
        // (EV_CLEAR, EV_ONESHOT, EV_DISPATCH) are not replaced: they were
        // chosen at EV_ADD (only EV_FORCEONESHOT, above, adds EV_ONESHOT).
        if change.flags & EV_KEEPUDATA == 0 {
            k.udata = change.udata as usize;
        }
        match ops.touch {
            // `f_touch(EVENT_REGISTER)` (timer, user; and proc and vnode,
            // for what Linux needs) decides what the change does to the
            // parameters, and may refuse it.
            Some(touch) => touch(self, r, &mut k, change)?,
            // Otherwise the change's fflags and data replace them.
            None => {
                k.sfflags = change.fflags;
                k.sdata = change.data as i64;
            }
        }
        if let Some(stored) = self.knote_mut(r) {
            // The registration only: `queued` is the pending queue's.
            stored.flags = k.flags;
            stored.forced = k.forced;
            stored.udata = k.udata;
            stored.sdata = k.sdata;
            stored.sfflags = k.sfflags;
            stored.disabled = k.disabled;
        }
        Ok(())
    }
}
