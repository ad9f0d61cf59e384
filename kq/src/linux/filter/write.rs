//! EVFILT_WRITE on descriptors epoll watches: FreeBSD's `filt_sowrite` and
//! `filt_pipewrite`. `data` is the space left in the send buffer.
//!
//! Linux has no SO_SNDLOWAT and EPOLLOUT fires by its own rule, so a
//! NOTE_LOWAT mark the buffer can reach is not applied (a documented
//! limitation): waiting for it would either spin (level) or miss the
//! wake-up (edge). A mark above the buffer's size can never be met, as on
//! FreeBSD: such a knote reports only EOF.

use std::os::fd::RawFd;

use crate::linux::abi::*;
use crate::linux::fd::{note_socket_error, FdEntry, Kind};
use crate::linux::knote::Knote;
use crate::linux::os;

/// The send buffer's size as Linux reports it (SO_SNDBUF, which is double
/// what was set: the kernel's real budget, overhead included).
pub(crate) fn sndbuf(fd: RawFd) -> u32 {
    os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).map_or(0, |v| v.max(0) as u32)
}

/// Whether a knote's NOTE_LOWAT mark is above what the buffer can ever
/// hold (`capacity`), so only EOF can fire it.
pub(crate) fn mark_out_of_reach(e: &FdEntry, k: &Knote) -> bool {
    k.sfflags & NOTE_LOWAT != 0
        && matches!(e.kind, Kind::Stream | Kind::Dgram | Kind::Pipe)
        && k.sdata > i64::from(e.capacity)
}

/// EVFILT_WRITE. Returns (extra flags, fflags, data) when the knote is true.
pub(crate) fn filt_write(
    e: &mut FdEntry,
    fd: RawFd,
    k: &Knote,
    revents: u32,
) -> Option<(Flags, u32, i64)> {
    let gone = revents & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
    let writable = revents & libc::EPOLLOUT as u32 != 0;
    let lowat = 1;
    let room = writable && !mark_out_of_reach(e, k);
    match e.kind {
        // A listening socket is never writable (BSD and Linux agree).
        Kind::TcpListener | Kind::OtherListener => None,
        Kind::AlwaysReady => Some((0, 0, 0)),
        Kind::Stream | Kind::Dgram => {
            // A datagram socket's error (an ICMP port unreachable) is
            // temporary: BSD reports it writable without EV_EOF and leaves
            // the error for the next send() (filt_sowrite), so SO_ERROR,
            // which Linux clears on reading, is not read.
            let gone = gone && e.kind == Kind::Stream;
            if gone && revents & libc::EPOLLERR as u32 != 0 {
                note_socket_error(e, fd);
            }
            let queued = os::ioctl_int(fd, libc::TIOCOUTQ).map_or(0, i64::from);
            let mut space = i64::from(e.capacity) - queued;
            if space < lowat && writable {
                // Linux grows a TCP send buffer by itself (autotuning), so
                // the size read at EV_ADD can be stale: read it again.
                e.capacity = sndbuf(fd);
                space = i64::from(e.capacity) - queued;
            }
            if gone {
                return Some((EV_EOF, e.so_error, space.max(0)));
            }
            // The kernel says there is room: never drop that report (an
            // EV_CLEAR writer would wait for ever, a level one would spin).
            room.then_some((0, 0, space.max(lowat)))
        }
        Kind::Pipe => {
            let mut space = i64::from(e.capacity) - os::fionread(fd);
            if space < lowat && writable {
                // F_SETPIPE_SZ may have resized the pipe since EV_ADD.
                e.capacity = os::pipe_size(fd).unwrap_or(0).max(0) as u32;
                space = i64::from(e.capacity) - os::fionread(fd);
            }
            if gone {
                return Some((EV_EOF, 0, 0));
            }
            room.then_some((0, 0, space.max(lowat)))
        }
        Kind::File | Kind::Other | Kind::Kqueue | Kind::Unused => {
            if gone {
                return Some((EV_EOF, 0, 0));
            }
            writable.then_some((0, 0, 0))
        }
    }
}
