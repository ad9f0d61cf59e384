//! EVFILT_PROC (FreeBSD `filt_procattach` / `filt_proc`): a pidfd per
//! process, which polls readable when the process exits, whether it is our
//! child or not.
//!
//! On exit FreeBSD reports NOTE_EXIT (if the knote asked for it) with
//! `data` = the wait status, flags EV_EOF | EV_ONESHOT, and the knote is
//! gone; a knote that did not ask for NOTE_EXIT is dropped silently
//! (EV_DROP). FreeBSD decides which at exit time, by the notes asked for
//! then; kq decides when it first looks at the exited pidfd, and at the
//! latest before a change replaces the notes (`catch_up_proc`), which is
//! the same answer: an exit while disabled is reported by an EV_ENABLE
//! whose `fflags` are 0. NOTE_FORK, NOTE_EXEC and NOTE_TRACK have no Linux source kq
//! can use (the process connector needs privileges): a change asking for
//! any of them fails with ENOTSUP.
//!
//! The wait status: a child's is read without reaping it (waitid with
//! WNOWAIT), so the program can still waitpid() it. A process that is not
//! our child: the status the kernel keeps once it was reaped
//! (PIDFD_GET_INFO, Linux 6.15 and later), or, while it is a zombie, its
//! /proc/PID/stat; `data` is 0 when neither can be had.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_int;

use crate::linux::abi::*;
use crate::linux::filter::{any_ident, FilterKind, FilterOps};
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::os;
use crate::linux::queue::{set_registered, Out, Token};

pub(crate) struct Proc {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// The pidfd is in the epoll set (the knote is enabled).
    pub(crate) registered: bool,
    /// The exit, once recorded (FreeBSD's `filt_proc` at exit time): the
    /// notes it reported (NOTE_EXIT if the knote asked for it then, else
    /// 0, which drops the knote) and the wait status.
    exit: Option<(u32, i64)>,
    pub(crate) knote: Knote,
}

impl Proc {
    pub(crate) fn fd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }
}

/// Whether a pidfd says its process has exited.
fn exited(pidfd: RawFd) -> bool {
    os::poll(pidfd) & libc::EPOLLIN as u32 != 0
}

/// The wait status of an exited process (see the module docs), 0 when it
/// cannot be had.
fn exit_status(pid: libc::pid_t, pidfd: RawFd) -> i64 {
    if let Ok(Some(status)) = os::child_status(pidfd) {
        return status.into();
    }
    if let Some(status) = os::pidfd_exit_status(pidfd) {
        return status.into();
    }
    // A zombie not reaped yet: its /proc entry still has the status. It is
    // ours if the process still exists after the read (a pid is not reused
    // before its zombie is reaped).
    if let Some(status) = zombie_status(pid) {
        if os::pidfd_alive(pidfd) {
            return status.into();
        }
    }
    // Reaped in the meantime: the kernel may keep the status now.
    os::pidfd_exit_status(pidfd).map_or(0, i64::from)
}

/// The notes Linux cannot report: forks and execs of a process reach
/// userspace only through the process connector (a netlink socket that
/// needs CAP_NET_ADMIN) or ptrace, neither of which a library may take
/// over. A knote asking for them is refused (ENOTSUP), so the program finds
/// out and can ask for NOTE_EXIT alone, rather than waiting for ever.
const UNSUPPORTED: u32 = NOTE_FORK | NOTE_EXEC | NOTE_TRACK;

fn refuse_unsupported(fflags: u32) -> io::Result<()> {
    if fflags & UNSUPPORTED != 0 {
        return Err(os::err(libc::ENOTSUP));
    }
    Ok(())
}

/// What FreeBSD's `filt_proc` records when the process exits, for a knote
/// whose notes are `sfflags`: NOTE_EXIT and the wait status if it asked
/// for NOTE_EXIT, else nothing.
fn exit_record(pid: libc::pid_t, pidfd: RawFd, sfflags: u32) -> (u32, i64) {
    let fflags = sfflags & NOTE_EXIT;
    let data = if fflags != 0 {
        exit_status(pid, pidfd)
    } else {
        0
    };
    (fflags, data)
}

/// The `exit_code` field (the 52nd) of /proc/PID/stat: the wait status of
/// a process that has exited (Linux 3.5 and later).
fn zombie_status(pid: libc::pid_t) -> Option<c_int> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count the fields after its closing parenthesis, from field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(52 - 3)?.parse().ok()
}

/// EVFILT_PROC: a pidfd per knote.
pub(crate) static OPS: FilterOps = FilterOps {
    check_ident: any_ident,
    attach: |t, r, knote, _, _| t.attach_proc(r.ident, knote),
    // Not FreeBSD's (its proc filter has no f_touch): the refusal of what
    // Linux cannot report applies to a modification too.
    touch: Some(|_, _, k, change| {
        refuse_unsupported(change.fflags)?;
        k.sfflags = change.fflags;
        k.sdata = change.data as i64;
        Ok(())
    }),
    catch_up: |t, r| t.catch_up_proc(r.ident),
    detach: |t, r| t.delete_proc(r.ident),
    arm: |t, r, _| t.arm_proc(r.ident),
    deliver: |t, r, out| t.deliver_proc(r.ident, out),
};

impl Table {
    /// `filt_procattach`: a pidfd for the process (ESRCH if there is none).
    fn attach_proc(&mut self, ident: usize, mut knote: Knote) -> io::Result<()> {
        refuse_unsupported(knote.sfflags)?;
        let pid = match libc::pid_t::try_from(ident) {
            Ok(pid) if pid > 0 => pid,
            _ => return Err(os::err(libc::ESRCH)),
        };
        // FreeBSD: EV_CLEAR is implied.
        knote.flags |= EV_CLEAR;
        let pidfd = os::pidfd_open(pid)?;
        if knote.sfflags & NOTE_EXIT == 0 && exited(pidfd.as_raw_fd()) {
            // Without NOTE_EXIT FreeBSD looks among live processes only: a
            // zombie is not found.
            return Err(os::err(libc::ESRCH));
        }
        self.proc_by_fd.insert(pidfd.as_raw_fd(), ident);
        self.procs.insert(
            ident,
            Proc {
                pid,
                pidfd,
                registered: false,
                exit: None,
                knote,
            },
        );
        Ok(())
    }

    /// The pidfd wakes the queue exactly while the knote is enabled (an
    /// exit meanwhile is reported on EV_ENABLE: the pidfd stays readable).
    fn arm_proc(&mut self, ident: usize) -> io::Result<()> {
        let epfd = self.epfd;
        let Some(p) = self.procs.get_mut(&ident) else {
            return Ok(());
        };
        let want = !p.knote.disabled;
        let fd = p.fd();
        set_registered(epfd, fd, Token::Proc(fd), &mut p.registered, want)
    }

    pub(crate) fn delete_proc(&mut self, ident: usize) {
        self.unqueue(KnoteRef::new(FilterKind::Proc, ident));
        if let Some(p) = self.procs.remove(&ident) {
            self.proc_by_fd.remove(&p.fd());
            // Closing the pidfd also takes it out of the epoll set.
        }
    }

    /// Before a change replaces the knote's notes: an exit that already
    /// happened is recorded with the notes it was registered for, as
    /// FreeBSD records it at exit time (the pidfd of a disabled knote is
    /// not in the epoll set, so nobody has looked yet).
    fn catch_up_proc(&mut self, ident: usize) {
        if let Some(p) = self.procs.get_mut(&ident) {
            if p.exit.is_none() && exited(p.fd()) {
                p.exit = Some(exit_record(p.pid, p.fd(), p.knote.sfflags));
            }
        }
    }

    pub(crate) fn deliver_proc(&mut self, ident: usize, out: &mut Out) {
        let Some(p) = self.procs.get(&ident) else {
            return;
        };
        if p.knote.disabled || p.knote.queued || !exited(p.fd()) {
            return;
        }
        let r = KnoteRef::new(FilterKind::Proc, ident);
        if !out.room() {
            self.queue(r);
            return;
        }
        let k = p.knote;
        let (fflags, data) = p
            .exit
            .unwrap_or_else(|| exit_record(p.pid, p.fd(), k.sfflags));
        if fflags == 0 {
            // Nothing it asked for happened: FreeBSD drops it (EV_DROP).
            self.delete_proc(ident);
            return;
        }
        out.push(k.event(ident, FilterKind::Proc, EV_EOF | EV_ONESHOT, fflags, data));
        self.after_delivery(r, k.flags | EV_ONESHOT, false);
    }
}
