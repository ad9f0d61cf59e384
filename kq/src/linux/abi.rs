//! `<sys/event.h>` for Linux: the struct and the constants, numbered as on
//! FreeBSD (so `EVFILT_USER` is -11 and `NOTE_MSECONDS` exists), with the
//! 32-byte `struct kevent` of macOS and libkqueue (FreeBSD's `ext[4]` is left
//! out: nothing here uses it).
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
pub const EVFILT_VNODE: Filter = -4;
pub const EVFILT_PROC: Filter = -5;
pub const EVFILT_SIGNAL: Filter = -6;
pub const EVFILT_TIMER: Filter = -7;
pub const EVFILT_USER: Filter = -11;

pub const EV_ADD: Flags = 0x0001;
pub const EV_DELETE: Flags = 0x0002;
pub const EV_ENABLE: Flags = 0x0004;
pub const EV_DISABLE: Flags = 0x0008;
pub const EV_ONESHOT: Flags = 0x0010;
pub const EV_CLEAR: Flags = 0x0020;
pub const EV_RECEIPT: Flags = 0x0040;
pub const EV_DISPATCH: Flags = 0x0080;
pub const EV_SYSFLAGS: Flags = 0xF000;
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

pub const NOTE_EXIT: u32 = 0x8000_0000;
