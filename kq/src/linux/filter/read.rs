//! EVFILT_READ on descriptors epoll watches: what FreeBSD's `filt_soread`
//! and the pipe filter compute, from the events epoll reported and one
//! cheap query for `data`. (Regular files are `fd::Table::deliver_file`'s.)

use std::os::fd::RawFd;

use crate::linux::abi::*;
use crate::linux::fd::{note_socket_error, FdEntry, Kind};
use crate::linux::knote::Knote;
use crate::linux::os;

/// EVFILT_READ. Returns (extra flags, fflags, data) when the knote is true.
#[inline(always)]
pub(crate) fn filt_read(
    e: &mut FdEntry,
    fd: RawFd,
    k: &Knote,
    revents: u32,
) -> Option<(Flags, u32, i64)> {
    let hup = revents & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0;
    let err = revents & libc::EPOLLERR as u32 != 0;
    let readable = revents & libc::EPOLLIN as u32 != 0;
    match e.kind {
        Kind::TcpListener => {
            if !readable && !err {
                return None;
            }
            let queued = os::tcp_accept_queue(fd).map_or(1, i64::from);
            // Zero: another thread accepted in between; nothing to report.
            (queued > 0).then_some((0, 0, queued))
        }
        Kind::OtherListener => readable.then_some((0, 0, 1)),
        Kind::AlwaysReady => Some((0, 0, 0)),
        Kind::Kqueue => {
            // FreeBSD `filt_kqueue`: true while the queue has events
            // pending, `data` = how many (`kq_count`).
            if !readable {
                return None;
            }
            let n = crate::linux::queue::Kq::pending_events(fd);
            (n > 0).then_some((0, 0, n))
        }
        Kind::Dgram => {
            // A datagram (even an empty one) or a pending error makes the
            // socket readable; the error stays for recv() to return, as a
            // temporary UDP error does on BSD (no EV_EOF).
            let n = os::fionread(fd);
            (readable || err).then_some((0, 0, n))
        }
        Kind::Stream => {
            if (hup || err) && stream_is_unconnected(e, fd, revents) {
                return None;
            }
            let n = os::fionread(fd);
            if e.eof {
                // Not with an error pending: recv(MSG_PEEK) would return
                // it, and Linux clears it then, as on reading SO_ERROR.
                let n = if n == 0 && readable && !err {
                    bytes_past_urgent_mark(e, fd)
                } else {
                    n
                };
                return Some((EV_EOF, e.so_error, n));
            }
            // NOTE_LOWAT: the registration is edge-triggered then
            // (update_fd), so arrivals below the mark cost one look each.
            let lowat = if k.sfflags & NOTE_LOWAT != 0 {
                k.sdata.max(1)
            } else {
                1
            };
            if n >= lowat && readable {
                return Some((0, 0, n));
            }
            if n == 0 && readable {
                // Readable, but FIONREAD says 0: an urgent mark.
                let n = bytes_past_urgent_mark(e, fd);
                return (n >= lowat).then_some((0, 0, n));
            }
            None
        }
        Kind::Pipe => {
            // A pipe's EOF (no writer left) ends when a new writer opens it.
            let n = os::fionread(fd);
            if hup {
                return Some((EV_EOF, 0, n));
            }
            // NOTE_LOWAT is not applied here: nothing would stop a level
            // registration from waking us below the mark for ever (a
            // documented limitation; sockets enforce it in the kernel).
            (n >= 1 && readable).then_some((0, 0, n))
        }
        Kind::File | Kind::Other | Kind::Unused => {
            let n = os::fionread(fd);
            if hup || err {
                return Some((EV_EOF, 0, n));
            }
            readable.then_some((0, 0, n))
        }
    }
}

/// A stream socket epoll calls readable while FIONREAD says 0. TCP's
/// FIONREAD stops at an urgent mark (a byte sent with MSG_OOB), though
/// read() skips the urgent byte and goes on: count what read() would get.
/// BSD keeps the urgent byte out of the stream, so this is its `data`.
/// If even that finds nothing while poll() still says readable, the socket
/// would wake a level registration for ever: it turns edge-triggered.
#[cold]
fn bytes_past_urgent_mark(e: &mut FdEntry, fd: RawFd) -> i64 {
    let n = os::stream_bytes(fd);
    if n == 0 && !e.eof && os::poll(fd) & libc::EPOLLIN as u32 != 0 {
        e.edge_only = true;
    }
    n
}

/// A stream socket's hang-up, seen by the READ filter. Linux calls a
/// stream socket that is not connected (yet) hung up (EPOLLHUP without
/// EPOLLRDHUP or EPOLLERR); BSD reports nothing until it connects, and the
/// end of the stream only after it. Returns true for that case (nothing to
/// report; the entry turns edge-triggered so epoll does not report it on
/// every wait). Otherwise latches EOF (and the socket error) and returns
/// false.
#[cold]
fn stream_is_unconnected(e: &mut FdEntry, fd: RawFd, revents: u32) -> bool {
    if revents & (libc::EPOLLRDHUP | libc::EPOLLERR) as u32 == 0 {
        e.edge_only = true;
        return true;
    }
    if !e.eof || revents & libc::EPOLLERR as u32 != 0 {
        // The socket's error, once per EOF and again for a later one: it
        // may be 0 here because another kqueue read it first.
        note_socket_error(e, fd);
    }
    e.eof = true;
    false
}
