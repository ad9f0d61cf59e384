//! The C-shaped layer: `<sys/event.h>` as Rust items.
//!
//! Everything here has the name, type and meaning it has in C, so a listing
//! from a kqueue(2) tutorial translates line by line. On macOS and the BSDs
//! the items are the kernel's own, re-exported from `libc`; on Linux they are
//! this crate's (see [`crate::linux`] for how they map onto epoll).

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd"
))]
mod native {
    #[cfg(not(target_os = "netbsd"))]
    pub use libc::kevent;
    pub use libc::{kqueue, timespec};
    pub use libc::{
        EVFILT_PROC, EVFILT_READ, EVFILT_SIGNAL, EVFILT_TIMER, EVFILT_USER, EVFILT_VNODE,
        EVFILT_WRITE, EV_ADD, EV_CLEAR, EV_DELETE, EV_DISABLE, EV_DISPATCH, EV_ENABLE, EV_EOF,
        EV_ERROR, EV_ONESHOT, EV_RECEIPT, NOTE_ATTRIB, NOTE_DELETE, NOTE_EXIT, NOTE_EXTEND,
        NOTE_FFAND, NOTE_FFCOPY, NOTE_FFCTRLMASK, NOTE_FFLAGSMASK, NOTE_FFNOP, NOTE_FFOR,
        NOTE_LINK, NOTE_LOWAT, NOTE_NSECONDS, NOTE_RENAME, NOTE_REVOKE, NOTE_SECONDS, NOTE_TRIGGER,
        NOTE_USECONDS, NOTE_WRITE,
    };

    /// An absolute EVFILT_TIMER (FreeBSD, NetBSD; macOS calls its own
    /// flag NOTE_ABSOLUTE, with another value).
    #[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
    pub use libc::NOTE_ABSTIME;
    /// EVFILT_READ on a file: active even at its end, as poll(2) says
    /// (FreeBSD only).
    #[cfg(target_os = "freebsd")]
    pub use libc::NOTE_FILE_POLL;
    /// A modification that keeps the knote's udata, and one that forces a
    /// one-shot report (FreeBSD only).
    #[cfg(target_os = "freebsd")]
    pub use libc::{EV_FORCEONESHOT, EV_KEEPUDATA};
    /// EVFILT_VNODE: opens, closes and reads of the file (FreeBSD 14).
    #[cfg(target_os = "freebsd")]
    pub use libc::{NOTE_CLOSE, NOTE_CLOSE_WRITE, NOTE_OPEN, NOTE_READ};

    /// Milliseconds, the default unit of EVFILT_TIMER. FreeBSD and NetBSD
    /// name it; macOS has no flag for it (0 means milliseconds there too).
    #[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
    pub use libc::NOTE_MSECONDS;
    /// Milliseconds, the default unit of EVFILT_TIMER (no flag on macOS).
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "dragonfly"))]
    pub const NOTE_MSECONDS: u32 = 0;

    /// NetBSD's `struct kevent` (its `kevent()` is wrapped below).
    #[cfg(target_os = "netbsd")]
    #[allow(non_camel_case_types)]
    pub type kevent = libc::kevent;

    /// `kevent()` with `int` counts, as on the other BSDs: NetBSD declares
    /// `size_t nchanges, size_t nevents`, and step code should not care.
    ///
    /// # Safety
    /// As for `kevent(2)`: the lists must be valid for their counts and
    /// `timeout` null or valid.
    #[cfg(target_os = "netbsd")]
    pub unsafe fn kevent(
        kq: libc::c_int,
        changelist: *const kevent,
        nchanges: libc::c_int,
        eventlist: *mut kevent,
        nevents: libc::c_int,
        timeout: *const timespec,
    ) -> libc::c_int {
        if nchanges < 0 || nevents < 0 {
            // SAFETY: __errno() returns this thread's errno slot.
            unsafe { *libc::__errno() = libc::EINVAL };
            return -1;
        }
        // SAFETY: forwarded unchanged; the caller upholds kevent(2)'s rules.
        unsafe {
            libc::kevent(
                kq,
                changelist,
                nchanges as usize,
                eventlist,
                nevents as usize,
                timeout,
            )
        }
    }

    /// The type of `struct kevent`'s `filter` field on this OS.
    #[cfg(not(target_os = "netbsd"))]
    pub type Filter = i16;
    /// The type of `struct kevent`'s `filter` field on this OS.
    #[cfg(target_os = "netbsd")]
    pub type Filter = u32;
    /// The type of `struct kevent`'s `flags` field on this OS.
    #[cfg(not(target_os = "netbsd"))]
    pub type Flags = u16;
    /// The type of `struct kevent`'s `flags` field on this OS.
    #[cfg(target_os = "netbsd")]
    pub type Flags = u32;
    /// The type of `struct kevent`'s `data` field on this OS.
    #[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
    pub type Data = i64;
    /// The type of `struct kevent`'s `data` field on this OS.
    #[cfg(not(any(target_os = "freebsd", target_os = "netbsd")))]
    pub type Data = isize;
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd"
))]
pub use native::*;

#[cfg(target_os = "linux")]
pub use crate::linux::abi::*;
#[cfg(target_os = "linux")]
pub use crate::linux::{kevent, kqueue};

/// What the `EV_SET` macro does: fill in every field of a `struct kevent`.
///
/// The event is first zeroed, so fields the caller does not name (FreeBSD's
/// `ext[4]`, padding) never carry garbage into the kernel; libc has no
/// `EV_SET`, and forgetting `ext` is a classic FreeBSD bug.
///
/// ```
/// use kq::*;
/// let mut ev = kevent_zeroed();
/// ev_set(&mut ev, 0, EVFILT_READ, EV_ADD, 0, 0, std::ptr::null_mut());
/// assert_eq!({ ev.filter }, EVFILT_READ);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn ev_set(
    kev: &mut kevent,
    ident: usize,
    filter: Filter,
    flags: Flags,
    fflags: u32,
    data: Data,
    udata: *mut libc::c_void,
) {
    let mut ev = kevent_zeroed();
    ev.ident = ident;
    ev.filter = filter;
    ev.flags = flags;
    ev.fflags = fflags;
    ev.data = data;
    ev.udata = udata;
    *kev = ev;
}

/// A `struct kevent` with every byte zero: the starting point of `EV_SET`,
/// and a convenient way to make an eventlist (`[kevent_zeroed(); 64]`).
pub fn kevent_zeroed() -> kevent {
    // SAFETY: `struct kevent` is plain old data on every OS (integers and a
    // raw pointer), for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}
