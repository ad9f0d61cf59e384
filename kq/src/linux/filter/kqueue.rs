//! A kqueue watched by a kqueue (FreeBSD `filt_kqueue`): EVFILT_READ is
//! true while the watched queue has events pending, `data` = how many
//! (`kq_count`, the knotes on its active list).
//!
//! FreeBSD counts the knotes it queued as their events happened. Here the
//! kernel holds most of them, in epoll's ready list, which cannot be read
//! without taking edge-triggered events: so a knote counts when it waits in
//! the userspace queue, or when its Linux source (the descriptor, timerfd,
//! signalfd, pidfd, inotify) polls ready, one `poll()` for all of them.
//! An `EV_CLEAR` knote whose condition still holds after it was reported
//! counts too (FreeBSD: only once something new happens).

use std::os::fd::{AsRawFd, RawFd};

use crate::linux::fd::Kind;
use crate::linux::knote::{Knote, Table};
use crate::linux::os;

/// What a polled source stands for.
enum Source {
    /// A descriptor's READ and WRITE knotes (whether each counts).
    Fd { read: bool, write: bool },
    /// One knote (timer, signal, process) or the inotify descriptor.
    One,
}

/// A knote that could count now: enabled, and not already counted as
/// queued.
fn waiting(k: &Option<Knote>) -> bool {
    k.is_some_and(|k| !k.disabled && !k.queued)
}

impl Table {
    /// The number of knotes with an event to report.
    pub(crate) fn active_count(&self) -> i64 {
        let mut n = self.pending.len() as i64;
        let mut polled: Vec<(libc::pollfd, Source)> = Vec::new();
        let mut push = |fd: RawFd, source: Source| {
            let events = libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP;
            polled.push((
                libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                },
                source,
            ));
        };
        for (fd, e) in self.fds.iter().enumerate() {
            if e.registered == 0 || matches!(e.kind, Kind::File | Kind::AlwaysReady) {
                continue; // those are evaluated in the pending queue
            }
            let (read, write) = (waiting(&e.read), waiting(&e.write));
            if read || write {
                push(fd as RawFd, Source::Fd { read, write });
            }
        }
        let one = |k: &Knote, registered: bool| registered && !k.disabled && !k.queued;
        for t in self.timers.values().filter(|t| one(&t.knote, t.registered)) {
            push(t.fd(), Source::One);
        }
        for p in self.procs.values().filter(|p| one(&p.knote, p.registered)) {
            push(p.fd(), Source::One);
        }
        if let Some(ino) = &self.inotify {
            // Events not read yet: at least one knote's.
            push(ino.fd(), Source::One);
        }
        let mut fds: Vec<libc::pollfd> = polled.iter().map(|(p, _)| *p).collect();
        os::poll_many(&mut fds);
        for (p, (_, source)) in fds.iter().zip(&polled) {
            let ev = p.revents;
            let hup_or_err = ev & (libc::POLLHUP | libc::POLLERR) != 0;
            match source {
                Source::Fd { read, write } => {
                    let readable = ev & (libc::POLLIN | libc::POLLRDHUP) != 0 || hup_or_err;
                    let writable = ev & libc::POLLOUT != 0 || hup_or_err;
                    n += i64::from(*read && readable) + i64::from(*write && writable);
                }
                Source::One => n += i64::from(ev & libc::POLLIN != 0),
            }
        }
        // A signal knote has a delivery to report when another queue read
        // one for it (its mail eventfd) or nobody read it yet (the
        // process's signalfd, shared by every knote for the signal).
        let ready = |fd: RawFd| os::poll(fd) & libc::EPOLLIN as u32 != 0;
        n + self
            .signals
            .values()
            .filter(|s| one(&s.knote, s.registered))
            .filter(|s| ready(s.mail.as_raw_fd()) || ready(s.sfd))
            .count() as i64
    }
}
