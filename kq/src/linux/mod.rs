//! The Linux translation (being written).
pub(crate) mod abi;
use abi::*;
use libc::c_int;

/// `kqueue()`.
pub unsafe fn kqueue() -> c_int {
    -1
}
/// `kevent()`.
pub unsafe fn kevent(
    _kq: c_int,
    _changelist: *const kevent,
    _nchanges: c_int,
    _eventlist: *mut kevent,
    _nevents: c_int,
    _timeout: *const timespec,
) -> c_int {
    -1
}
pub(crate) fn forget(_kq: c_int) {}
