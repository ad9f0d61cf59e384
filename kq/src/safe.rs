//! The thin safe layer: the same two calls, with owned descriptors, slices
//! and `io::Result`, and no policy of its own.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys::{self, kevent, timespec};

/// An owned kqueue descriptor. Dropping it closes the queue, which removes
/// every knote it held.
#[derive(Debug)]
pub struct Kqueue {
    fd: OwnedFd,
}

impl Kqueue {
    /// `kqueue()`: create a new, empty event queue.
    pub fn new() -> io::Result<Kqueue> {
        // SAFETY: kqueue() takes no arguments and returns a new descriptor or -1.
        let fd = cvt(unsafe { sys::kqueue() })?;
        // SAFETY: `fd` was just returned by kqueue() and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Kqueue { fd })
    }

    /// `kevent(kq, changes, nchanges, events, nevents, timeout)`: apply
    /// `changes` in order, then wait for up to `events.len()` events.
    ///
    /// `timeout`: `None` waits for ever, `Some(Duration::ZERO)` polls.
    /// Returns how many entries of `events` were filled in, exactly as the
    /// C call does (EV_ERROR entries for failed changes and EV_RECEIPT
    /// included).
    ///
    /// With `KQ_TRACE` in the environment, the call is written to the
    /// trace, decoded ([`crate::trace`]).
    pub fn kevent(
        &self,
        changes: &[kevent],
        events: &mut [kevent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let nchanges = c_len(changes.len())?;
        let nevents = c_len(events.len())?;
        let ts = timeout.map(to_timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const timespec);
        // SAFETY: both pointers come from slices whose lengths are passed
        // alongside them, and `ts_ptr` is null or points at a live timespec.
        // `trace::kevent` is the system call, traced when KQ_TRACE asks.
        let n = cvt(unsafe {
            crate::trace::kevent(
                self.fd.as_raw_fd(),
                changes.as_ptr(),
                nchanges,
                events.as_mut_ptr(),
                nevents,
                ts_ptr,
            )
        })?;
        Ok(n as usize)
    }
}

/// -1 means the call failed with errno; anything else is its result.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn c_len(len: usize) -> io::Result<libc::c_int> {
    libc::c_int::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn to_timespec(d: Duration) -> timespec {
    timespec {
        // Saturate: a timeout of centuries is "for ever" in practice.
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as _,
    }
}

impl Drop for Kqueue {
    fn drop(&mut self) {
        // On Linux, free the translation's bookkeeping (timerfds, ...) now
        // rather than when the number is next checked; the OwnedFd then
        // closes the queue itself.
        #[cfg(target_os = "linux")]
        crate::linux::forget(self.fd.as_raw_fd());
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Kqueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl IntoRawFd for Kqueue {
    fn into_raw_fd(self) -> RawFd {
        let fd = self.fd.as_raw_fd();
        std::mem::forget(self);
        fd
    }
}
