//! Descriptor knotes: EVFILT_READ and EVFILT_WRITE share one entry per
//! descriptor number, because epoll takes a descriptor only once. This
//! module keeps that entry in line with its knotes (one epoll registration,
//! or none for files epoll refuses), recognises a number that was closed
//! (and maybe reused) since, and runs the read and write filters on what
//! epoll reports.
//!
//! close() must end a descriptor's knotes (kqueue(2)), but Linux does not
//! tell anyone about a close(). So wherever kq itself decides that a knote
//! is true (the pending queue, regular files, level knotes on an
//! edge-triggered registration), it first checks that the number still
//! names the file the knote was added for; a number that does not is
//! treated as closed and its knotes are dropped, never reported. What epoll
//! reports needs no check: epoll forgets a file when its last descriptor is
//! closed (the one exception, a file a dup() keeps open, is `rebuild`'s).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard};

use libc::c_int;

use super::abi::*;
use super::filter::read::filt_read;
use super::filter::write::filt_write;
use super::filter::{nothing_to_catch_up, FilterKind, FilterOps};
use super::knote::{Knote, KnoteRef, Table};
use super::os;
use super::queue::{Kq, Out, Token};

/// What a descriptor is, decided once at EV_ADD: it picks how `data` and
/// EOF are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    #[default]
    Unused,
    /// A listening TCP socket: `data` is the accept queue length.
    TcpListener,
    /// A listening socket of another family (AF_UNIX): Linux cannot tell
    /// the queue length, so `data` is 1.
    OtherListener,
    /// A connected (or connecting) stream socket.
    Stream,
    /// A datagram socket.
    Dgram,
    Pipe,
    /// A regular file: FreeBSD's vnode filters (readable while the offset
    /// is before the end), woken by inotify when the file changes.
    File,
    /// Something else epoll refuses (/dev/null): always ready.
    AlwaysReady,
    /// Another kqueue: `data` is how many events it has pending (FreeBSD
    /// `filt_kqueue`).
    Kqueue,
    /// Anything else epoll accepts: terminals, eventfds, another kqueue.
    Other,
}

/// The state kept per descriptor: both of its knotes share one epoll
/// registration, since epoll takes a descriptor only once.
#[derive(Clone, Debug, Default)]
pub(crate) struct FdEntry {
    /// Which file this is (st_dev, st_ino): when the number is closed and
    /// reused, the entry is recognised as stale.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) kind: Kind,
    /// The events currently registered with epoll (0: not registered); set
    /// through `set_registered`.
    pub(crate) registered: u32,
    /// Level knotes of this descriptor are re-checked by kq after each
    /// delivery: its registration is edge-triggered, or it has none (kept
    /// with `registered`, so the per-event path tests one flag).
    pub(crate) rechecked: bool,
    /// EOF seen on a socket (it does not go away).
    pub(crate) eof: bool,
    /// Keep the epoll entry edge-triggered, level knotes re-checked by kq:
    /// a stream socket seen unconnected (Linux reports a hang-up for it), or
    /// one that epoll keeps calling readable with nothing to read.
    pub(crate) edge_only: bool,
    /// This entry counts as a holder of its socket's shared error
    /// (`note_socket_error`).
    pub(crate) error_shared: bool,
    /// The socket error read when EOF was seen (Linux clears SO_ERROR on
    /// reading, so it is kept here for later events).
    pub(crate) so_error: u32,
    /// Send-buffer or pipe capacity, for EVFILT_WRITE's `data`.
    pub(crate) capacity: u32,
    /// The inotify watch of a regular file (-1: none).
    pub(crate) wd: i32,
    /// The scan round (`Table::sweep`) in which epoll last reported it.
    pub(crate) seen: u32,
    pub(crate) read: Option<Knote>,
    pub(crate) write: Option<Knote>,
}

// The promise in the crate docs: a descriptor's state, both knotes
// included, stays under 128 bytes of user memory.
const _: () = assert!(std::mem::size_of::<FdEntry>() <= 128);

impl FdEntry {
    pub(crate) fn used(&self) -> bool {
        self.kind != Kind::Unused
    }

    /// Whether `st` describes the file this entry was made for.
    pub(crate) fn is(&self, st: &libc::stat) -> bool {
        (self.dev, self.ino) == (st.st_dev, st.st_ino)
    }

    pub(crate) fn set_registered(&mut self, events: u32) {
        self.registered = events;
        self.rechecked = events & libc::EPOLLET as u32 != 0 || self.kind == Kind::AlwaysReady;
    }

    #[inline(always)]
    pub(crate) fn knote(&mut self, filter: FilterKind) -> &mut Option<Knote> {
        if filter == FilterKind::Read {
            &mut self.read
        } else {
            &mut self.write
        }
    }

    /// Lets go of what the entry holds outside the table (its share of a
    /// socket error).
    pub(crate) fn release(&mut self) {
        if std::mem::take(&mut self.error_shared) {
            let mut all = socket_errors();
            let key = (self.dev, self.ino);
            if let Some(shared) = all.get_mut(&key) {
                shared.holders -= 1;
                if shared.holders == 0 {
                    all.remove(&key);
                }
            }
        }
    }
}

pub(crate) fn is_socket(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::TcpListener | Kind::OtherListener | Kind::Stream | Kind::Dgram
    )
}

fn new_fd_entry(fd: RawFd, st: &libc::stat) -> FdEntry {
    let mut e = FdEntry {
        dev: st.st_dev,
        ino: st.st_ino,
        wd: -1,
        ..Default::default()
    };
    let opt = |name| os::getsockopt_int(fd, libc::SOL_SOCKET, name).unwrap_or(-1);
    e.kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => {
            let ty = opt(libc::SO_TYPE);
            if opt(libc::SO_ACCEPTCONN) == 1 {
                let domain = opt(libc::SO_DOMAIN);
                if ty == libc::SOCK_STREAM && (domain == libc::AF_INET || domain == libc::AF_INET6)
                {
                    Kind::TcpListener
                } else {
                    Kind::OtherListener
                }
            } else if ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET {
                Kind::Stream
            } else {
                Kind::Dgram
            }
        }
        libc::S_IFIFO => {
            e.capacity = os::pipe_size(fd).unwrap_or(0).max(0) as u32;
            Kind::Pipe
        }
        libc::S_IFREG => Kind::File,
        _ => Kind::Other,
    };
    e
}

/// What is shared by every kqueue watching one socket: the error Linux
/// hands out only once (reading SO_ERROR clears it).
struct SharedError {
    error: u32,
    /// Entries (in any kqueue) that saw this socket's EOF and still exist.
    holders: u32,
}

fn socket_errors() -> MutexGuard<'static, BTreeMap<(u64, u64), SharedError>> {
    static ERRORS: Mutex<BTreeMap<(u64, u64), SharedError>> = Mutex::new(BTreeMap::new());
    ERRORS.lock().unwrap_or_else(|p| p.into_inner())
}

/// EOF on a socket: finds its pending error and keeps it. FreeBSD's
/// filter only looks at `so_error`; on Linux reading `SO_ERROR` clears it
/// (and so does `recv(MSG_PEEK)`), so the program's next read() would miss
/// it. A TCP socket's error is told without touching it
/// (`tcp_error_untouched`); only for other sockets (AF_UNIX) is `SO_ERROR`
/// read. The error belongs to the socket, so it is shared with the other
/// kqueues watching it: whichever reads it first leaves it for the others.
#[cold]
pub(crate) fn note_socket_error(e: &mut FdEntry, fd: RawFd) {
    let mut all = socket_errors();
    let shared = all.entry((e.dev, e.ino)).or_insert(SharedError {
        error: 0,
        holders: 0,
    });
    // A TCP connection has one error, once it is closed: told once, it is
    // the one every later look (and every other kqueue) reports.
    let read = match tcp_error_untouched(e, fd, shared.error) {
        Some(error) => error,
        None => os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0),
    };
    if !e.error_shared {
        e.error_shared = true;
        shared.holders += 1;
    }
    if read > 0 {
        shared.error = read as u32;
    }
    e.so_error = shared.error;
    e.eof = true;
}

/// Linux's `TCP_CLOSE` state (include/net/tcp_states.h; libc lacks it).
const TCP_CLOSE: u8 = 7;

/// The pending error of a TCP socket, told without clearing it: poll()
/// says whether there is one (POLLERR is Linux's `sk_err` set), and
/// `TCP_INFO` which, from the state the error left the connection in. A
/// reset (Linux's `tcp_reset`) or a timeout (`tcp_write_err`) closes it
/// (`TCP_CLOSE`): a timeout left retransmissions counted (ETIMEDOUT); a
/// reset of a connection that never carried a segment both ways, no round
/// trip measured, was a refused connect (ECONNREFUSED); one after the
/// peer's FIN (CLOSE_WAIT) is EPIPE; any other, ECONNRESET. None when the
/// socket is not TCP, or its state says nothing (then `SO_ERROR` is read).
/// `known`: the error already told for this socket (0: none yet).
fn tcp_error_untouched(e: &FdEntry, fd: RawFd, known: u32) -> Option<c_int> {
    let mut info = os::tcp_info(fd).ok()?;
    if os::poll(fd) & libc::EPOLLERR as u32 == 0 {
        return Some(0);
    }
    if info.tcpi_state != TCP_CLOSE {
        // Linux sets the error, then closes the connection, under the
        // socket's lock; TCP_INFO reads the state before it takes that
        // lock, so the first call may have seen the state of a moment
        // before. The second sees it after the first waited for the lock.
        info = os::tcp_info(fd).ok()?;
        if info.tcpi_state != TCP_CLOSE {
            return None;
        }
    }
    Some(if known != 0 {
        known as c_int
    } else if info.tcpi_retransmits > 0 || info.tcpi_backoff > 0 {
        libc::ETIMEDOUT
    } else if info.tcpi_rtt == 0 {
        libc::ECONNREFUSED
    } else if e.eof && e.so_error == 0 {
        libc::EPIPE
    } else {
        libc::ECONNRESET
    })
}

/// EVFILT_READ and EVFILT_WRITE, both `f_isfd`: their knotes share the
/// descriptor's entry.
pub(crate) static OPS: FilterOps = FilterOps {
    check_ident: |t, change| t.descriptor_of(change).map(|(_, st)| Some(st)),
    attach: |t, r, knote, _, st| t.attach_fd_knote(r, knote, st),
    // FreeBSD's descriptor filters have no f_touch.
    touch: None,
    catch_up: nothing_to_catch_up,
    detach: |t, r| t.delete_fd_knote(r.filter, r.ident as RawFd),
    arm: |t, r, change| t.arm_fd(r, change),
    deliver: |t, r, out| t.deliver_queued_fd(r.filter, r.ident as RawFd, out),
};

impl Table {
    /// The descriptor a change of a descriptor filter names, and what it
    /// is now. Checked before the knote is looked up, so EV_DELETE of a
    /// closed one is EBADF, as on FreeBSD; knotes recorded for a file the
    /// number no longer names are dropped first.
    pub(crate) fn descriptor_of(&mut self, change: &kevent) -> io::Result<(RawFd, libc::stat)> {
        let fd = match RawFd::try_from(change.ident) {
            Ok(fd) if fd >= 0 => fd,
            _ => return Err(os::err(libc::EBADF)),
        };
        if fd == self.epfd {
            return Err(os::err(libc::EINVAL)); // a kqueue cannot watch itself
        }
        match os::fstat(fd) {
            Ok(st) => {
                self.forget_if_closed(fd, &st);
                Ok((fd, st))
            }
            Err(e) => {
                // Closed: whatever we knew about this number is stale.
                self.drop_fd(fd);
                self.drop_vnode(fd);
                Err(e)
            }
        }
    }

    /// EVFILT_READ / EVFILT_WRITE `f_attach`: the descriptor's entry
    /// (made for the first of its knotes), what the descriptor refuses, and
    /// the knote.
    fn attach_fd_knote(
        &mut self,
        r: KnoteRef,
        knote: Knote,
        st: Option<&libc::stat>,
    ) -> io::Result<()> {
        let Some(st) = st else {
            return Err(os::err(libc::EBADF)); // check_ident found no descriptor
        };
        let fd = r.ident as RawFd;
        let idx = r.ident;
        if self.fds.len() <= idx {
            self.fds.resize_with(idx + 1, FdEntry::default);
        }
        let fresh = !self.fds[idx].used();
        if fresh {
            self.fds[idx] = new_fd_entry(fd, st);
        }
        if let Err(e) = self.attach_fd(r.filter, fd, fresh) {
            if fresh {
                self.clear_fd(fd);
            }
            return Err(e);
        }
        *self.fds[idx].knote(r.filter) = Some(knote);
        Ok(())
    }

    /// After a READ or WRITE knote was added or changed: its descriptor's
    /// one epoll registration is brought in line with both knotes.
    fn arm_fd(&mut self, r: KnoteRef, change: Option<&kevent>) -> io::Result<()> {
        let fd = r.ident as RawFd;
        let Some(e) = self.fds.get_mut(r.ident) else {
            return Ok(());
        };
        if r.filter == FilterKind::Write
            && change.is_some_and(|c| c.flags & EV_ADD != 0)
            && matches!(e.kind, Kind::Stream | Kind::Dgram)
        {
            // EVFILT_WRITE's `data` is the send buffer's free space, so its
            // size is read when a write knote is added (again on a re-add,
            // in case SO_SNDBUF changed); a read-only client costs nothing.
            e.capacity = super::filter::write::sndbuf(fd);
        }
        self.update_fd(fd)
    }

    /// What a descriptor refuses, and what a regular file needs, before a
    /// new knote is attached (FreeBSD's `f_attach`).
    fn attach_fd(&mut self, filter: FilterKind, fd: RawFd, fresh: bool) -> io::Result<()> {
        if fresh && self.fds[fd as usize].kind == Kind::Other && Kq::is_kqueue(fd) {
            self.fds[fd as usize].kind = Kind::Kqueue;
        }
        let kind = self.fds[fd as usize].kind;
        if filter == FilterKind::Write {
            if kind == Kind::Pipe && os::poll(fd) & libc::EPOLLERR as u32 != 0 {
                // The write end of a pipe whose readers are gone (Linux
                // polls it as an error): FreeBSD's pipe_kqfilter refuses
                // the knote with EPIPE.
                return Err(os::err(libc::EPIPE));
            }
            if kind == Kind::Kqueue {
                // FreeBSD's kqueue_kqfilter: a kqueue is only readable.
                return Err(os::err(libc::EINVAL));
            }
        }
        if kind == Kind::File && fresh {
            // Appends by other writers must wake a reader at the end.
            self.fds[fd as usize].wd = self.watch(fd)?;
        }
        Ok(())
    }

    /// Drops the knotes of `fd` recorded for a file the number no longer
    /// names (`st` is what it names now): it was closed since.
    pub(crate) fn forget_if_closed(&mut self, fd: RawFd, st: &libc::stat) {
        if let Some(e) = self.fds.get(fd as usize) {
            if e.used() && !e.is(st) {
                // The number was closed and now names another file: its old
                // knotes died with the close() (epoll dropped the
                // registration with the last reference).
                self.drop_fd(fd);
            } else if e.used()
                && e.registered != 0
                && !still_registered(self.epfd, fd, e.registered)
            {
                // Same (dev, ino) but not the file epoll watches: the number
                // was closed and reopened on a file fstat cannot tell apart
                // (every eventfd, epoll and timerfd shares one inode; a FIFO
                // keeps its own). Its knotes died with the close(), as on BSD.
                self.drop_fd(fd);
            }
        }
        if self.vnodes.get(&fd).is_some_and(|v| !v.is(st)) {
            self.drop_vnode(fd);
        }
    }

    /// Deletes one knote of a descriptor, known to exist.
    pub(crate) fn delete_fd_knote(&mut self, filter: FilterKind, fd: RawFd) {
        self.unqueue(KnoteRef::new(filter, fd as usize));
        let idx = fd as usize;
        *self.fds[idx].knote(filter) = None;
        let _ = self.update_fd(fd);
        if self.fds[idx].read.is_none() && self.fds[idx].write.is_none() {
            self.clear_fd(fd);
        }
    }

    /// Brings the epoll registration of `fd` in line with its knotes, and
    /// queues knotes that kq evaluates itself.
    pub(crate) fn update_fd(&mut self, fd: RawFd) -> io::Result<()> {
        let e = &mut self.fds[fd as usize];
        if matches!(e.kind, Kind::File | Kind::AlwaysReady) {
            // FreeBSD runs the filter when a knote is added or changed.
            self.queue_fd(fd);
            return Ok(());
        }
        let mut events = 0u32;
        let mut edge = e.edge_only;
        if let Some(k) = e.read.filter(|k| !k.disabled) {
            events |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            edge |= k.flags & EV_CLEAR != 0;
            // NOTE_LOWAT on a socket: epoll would report every byte, and a
            // level registration would spin below the mark. Edge-triggered,
            // each arrival wakes us once and the filter compares `data`
            // with the mark; a level knote that is true is re-checked after
            // delivery (deliver_fd), so it stays level for the caller. The
            // socket's own SO_RCVLOWAT is left alone: it belongs to the
            // program, and NOTE_LOWAT is per knote on BSD.
            edge |= k.sfflags & NOTE_LOWAT != 0 && is_socket(e.kind);
        }
        if let Some(k) = e.write.filter(|k| !k.disabled) {
            events |= libc::EPOLLOUT as u32;
            edge |= k.flags & EV_CLEAR != 0;
            // A mark the buffer can never reach: only EOF can fire it, and
            // a level registration would report the room for ever.
            edge |= super::filter::write::mark_out_of_reach(e, &k);
        }
        if edge {
            events |= libc::EPOLLET as u32;
        }
        let op = match (e.registered, events) {
            (0, 0) => return Ok(()),
            (_, 0) => libc::EPOLL_CTL_DEL,
            (0, _) => libc::EPOLL_CTL_ADD,
            (r, ev) if r == ev => return Ok(()),
            _ => libc::EPOLL_CTL_MOD,
        };
        let token = Token::Fd(fd).encode();
        match os::epoll_ctl(self.epfd, op, fd, events, token) {
            Ok(()) => {
                e.set_registered(events);
                Ok(())
            }
            Err(err) => match (os::errno_of(&err), op) {
                (libc::EPERM, libc::EPOLL_CTL_ADD) => {
                    // /dev/null and the like cannot be polled: they are
                    // always ready, as BSD's filters report them.
                    e.kind = Kind::AlwaysReady;
                    e.set_registered(0);
                    self.queue_fd(fd);
                    Ok(())
                }
                (libc::ENOENT | libc::EBADF, libc::EPOLL_CTL_DEL) => {
                    e.set_registered(0); // already gone with the file
                    Ok(())
                }
                (libc::ENOENT, libc::EPOLL_CTL_MOD) => {
                    // The registration vanished with a close() of every
                    // reference: register afresh.
                    e.set_registered(0);
                    os::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, events, token)?;
                    e.set_registered(events);
                    Ok(())
                }
                _ => Err(err),
            },
        }
    }

    /// Queues the enabled knotes of `fd` for kq to evaluate.
    pub(crate) fn queue_fd(&mut self, fd: RawFd) {
        self.queue(KnoteRef::new(FilterKind::Read, fd as usize));
        self.queue(KnoteRef::new(FilterKind::Write, fd as usize));
    }

    /// Forgets a closed number's READ and WRITE knotes (its registration,
    /// if any, is removed).
    pub(crate) fn drop_fd(&mut self, fd: RawFd) {
        let Some(e) = self.fds.get(fd as usize) else {
            return;
        };
        if !e.used() {
            return;
        }
        if e.registered != 0 {
            // Usually gone already (the file was closed); if the number now
            // names a file we never registered, epoll says ENOENT.
            let _ = os::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
        self.clear_fd(fd);
    }

    /// The one place an entry goes: out of the pending queue, its watch and
    /// its share of a socket error released.
    pub(crate) fn clear_fd(&mut self, fd: RawFd) {
        let idx = fd as usize;
        self.unqueue(KnoteRef::new(FilterKind::Read, idx));
        self.unqueue(KnoteRef::new(FilterKind::Write, idx));
        let mut e = std::mem::take(&mut self.fds[idx]);
        if e.wd >= 0 {
            self.unwatch(fd, e.wd);
        }
        e.release();
    }

    /// Whether `fd` still names the file its entry was made for. For a
    /// descriptor in the epoll set, epoll itself says (adding it again is
    /// EEXIST exactly while the same open file is registered under that
    /// number: exact even for files fstat cannot tell apart); otherwise its
    /// (st_dev, st_ino), whose stat is returned for the filter's use.
    fn check_fd(&self, fd: RawFd) -> Result<Option<libc::stat>, ()> {
        let e = &self.fds[fd as usize];
        if e.registered != 0 {
            let token = Token::Fd(fd).encode();
            return match os::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, e.registered, token) {
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => Ok(None),
                Ok(()) => {
                    // Another file under the number: undo, it is not ours.
                    let _ = os::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
                    Err(())
                }
                Err(_) => Err(()),
            };
        }
        match os::fstat(fd) {
            Ok(st) if e.is(&st) => Ok(Some(st)),
            _ => Err(()),
        }
    }

    /// A descriptor knote taken from the pending queue: checked against
    /// close(), then evaluated like an epoll event.
    pub(crate) fn deliver_queued_fd(&mut self, filter: FilterKind, fd: RawFd, out: &mut Out) {
        let st = match self.check_fd(fd) {
            Ok(st) => st,
            Err(()) => {
                // Closed (and maybe reused) since: its knotes died with it.
                self.drop_fd(fd);
                return;
            }
        };
        let kind = self.fds[fd as usize].kind;
        match (kind, st) {
            (Kind::File, Some(st)) => self.deliver_file(filter, fd, &st, out),
            (Kind::AlwaysReady, _) => {
                self.deliver_fd(fd, filter, (libc::EPOLLIN | libc::EPOLLOUT) as u32, out)
            }
            _ => {
                let revents = os::poll(fd);
                self.deliver_fd(fd, filter, revents, out);
            }
        }
    }

    /// A new round of epoll_wait chunks in the scan; returns its number.
    pub(crate) fn next_sweep(&mut self) -> u32 {
        self.sweep = self.sweep.wrapping_add(1);
        if self.sweep == 0 {
            // Wrapped: no entry may still carry the number about to be
            // reused (0 is every new entry's).
            for e in &mut self.fds {
                e.seen = 0;
            }
            self.sweep = 1;
        }
        self.sweep
    }

    /// Whether this is the first time epoll reports `fd` in scan round
    /// `sweep` (a level registration comes again in a later chunk).
    #[inline(always)]
    pub(crate) fn first_sight(&mut self, fd: RawFd, sweep: u32) -> bool {
        match self.fds.get_mut(fd as usize) {
            Some(e) => std::mem::replace(&mut e.seen, sweep) != sweep,
            None => true,
        }
    }

    /// Reports the knotes of `fd` that are true after epoll reported it.
    /// Returns true when the event belongs to no live registration: the
    /// number was closed (or now names another file) while a dup() keeps
    /// the old file open.
    #[inline(always)]
    pub(crate) fn deliver_fd_event(&mut self, fd: RawFd, revents: u32, out: &mut Out) -> bool {
        let Some(e) = self.fds.get(fd as usize) else {
            return true;
        };
        let (has_read, has_write) = (e.read.is_some(), e.write.is_some());
        if !has_read && !has_write {
            return true;
        }
        let before = out.n;
        if has_read {
            self.deliver_fd(fd, FilterKind::Read, revents, out);
        }
        if has_write {
            self.deliver_fd(fd, FilterKind::Write, revents, out);
        }
        if out.n > before {
            return false;
        }
        // Nothing was true: only then pay for a check of the number.
        match self.fds.get(fd as usize) {
            Some(e) if e.used() => !os::fstat(fd).is_ok_and(|st| e.is(&st)),
            _ => false,
        }
    }

    /// Runs the filter of one descriptor knote and reports it if it is true.
    // Inlined: this is the per-event hot path (scripts/translation-cost.sh).
    #[inline(always)]
    fn deliver_fd(&mut self, fd: RawFd, filter: FilterKind, revents: u32, out: &mut Out) {
        let idx = fd as usize;
        let Some(e) = self.fds.get_mut(idx) else {
            return;
        };
        let Some(k) = *e.knote(filter) else { return };
        if k.disabled || k.queued {
            return;
        }
        let r = KnoteRef::new(filter, idx);
        if !out.room() {
            // No room left in this call: keep it for the next one.
            self.queue(r);
            return;
        }
        let fired = if filter == FilterKind::Read {
            filt_read(e, fd, &k, revents)
        } else {
            filt_write(e, fd, &k, revents)
        };
        let Some((extra, fflags, data)) = fired else {
            if e.edge_only && e.registered & libc::EPOLLET as u32 == 0 {
                // Switched to edge-triggered by the filter (an unconnected
                // socket, or readable with nothing to read): level knotes
                // are re-checked by kq from now on.
                let _ = self.update_fd(fd);
            }
            return;
        };
        out.push(k.event(idx, filter, extra, fflags, data));
        // A level knote whose registration is edge-triggered (it shares the
        // descriptor with an EV_CLEAR knote, or has NOTE_LOWAT) or that
        // epoll cannot watch is re-checked by kq on the next call.
        let recheck = k.flags & EV_CLEAR == 0 && e.rechecked;
        // Steady state (a level knote epoll keeps reporting) needs nothing
        // more: skip the call.
        if recheck || k.flags & (EV_ONESHOT | EV_DISPATCH) != 0 {
            self.after_delivery(r, k.flags, recheck);
        }
    }

    /// A knote of a regular file, evaluated by kq (FreeBSD `filt_vfsread`,
    /// `filt_vfswrite`): READ is true while the offset is before the end of
    /// the file (or always, with NOTE_FILE_POLL), `data` = the bytes to the
    /// end; WRITE is always true with `data` 0. A level knote stays queued
    /// while true; anything else waits for the file to change (inotify).
    fn deliver_file(&mut self, filter: FilterKind, fd: RawFd, st: &libc::stat, out: &mut Out) {
        let idx = fd as usize;
        let Some(k) = *self.fds[idx].knote(filter) else {
            return;
        };
        if k.disabled {
            return;
        }
        let data = if filter == FilterKind::Read {
            let Ok(pos) = os::offset(fd) else { return };
            let data = st.st_size - pos;
            if data == 0 && k.sfflags & NOTE_FILE_POLL == 0 {
                return; // at the end: quiet until the file changes
            }
            data
        } else {
            0
        };
        out.push(k.event(idx, filter, 0, 0, data));
        let level = k.flags & EV_CLEAR == 0;
        self.after_delivery(KnoteRef::new(filter, idx), k.flags, level);
    }
}

/// Whether epoll still holds a registration of the file `fd` names now.
/// epoll keys its entries by (open file, number), so EPOLL_CTL_MOD fails
/// with ENOENT when the number was closed and reopened. The MOD also
/// re-arms the entry, so a modified or re-enabled knote that is already
/// true is reported again, as FreeBSD re-runs the filter on every change.
fn still_registered(epfd: RawFd, fd: RawFd, events: u32) -> bool {
    let token = Token::Fd(fd).encode();
    match os::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token) {
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
        Ok(()) => true,
    }
}
