//! `<sys/event.h>` for Linux: the struct and every constant of FreeBSD 14's
//! `<sys/event.h>`, with FreeBSD's values (so `EVFILT_USER` is -11 and
//! `NOTE_MSECONDS` exists), so code written for FreeBSD compiles; what the
//! translation cannot do is refused at run time in an EV_ERROR entry (the
//! crate docs, "Where Linux differs", list each). `struct kevent` is the
//! 32-byte one of macOS and libkqueue (FreeBSD's `ext[4]` is left out:
//! nothing here uses it).
#![allow(non_camel_case_types)]

use libc::c_void;

/// The type of `struct kevent`'s `filter` field.
pub type Filter = i16;
/// The type of `struct kevent`'s `flags` field.
pub type Flags = u16;
/// The type of `struct kevent`'s `data` field.
pub type Data = isize;

pub use libc::timespec;

/// One kernel event: a change to apply, or an event that happened.
///
/// Laid out as in C (`ident`, `filter`, `flags`, `fflags`, `data`, `udata`),
/// 32 bytes on 64-bit Linux, so C code and `kq-c/include/sys/event.h` agree.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kevent {
    /// What to watch: a descriptor, a timer id, a signal number, a user id.
    pub ident: usize,
    /// Which filter: `EVFILT_READ`, `EVFILT_WRITE`, ...
    pub filter: Filter,
    /// Actions on input (`EV_ADD`, ...), state on output (`EV_EOF`, ...).
    pub flags: Flags,
    /// Filter-specific flags (`NOTE_*`).
    pub fflags: u32,
    /// Filter-specific data: bytes readable, timer expirations, ...
    pub data: Data,
    /// Opaque user data, returned unchanged with every event.
    pub udata: *mut c_void,
}

pub const EVFILT_READ: Filter = -1;
pub const EVFILT_WRITE: Filter = -2;
/// Not on Linux: EV_ADD is EINVAL.
pub const EVFILT_AIO: Filter = -3;
pub const EVFILT_VNODE: Filter = -4;
pub const EVFILT_PROC: Filter = -5;
pub const EVFILT_SIGNAL: Filter = -6;
pub const EVFILT_TIMER: Filter = -7;
/// Not on Linux (no process descriptors): EINVAL.
pub const EVFILT_PROCDESC: Filter = -8;
/// Not on Linux: EINVAL.
pub const EVFILT_FS: Filter = -9;
/// Not on Linux: EINVAL.
pub const EVFILT_LIO: Filter = -10;
pub const EVFILT_USER: Filter = -11;
/// Not on Linux: EINVAL.
pub const EVFILT_SENDFILE: Filter = -12;
/// Not on Linux: EINVAL.
pub const EVFILT_EMPTY: Filter = -13;
/// How many filter numbers FreeBSD has.
pub const EVFILT_SYSCOUNT: Filter = 13;

pub const EV_ADD: Flags = 0x0001;
pub const EV_DELETE: Flags = 0x0002;
pub const EV_ENABLE: Flags = 0x0004;
pub const EV_DISABLE: Flags = 0x0008;
/// An existing knote becomes one-shot and is reported at the next scan,
/// true or not; ignored when a knote is created (FreeBSD).
pub const EV_FORCEONESHOT: Flags = 0x0100;
/// A modification keeps the knote's udata; EINVAL with EV_ADD.
pub const EV_KEEPUDATA: Flags = 0x0200;
pub const EV_ONESHOT: Flags = 0x0010;
pub const EV_CLEAR: Flags = 0x0020;
pub const EV_RECEIPT: Flags = 0x0040;
pub const EV_DISPATCH: Flags = 0x0080;
pub const EV_SYSFLAGS: Flags = 0xF000;
/// Reserved by the system (stripped from every change).
pub const EV_DROP: Flags = 0x1000;
/// Reserved by the system (stripped from every change).
pub const EV_FLAG1: Flags = 0x2000;
/// Reserved by the system (stripped from every change).
pub const EV_FLAG2: Flags = 0x4000;
pub const EV_ERROR: Flags = 0x4000;
pub const EV_EOF: Flags = 0x8000;

pub const NOTE_LOWAT: u32 = 0x0001;
pub const NOTE_FILE_POLL: u32 = 0x0002;

pub const NOTE_FFNOP: u32 = 0x0000_0000;
pub const NOTE_FFAND: u32 = 0x4000_0000;
pub const NOTE_FFOR: u32 = 0x8000_0000;
pub const NOTE_FFCOPY: u32 = 0xc000_0000;
pub const NOTE_FFCTRLMASK: u32 = 0xc000_0000;
pub const NOTE_FFLAGSMASK: u32 = 0x00ff_ffff;
pub const NOTE_TRIGGER: u32 = 0x0100_0000;

pub const NOTE_SECONDS: u32 = 0x0001;
pub const NOTE_MSECONDS: u32 = 0x0002;
pub const NOTE_USECONDS: u32 = 0x0004;
pub const NOTE_NSECONDS: u32 = 0x0008;
pub const NOTE_ABSTIME: u32 = 0x0010;

pub const NOTE_DELETE: u32 = 0x0001;
pub const NOTE_WRITE: u32 = 0x0002;
pub const NOTE_EXTEND: u32 = 0x0004;
pub const NOTE_ATTRIB: u32 = 0x0008;
pub const NOTE_LINK: u32 = 0x0010;
pub const NOTE_RENAME: u32 = 0x0020;
pub const NOTE_REVOKE: u32 = 0x0040;
/// FreeBSD 14: the file was opened.
pub const NOTE_OPEN: u32 = 0x0080;
/// FreeBSD 14: a descriptor that could not write closed it.
pub const NOTE_CLOSE: u32 = 0x0100;
/// FreeBSD 14: a descriptor that could write closed it.
pub const NOTE_CLOSE_WRITE: u32 = 0x0200;
/// FreeBSD 14: the file was read.
pub const NOTE_READ: u32 = 0x0400;

pub const NOTE_EXIT: u32 = 0x8000_0000;
/// Not on Linux (its fork events need privileges): ENOTSUP.
pub const NOTE_FORK: u32 = 0x4000_0000;
/// Not on Linux (its exec events need privileges): ENOTSUP.
pub const NOTE_EXEC: u32 = 0x2000_0000;
pub const NOTE_PCTRLMASK: u32 = 0xf000_0000;
pub const NOTE_PDATAMASK: u32 = 0x000f_ffff;
/// Not on Linux (following forks needs their events): ENOTSUP.
pub const NOTE_TRACK: u32 = 0x0000_0001;
/// Output only: FreeBSD could not track a child.
pub const NOTE_TRACKERR: u32 = 0x0000_0002;
/// Output only: FreeBSD's event for a tracked child.
pub const NOTE_CHILD: u32 = 0x0000_0004;
