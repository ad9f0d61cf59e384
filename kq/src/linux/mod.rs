//! kqueue(2) on Linux: a userspace translation onto epoll, timerfd,
//! signalfd and eventfd.
//!
//! # Shape
//!
//! A kqueue *is* an epoll descriptor: `kqueue()` returns the epoll fd itself,
//! so the queue can be polled, watched by another kqueue, and closed with
//! `close()`. Beside it, this module keeps a table of knotes per queue, keyed
//! by (ident, filter) exactly as the BSD kernel does:
//!
//! | kqueue                         | here                                              |
//! |--------------------------------|---------------------------------------------------|
//! | EVFILT_READ / EVFILT_WRITE     | one epoll registration per descriptor, shared by both knotes (epoll allows one) |
//! | level-triggered (default)      | epoll level-triggered                             |
//! | EV_CLEAR                       | `EPOLLET`                                         |
//! | EV_ONESHOT / EV_DISPATCH       | delete / disable the knote as it is delivered     |
//! | EV_DISABLE / EV_ENABLE         | drop / restore the interest with `EPOLL_CTL_MOD`; the kernel re-checks on enable |
//! | `data` of a stream or pipe     | `ioctl(FIONREAD)`, one call per returned event    |
//! | `data` of a TCP listener       | `TCP_INFO.tcpi_unacked`: the accept queue length  |
//! | `data` of EVFILT_WRITE         | `SO_SNDBUF` (read at EV_ADD) minus `ioctl(TIOCOUTQ)` |
//! | EVFILT_TIMER                   | a timerfd per timer; `data` = expirations read from it |
//! | EVFILT_SIGNAL                  | a signalfd per signal (the signal is blocked in the registering thread) |
//! | EVFILT_USER                    | a flag in the table, plus one eventfd per queue that wakes `epoll_wait` |
//!
//! Knotes that are ready without the kernel's help (triggered EVFILT_USER
//! knotes, regular files, which epoll refuses, and level knotes sharing an
//! edge-triggered registration) wait in a `pending` queue; while it is not
//! empty the queue's eventfd stays readable, so a blocked `kevent()` in
//! another thread wakes up and an outer kqueue sees this one as readable.
//!
//! In steady state a `kevent()` with an empty changelist is one `epoll_wait`
//! plus one cheap syscall per returned event (for `data`); nothing is
//! allocated per call, and `epoll_ctl` runs only when something changed.

pub(crate) mod abi;

use std::collections::{HashMap, VecDeque};
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use abi::*;
use libc::{c_int, c_void};

/// An errno value; 0 means success.
type Errno = c_int;

// Tokens in `epoll_event.u64`: the kind in the top byte, a descriptor below.
const SHIFT: u32 = 56;
const TOKEN_FD: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const TOKEN_SIGNAL: u64 = 2;
const TOKEN_WAKE: u64 = 3;

/// How many epoll events one `epoll_wait` fetches at most (on the stack).
const BATCH: usize = 256;
/// FreeBSD silently caps timeouts at 24 hours (kqueue(2), BUGS).
const MAX_TIMEOUT_MS: i64 = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------
// The C entry points
// ---------------------------------------------------------------------------

/// `kqueue()`: create a new kernel event queue and return its descriptor,
/// or -1 with `errno` set.
///
/// # Safety
/// Always safe to call; `unsafe` only to match the C declaration.
pub unsafe fn kqueue() -> c_int {
    match Kq::create() {
        Ok(fd) => fd,
        Err(e) => fail(e),
    }
}

/// `kevent()`: apply `nchanges` changes from `changelist` in order, then
/// return up to `nevents` events in `eventlist`, waiting at most `timeout`
/// (NULL: for ever). Returns the number of entries written, or -1 with
/// `errno` set, exactly as kqueue(2) describes.
///
/// # Safety
/// `changelist` must be valid for reading `nchanges` entries and
/// `eventlist` for writing `nevents` entries (they may be the same array);
/// `timeout` must be null or point to a valid `timespec`.
pub unsafe fn kevent(
    kq: c_int,
    changelist: *const kevent,
    nchanges: c_int,
    eventlist: *mut kevent,
    nevents: c_int,
    timeout: *const timespec,
) -> c_int {
    if nchanges < 0 || nevents < 0 {
        return fail(libc::EINVAL);
    }
    if (nchanges > 0 && changelist.is_null()) || (nevents > 0 && eventlist.is_null()) {
        return fail(libc::EFAULT);
    }
    let Some(q) = Kq::lookup(kq) else {
        return fail(libc::EBADF);
    };
    let mut out = Out {
        ptr: eventlist,
        cap: nevents as usize,
        n: 0,
    };

    // 1. The changelist, in order, before anything is read from the queue.
    let mut nerrors = 0;
    if nchanges > 0 {
        let mut inner = q.lock();
        for i in 0..nchanges as usize {
            // SAFETY: the caller guarantees `changelist` holds `nchanges`
            // entries. The change is copied out before any output slot
            // (always at an index <= i) is written, so one array may serve
            // as both lists.
            let mut change = unsafe { changelist.add(i).read() };
            change.flags &= !EV_SYSFLAGS;
            if change.filter == 0 {
                continue; // FreeBSD skips empty entries
            }
            let error = inner.register(q.epfd, &change);
            if error != 0 || change.flags & EV_RECEIPT != 0 {
                if out.n == out.cap {
                    // No room to report it: stop here; the remaining
                    // changes are not processed (kqueue(2), EV_RECEIPT).
                    inner.sync_wake(q.wake);
                    drop(inner);
                    return if error != 0 { fail(error) } else { 0 };
                }
                change.flags = EV_ERROR;
                change.data = error as Data;
                out.push(change);
                nerrors += 1;
            }
        }
        inner.sync_wake(q.wake);
    }
    // 2. Any EV_ERROR entry written: return them without waiting.
    if nerrors > 0 {
        return nerrors;
    }
    if nevents == 0 {
        return 0;
    }
    // 3. Wait for events.
    let timeout = if timeout.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees a non-null `timeout` is valid.
        let ts = unsafe { timeout.read() };
        if ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1_000_000_000 {
            return fail(libc::EINVAL);
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    match q.scan(&mut out, timeout) {
        Ok(()) => out.n as c_int,
        Err(e) => {
            if e == libc::EBADF {
                Kq::forget(kq, &q);
            }
            fail(e)
        }
    }
}

/// Drops this crate's bookkeeping for a kqueue that is about to be closed
/// (the safe layer calls it from `Drop`). Closing a raw kqueue descriptor
/// with `close()` is also fine: the bookkeeping is then freed the next time
/// `kqueue()` or `kevent()` notices the descriptor is gone.
pub(crate) fn forget(kq: c_int) {
    if let Some(q) = Kq::lookup(kq) {
        Kq::forget(kq, &q);
    }
}

fn fail(e: Errno) -> c_int {
    // SAFETY: __errno_location() returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
    -1
}

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Where `kevent()` writes its results.
struct Out {
    ptr: *mut kevent,
    cap: usize,
    n: usize,
}

impl Out {
    fn room(&self) -> bool {
        self.n < self.cap
    }

    fn push(&mut self, ev: kevent) {
        debug_assert!(self.room());
        // SAFETY: `ptr` is valid for `cap` entries (kevent()'s contract) and
        // n < cap.
        unsafe { self.ptr.add(self.n).write(ev) };
        self.n += 1;
    }
}

// ---------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------

/// One kqueue: the epoll descriptor the caller holds, our wake-up eventfd,
/// and the knote table.
struct Kq {
    epfd: c_int,
    wake: c_int,
    inner: Mutex<Inner>,
}

fn registry() -> &'static RwLock<HashMap<c_int, Arc<Kq>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<c_int, Arc<Kq>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Kq {
    fn create() -> Result<c_int, Errno> {
        Self::sweep();
        let epfd = sys_epoll_create()?;
        let wake = match sys_eventfd() {
            Ok(fd) => fd,
            Err(e) => {
                sys_close(epfd);
                return Err(e);
            }
        };
        if let Err(e) = sys_epoll_ctl(
            epfd,
            libc::EPOLL_CTL_ADD,
            wake,
            libc::EPOLLIN as u32,
            TOKEN_WAKE << SHIFT,
        ) {
            sys_close(wake);
            sys_close(epfd);
            return Err(e);
        }
        let q = Arc::new(Kq {
            epfd,
            wake,
            inner: Mutex::new(Inner::default()),
        });
        // A stale entry under the same number (a kqueue closed with close())
        // is replaced, which frees its timers and signals.
        registry()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(epfd, q);
        Ok(epfd)
    }

    fn lookup(kq: c_int) -> Option<Arc<Kq>> {
        registry()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kq)
            .cloned()
    }

    fn forget(kq: c_int, q: &Arc<Kq>) {
        let mut reg = registry().write().unwrap_or_else(|p| p.into_inner());
        if reg.get(&kq).is_some_and(|cur| Arc::ptr_eq(cur, q)) {
            reg.remove(&kq);
        }
    }

    /// Frees the bookkeeping of queues whose descriptor was closed with a
    /// plain `close()`: a queue is alive while its epoll set still holds our
    /// eventfd (one cheap `epoll_ctl` per queue, only in `kqueue()`).
    fn sweep() {
        let mut reg = registry().write().unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, q| {
            sys_epoll_ctl(
                q.epfd,
                libc::EPOLL_CTL_MOD,
                q.wake,
                libc::EPOLLIN as u32,
                TOKEN_WAKE << SHIFT,
            )
            .is_ok()
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Collects ready events into `out`, waiting up to `timeout`.
    fn scan(&self, out: &mut Out, timeout: Option<Duration>) -> Result<(), Errno> {
        let deadline = match timeout {
            Some(t) if !t.is_zero() => {
                Some(Instant::now() + t.min(Duration::from_millis(MAX_TIMEOUT_MS as u64)))
            }
            _ => None,
        };
        let mut buf: [MaybeUninit<libc::epoll_event>; BATCH] = [MaybeUninit::uninit(); BATCH];
        // Rounds in a row where epoll woke us for nothing (see `rebuild`).
        let mut spurious_rounds = 0u32;
        let mut first_round = true;
        loop {
            // Knotes that are ready in userspace usually come first. But a
            // level knote kept true there is re-queued after each delivery,
            // and with a small event list it could take every slot while a
            // socket waits; FreeBSD queues a re-reported knote behind the
            // others. So every other call lets epoll's events go first.
            let mut epoll_first = false;
            {
                let mut inner = self.lock();
                if first_round {
                    first_round = false;
                    inner.epoll_turn = !inner.epoll_turn;
                    epoll_first = inner.epoll_turn && !inner.pending.is_empty();
                }
                if !epoll_first {
                    inner.deliver_pending(self.epfd, out);
                    inner.sync_wake(self.wake);
                }
            }
            if !out.room() {
                return Ok(());
            }
            let wait_ms: c_int = if out.n > 0 || epoll_first {
                0
            } else {
                match (timeout, deadline) {
                    (None, _) => -1,
                    (Some(_), None) => 0,
                    (Some(_), Some(d)) => {
                        let left = d.saturating_duration_since(Instant::now());
                        // Round up, so a 0.5 ms timeout does not become a
                        // busy poll.
                        left.as_nanos()
                            .div_ceil(1_000_000)
                            .min(MAX_TIMEOUT_MS as u128) as c_int
                    }
                }
            };
            let max = (out.cap - out.n).min(BATCH) as c_int;
            // SAFETY: `buf` has room for BATCH >= max events.
            let n = unsafe { libc::epoll_wait(self.epfd, buf.as_mut_ptr().cast(), max, wait_ms) };
            if n < 0 {
                return match errno() {
                    libc::EINTR if out.n > 0 => Ok(()),
                    libc::EINTR => Err(libc::EINTR),
                    // The descriptor was closed, or now names something else.
                    libc::EBADF | libc::EINVAL => Err(libc::EBADF),
                    e => Err(e),
                };
            }
            if n > 0 {
                let mut inner = self.lock();
                let before = out.n;
                let mut orphan = false;
                for slot in &buf[..n as usize] {
                    // SAFETY: epoll_wait initialised the first `n` entries.
                    let ev = unsafe { slot.assume_init() };
                    let token = ev.u64;
                    let events = ev.events;
                    let fd = (token & 0xffff_ffff) as c_int;
                    match token >> SHIFT {
                        TOKEN_FD => orphan |= inner.deliver_fd_event(self.epfd, fd, events, out),
                        TOKEN_TIMER => inner.deliver_timer(self.epfd, fd, out),
                        TOKEN_SIGNAL => inner.deliver_signal(self.epfd, fd, out),
                        _ => {} // TOKEN_WAKE: pending knotes, handled above
                    }
                }
                // epoll reported readiness nobody asked for: a file whose
                // registered number was closed while a dup() keeps it open.
                // epoll cannot forget it (EPOLL_CTL_DEL needs that number),
                // and a level registration would report it forever: start
                // a fresh epoll set without it.
                if orphan || (out.n == before && wait_ms != 0 && spurious_rounds >= 2) {
                    inner.rebuild(self.epfd, self.wake);
                    spurious_rounds = 0;
                } else if out.n == before {
                    spurious_rounds += 1;
                }
                inner.sync_wake(self.wake);
            }
            if epoll_first {
                // The userspace knotes' turn, after epoll's.
                let mut inner = self.lock();
                inner.deliver_pending(self.epfd, out);
                inner.sync_wake(self.wake);
                if out.n == 0 {
                    continue; // nothing was true after all: wait as asked
                }
            }
            if out.n > 0 || wait_ms == 0 {
                return Ok(());
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Ok(());
                }
            }
            // Only the wake-up, or events that were no longer true: go round.
        }
    }
}

impl Drop for Kq {
    fn drop(&mut self) {
        // The epoll descriptor belongs to the caller; the eventfd is ours.
        sys_close(self.wake);
    }
}

// ---------------------------------------------------------------------------
// Knotes
// ---------------------------------------------------------------------------

/// What every knote stores: the registration, as FreeBSD keeps it.
#[derive(Clone, Copy, Debug, Default)]
struct Knote {
    /// Returned unchanged with every event; replaced by every modification.
    udata: usize,
    /// The registration's `data` (`kn_sdata`): a timer period, a low-water
    /// mark, EVFILT_USER's data.
    sdata: i64,
    /// The registration's `fflags` (`kn_sfflags`).
    sfflags: u32,
    /// Flags returned with events: the registration's minus the actions.
    flags: Flags,
    disabled: bool,
    /// Waiting in `Inner::pending`.
    queued: bool,
}

impl Knote {
    fn new(change: &kevent, implied: Flags) -> Knote {
        Knote {
            udata: change.udata as usize,
            sdata: change.data as i64,
            sfflags: change.fflags,
            flags: (change.flags & !(EV_ADD | EV_DELETE | EV_ENABLE | EV_DISABLE)) | implied,
            disabled: change.flags & EV_DISABLE != 0,
            queued: false,
        }
    }

    /// A change to an existing knote: FreeBSD replaces udata and the
    /// filter's parameters on every modification, and applies enable or
    /// disable; the trigger-mode bits chosen at EV_ADD stay.
    fn modify(&mut self, change: &kevent) {
        self.udata = change.udata as usize;
        self.sdata = change.data as i64;
        self.sfflags = change.fflags;
        self.apply_enable(change);
    }

    fn apply_enable(&mut self, change: &kevent) {
        if change.flags & EV_ENABLE != 0 {
            self.disabled = false;
        } else if change.flags & EV_DISABLE != 0 {
            self.disabled = true;
        }
    }

    fn event(&self, ident: usize, filter: Filter, extra: Flags, fflags: u32, data: i64) -> kevent {
        kevent {
            ident,
            filter,
            flags: self.flags | extra,
            fflags,
            data: data as Data,
            udata: self.udata as *mut c_void,
        }
    }
}

/// What a descriptor is, decided once at EV_ADD: it picks how `data` and
/// EOF are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
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
    /// Something epoll refuses (regular files, /dev/null): always ready,
    /// as BSD reports them.
    AlwaysReady,
    /// Anything else epoll accepts: terminals, eventfds, another kqueue.
    Other,
}

/// The state kept per descriptor: both of its knotes share one epoll
/// registration, since epoll takes a descriptor only once.
#[derive(Clone, Debug, Default)]
struct FdEntry {
    /// Which open file this is (st_dev, st_ino): when the number is closed
    /// and reused, the entry is recognised as stale.
    dev: u64,
    ino: u64,
    kind: Kind,
    /// A regular file (for `data` = bytes to EOF).
    regular: bool,
    /// The events currently registered with epoll (0: not registered).
    registered: u32,
    /// EOF seen on a socket (it does not go away).
    eof: bool,
    /// A stream socket seen unconnected (registered before connect()): its
    /// epoll entry stays edge-triggered, or the hang-up Linux reports for
    /// it would wake every wait.
    unconnected: bool,
    /// The socket error read when EOF was seen (Linux clears SO_ERROR on
    /// reading, so it is kept here for later events).
    so_error: u32,
    /// Send-buffer or pipe capacity, for EVFILT_WRITE's `data`.
    capacity: u32,
    read: Option<Knote>,
    write: Option<Knote>,
}

// The promise in the crate docs: a descriptor's state, both knotes
// included, stays under 128 bytes of user memory.
const _: () = assert!(std::mem::size_of::<FdEntry>() <= 128);

impl FdEntry {
    fn used(&self) -> bool {
        self.kind != Kind::Unused
    }

    fn knote(&mut self, filter: Filter) -> &mut Option<Knote> {
        if filter == EVFILT_READ {
            &mut self.read
        } else {
            &mut self.write
        }
    }
}

struct Timer {
    tfd: c_int,
    registered: bool,
    knote: Knote,
}

struct Signal {
    /// The process-wide signalfd of this signal, shared by every knote for
    /// it in every kqueue (see `take_signals`).
    sfd: c_int,
    /// This knote's own eventfd: another kqueue that read the signal from
    /// `sfd` writes it, so this queue wakes and reports its share.
    mail: c_int,
    /// `sfd` and `mail` are in the epoll set.
    registered: bool,
    knote: Knote,
}

struct User {
    triggered: bool,
    knote: Knote,
}

/// A knote waiting in userspace: (filter, ident).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingRef {
    filter: Filter,
    ident: usize,
}

#[derive(Default)]
struct Inner {
    /// Indexed by descriptor number: numbers are small and dense.
    fds: Vec<FdEntry>,
    timers: HashMap<usize, Timer>,
    timer_by_fd: HashMap<c_int, usize>,
    signals: HashMap<usize, Signal>,
    signal_by_fd: HashMap<c_int, usize>,
    users: HashMap<usize, User>,
    pending: VecDeque<PendingRef>,
    /// The wake eventfd is readable (it mirrors `!pending.is_empty()`).
    wake_armed: bool,
    /// Flips on every kevent() call: when set, epoll's events are taken
    /// before the userspace queue (fairness; see `scan`).
    epoll_turn: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.timers.values() {
            sys_close(t.tfd);
        }
        // Closing a kqueue removes its knotes: its signals are released as
        // EV_DELETE would.
        for (&signo, s) in &self.signals {
            unwatch_signal(signo as c_int, s.mail);
        }
    }
}

impl Inner {
    // --- the changelist -----------------------------------------------------

    fn register(&mut self, epfd: c_int, change: &kevent) -> Errno {
        if change.flags & (EV_ENABLE | EV_DISABLE) == EV_ENABLE | EV_DISABLE {
            return libc::EINVAL;
        }
        match change.filter {
            EVFILT_READ | EVFILT_WRITE => self.register_fd(epfd, change),
            EVFILT_TIMER => self.register_timer(epfd, change),
            EVFILT_SIGNAL => self.register_signal(epfd, change),
            EVFILT_USER => self.register_user(change),
            _ => libc::EINVAL,
        }
    }

    fn register_fd(&mut self, epfd: c_int, change: &kevent) -> Errno {
        let filter = change.filter;
        // The descriptor is checked first, so EV_DELETE of a closed one is
        // EBADF, as on FreeBSD.
        let fd = match c_int::try_from(change.ident) {
            Ok(fd) if fd >= 0 => fd,
            _ => return libc::EBADF,
        };
        if fd == epfd {
            return libc::EINVAL; // a kqueue cannot watch itself
        }
        let st = match sys_fstat(fd) {
            Ok(st) => st,
            Err(e) => {
                // Closed: whatever we knew about this number is stale.
                self.drop_fd(epfd, fd);
                return e;
            }
        };
        let idx = fd as usize;
        if let Some(e) = self.fds.get(idx) {
            if e.used() && (e.dev, e.ino) != (st.st_dev, st.st_ino) {
                // The number was closed and now names another file: its old
                // knotes died with the close() (epoll dropped the
                // registration with the last reference).
                self.drop_fd(epfd, fd);
            } else if e.used() && e.registered != 0 && !still_registered(epfd, fd, e.registered) {
                // Same (dev, ino) but not the file epoll watches: the number
                // was closed and reopened on a file fstat cannot tell apart
                // (every eventfd, epoll and timerfd shares one inode; a FIFO
                // keeps its own). Its knotes died with the close(), as on BSD.
                self.drop_fd(epfd, fd);
            }
        }
        if self.fds.len() <= idx {
            self.fds.resize_with(idx + 1, FdEntry::default);
        }
        let exists = self.fds[idx].knote(filter).is_some();
        let mut added = false;
        if !exists {
            if change.flags & EV_ADD == 0 {
                return libc::ENOENT;
            }
            let entry = &mut self.fds[idx];
            let fresh = !entry.used();
            if fresh {
                *entry = new_fd_entry(fd, &st);
            }
            if filter == EVFILT_WRITE
                && entry.kind == Kind::Pipe
                && sys_poll(fd) & libc::EPOLLERR as u32 != 0
            {
                // The write end of a pipe whose readers are gone (Linux
                // polls it as an error): FreeBSD's pipe_kqfilter refuses
                // the knote with EPIPE.
                if fresh {
                    *entry = FdEntry::default();
                }
                return libc::EPIPE;
            }
            *entry.knote(filter) = Some(Knote::new(change, 0));
            added = true;
        } else if change.flags & EV_DELETE != 0 {
            self.unqueue(PendingRef { filter, ident: idx });
            *self.fds[idx].knote(filter) = None;
            let err = self.update_fd(epfd, fd);
            if self.fds[idx].read.is_none() && self.fds[idx].write.is_none() {
                self.fds[idx] = FdEntry::default();
            }
            return err;
        } else {
            if let Some(k) = self.fds[idx].knote(filter) {
                k.modify(change);
            }
        }
        if filter == EVFILT_WRITE
            && change.flags & EV_ADD != 0
            && matches!(self.fds[idx].kind, Kind::Stream | Kind::Dgram)
        {
            // EVFILT_WRITE's `data` is the send buffer's free space, so its
            // size is read when a write knote is added (again on a re-add,
            // in case SO_SNDBUF changed); a read-only client costs nothing.
            self.fds[idx].capacity = sndbuf(fd);
        }
        let err = self.update_fd(epfd, fd);
        if err != 0 && added {
            *self.fds[idx].knote(filter) = None;
            if self.fds[idx].read.is_none() && self.fds[idx].write.is_none() {
                self.fds[idx] = FdEntry::default();
            }
        }
        err
    }

    /// Brings the epoll registration of `fd` in line with its knotes, and
    /// queues knotes that are ready without the kernel's help.
    fn update_fd(&mut self, epfd: c_int, fd: c_int) -> Errno {
        let idx = fd as usize;
        let e = &mut self.fds[idx];
        if e.kind == Kind::AlwaysReady {
            return self.queue_enabled_fd(fd);
        }
        let mut events = 0u32;
        let mut clear = false;
        if let Some(k) = e.read.filter(|k| !k.disabled) {
            events |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            clear |= k.flags & EV_CLEAR != 0;
            // NOTE_LOWAT on a socket: epoll would report every byte, and a
            // level registration would spin below the mark. Edge-triggered,
            // each arrival wakes us once and the filter compares `data`
            // with the mark; a level knote that is true is re-checked after
            // delivery (deliver_fd), so it stays level for the caller. The
            // socket's own SO_RCVLOWAT is left alone: it belongs to the
            // program, and NOTE_LOWAT is per knote on BSD.
            clear |= k.sfflags & NOTE_LOWAT != 0 && is_socket(e.kind);
        }
        if let Some(k) = e.write.filter(|k| !k.disabled) {
            events |= libc::EPOLLOUT as u32;
            clear |= k.flags & EV_CLEAR != 0;
        }
        if clear || e.unconnected {
            events |= libc::EPOLLET as u32;
        }
        let op = match (e.registered, events) {
            (0, 0) => return 0,
            (_, 0) => libc::EPOLL_CTL_DEL,
            (0, _) => libc::EPOLL_CTL_ADD,
            (r, ev) if r == ev => return 0,
            _ => libc::EPOLL_CTL_MOD,
        };
        let token = (TOKEN_FD << SHIFT) | fd as u32 as u64;
        match sys_epoll_ctl(epfd, op, fd, events, token) {
            Ok(()) => {
                e.registered = events;
                0
            }
            Err(libc::EPERM) if op == libc::EPOLL_CTL_ADD => {
                // Regular files and /dev/null cannot be polled: they are
                // always ready, as BSD's filters report them.
                e.kind = Kind::AlwaysReady;
                e.registered = 0;
                self.queue_enabled_fd(fd)
            }
            Err(libc::ENOENT | libc::EBADF) if op == libc::EPOLL_CTL_DEL => {
                e.registered = 0; // already gone with the file
                0
            }
            Err(libc::ENOENT) if op == libc::EPOLL_CTL_MOD => {
                // The registration vanished with a close() of every
                // reference: register afresh.
                e.registered = 0;
                match sys_epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, events, token) {
                    Ok(()) => {
                        e.registered = events;
                        0
                    }
                    Err(err) => err,
                }
            }
            Err(err) => err,
        }
    }

    fn queue_enabled_fd(&mut self, fd: c_int) -> Errno {
        let e = &mut self.fds[fd as usize];
        let mut refs = [None, None];
        for (i, (filter, slot)) in [(EVFILT_READ, &mut e.read), (EVFILT_WRITE, &mut e.write)]
            .into_iter()
            .enumerate()
        {
            if let Some(k) = slot {
                if !k.disabled && !k.queued {
                    k.queued = true;
                    refs[i] = Some(PendingRef {
                        filter,
                        ident: fd as usize,
                    });
                }
            }
        }
        self.pending.extend(refs.into_iter().flatten());
        0
    }

    /// Forgets everything about `fd` (its registration, if any, is removed).
    fn drop_fd(&mut self, epfd: c_int, fd: c_int) {
        let Some(e) = self.fds.get_mut(fd as usize) else {
            return;
        };
        if !e.used() {
            return;
        }
        if e.registered != 0 {
            // Usually gone already (the file was closed); if the number now
            // names a file we never registered, epoll says ENOENT.
            let _ = sys_epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
        *e = FdEntry::default();
        self.pending
            .retain(|r| !(is_fd_filter(r.filter) && r.ident == fd as usize));
    }

    fn register_timer(&mut self, epfd: c_int, change: &kevent) -> Errno {
        let ident = change.ident;
        if !self.timers.contains_key(&ident) {
            if change.flags & EV_ADD == 0 {
                return libc::ENOENT;
            }
            let abs = change.fflags & NOTE_ABSTIME != 0;
            // A timer is EV_CLEAR by nature (data counts expirations since the
            // last delivery); an absolute one fires once (FreeBSD).
            let implied = if abs { EV_ONESHOT } else { EV_CLEAR };
            let knote = Knote::new(change, implied);
            let tfd = match sys_timerfd(abs) {
                Ok(fd) => fd,
                Err(e) => return e,
            };
            if let Err(e) = arm_timer(tfd, &knote) {
                sys_close(tfd);
                return e;
            }
            self.timer_by_fd.insert(tfd, ident);
            self.timers.insert(
                ident,
                Timer {
                    tfd,
                    registered: false,
                    knote,
                },
            );
        } else if change.flags & EV_DELETE != 0 {
            self.unqueue(PendingRef {
                filter: EVFILT_TIMER,
                ident,
            });
            if let Some(t) = self.timers.remove(&ident) {
                self.timer_by_fd.remove(&t.tfd);
                sys_close(t.tfd); // closing it also leaves the epoll set
            }
            return 0;
        } else {
            let t = self.timers.get_mut(&ident).expect("checked above");
            if change.flags & EV_ADD != 0 {
                // Re-adding restarts the timer with the new parameters and
                // throws away expirations not yet delivered (FreeBSD >= 12,
                // macOS).
                let mut knote = t.knote;
                knote.modify(change);
                if let Err(e) = arm_timer(t.tfd, &knote) {
                    return e;
                }
                t.knote = knote;
            } else {
                t.knote.udata = change.udata as usize;
                t.knote.apply_enable(change);
            }
        }
        let t = self.timers.get_mut(&ident).expect("present");
        set_registered(
            epfd,
            t.tfd,
            &mut t.registered,
            !t.knote.disabled,
            TOKEN_TIMER,
        )
    }

    fn register_signal(&mut self, epfd: c_int, change: &kevent) -> Errno {
        let ident = change.ident;
        let signo = match c_int::try_from(ident) {
            Ok(s) if (1..=64).contains(&s) && s != libc::SIGKILL && s != libc::SIGSTOP => s,
            _ => return libc::EINVAL,
        };
        if !self.signals.contains_key(&ident) {
            if change.flags & EV_ADD == 0 {
                return libc::ENOENT;
            }
            let (sfd, mail) = match watch_signal(signo) {
                Ok(v) => v,
                Err(e) => return e,
            };
            self.signal_by_fd.insert(sfd, ident);
            self.signal_by_fd.insert(mail, ident);
            let knote = Knote::new(change, EV_CLEAR);
            self.signals.insert(
                ident,
                Signal {
                    sfd,
                    mail,
                    registered: false,
                    knote,
                },
            );
        } else if change.flags & EV_DELETE != 0 {
            self.unqueue(PendingRef {
                filter: EVFILT_SIGNAL,
                ident,
            });
            if let Some(mut s) = self.signals.remove(&ident) {
                self.signal_by_fd.remove(&s.sfd);
                self.signal_by_fd.remove(&s.mail);
                // The signalfd stays open for other knotes: take it out of
                // this epoll set explicitly.
                let _ = set_signal_registered(epfd, &mut s, false);
                unwatch_signal(signo, s.mail);
            }
            return 0;
        } else {
            let s = self.signals.get_mut(&ident).expect("checked above");
            s.knote.modify(change);
        }
        let s = self.signals.get_mut(&ident).expect("present");
        let want = !s.knote.disabled;
        set_signal_registered(epfd, s, want)
    }

    fn register_user(&mut self, change: &kevent) -> Errno {
        let ident = change.ident;
        let key = PendingRef {
            filter: EVFILT_USER,
            ident,
        };
        let Some(u) = self.users.get_mut(&ident) else {
            if change.flags & EV_ADD == 0 {
                return libc::ENOENT;
            }
            let mut knote = Knote::new(change, 0);
            // The control bits and NOTE_TRIGGER are operations, not state.
            // FreeBSD does not fire a knote at creation even with
            // NOTE_TRIGGER (macOS does); portable code adds, then triggers.
            knote.sfflags &= NOTE_FFLAGSMASK;
            self.users.insert(
                ident,
                User {
                    triggered: false,
                    knote,
                },
            );
            return 0;
        };
        if change.flags & EV_DELETE != 0 {
            self.users.remove(&ident);
            self.unqueue(key);
            return 0;
        }
        // FreeBSD's filt_usertouch(EVENT_REGISTER).
        u.knote.udata = change.udata as usize;
        u.knote.apply_enable(change);
        if change.fflags & NOTE_TRIGGER != 0 {
            u.triggered = true;
        }
        let ffl = change.fflags & NOTE_FFLAGSMASK;
        match change.fflags & NOTE_FFCTRLMASK {
            NOTE_FFAND => u.knote.sfflags &= ffl,
            NOTE_FFOR => u.knote.sfflags |= ffl,
            NOTE_FFCOPY => u.knote.sfflags = ffl,
            _ => {} // NOTE_FFNOP
        }
        u.knote.sdata = change.data as i64;
        if change.flags & EV_CLEAR != 0 {
            u.triggered = false;
        }
        if u.triggered && !u.knote.disabled && !u.knote.queued {
            u.knote.queued = true;
            self.pending.push_back(key);
        }
        0
    }

    fn unqueue(&mut self, key: PendingRef) {
        if self.pending.contains(&key) {
            self.pending.retain(|r| *r != key);
        }
    }

    // --- delivery ------------------------------------------------------------

    /// Keeps the wake eventfd readable exactly while knotes are pending, so
    /// waiters (in this or another thread, or an outer kqueue) notice them.
    fn sync_wake(&mut self, wake: c_int) {
        let want = !self.pending.is_empty();
        if want == self.wake_armed {
            return;
        }
        if want {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(wake, (&one as *const u64).cast(), 8) };
        } else {
            let mut count: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from our eventfd.
            unsafe { libc::read(wake, (&mut count as *mut u64).cast(), 8) };
        }
        self.wake_armed = want;
    }

    /// Delivers the knotes waiting in userspace, each at most once per call.
    fn deliver_pending(&mut self, epfd: c_int, out: &mut Out) {
        for _ in 0..self.pending.len() {
            if !out.room() {
                return;
            }
            let Some(r) = self.pending.pop_front() else {
                return;
            };
            match r.filter {
                EVFILT_READ | EVFILT_WRITE => {
                    let fd = r.ident as c_int;
                    let Some(e) = self.fds.get_mut(r.ident) else {
                        continue;
                    };
                    let Some(k) = e.knote(r.filter) else { continue };
                    k.queued = false;
                    let revents = if e.kind == Kind::AlwaysReady {
                        (libc::EPOLLIN | libc::EPOLLOUT) as u32
                    } else {
                        sys_poll(fd)
                    };
                    self.deliver_fd(epfd, fd, r.filter, revents, out);
                }
                EVFILT_TIMER => {
                    if let Some(t) = self.timers.get_mut(&r.ident) {
                        t.knote.queued = false;
                        let tfd = t.tfd;
                        self.deliver_timer(epfd, tfd, out);
                    }
                }
                EVFILT_SIGNAL => {
                    if let Some(s) = self.signals.get_mut(&r.ident) {
                        s.knote.queued = false;
                        let sfd = s.sfd;
                        self.deliver_signal(epfd, sfd, out);
                    }
                }
                _ => self.deliver_user(r.ident, out),
            }
        }
    }

    /// Reports the knotes of `fd` that are true. Returns true when the
    /// event belongs to no live registration: the number was closed (or
    /// now names another file) while a dup() keeps the old file open.
    fn deliver_fd_event(&mut self, epfd: c_int, fd: c_int, revents: u32, out: &mut Out) -> bool {
        let Some(e) = self.fds.get(fd as usize) else {
            return true;
        };
        let (has_read, has_write) = (e.read.is_some(), e.write.is_some());
        if !has_read && !has_write {
            return true;
        }
        let before = out.n;
        if has_read {
            self.deliver_fd(epfd, fd, EVFILT_READ, revents, out);
        }
        if has_write {
            self.deliver_fd(epfd, fd, EVFILT_WRITE, revents, out);
        }
        if out.n > before {
            return false;
        }
        // Nothing was true: only then pay for a check of the number.
        let e = &self.fds[fd as usize];
        match sys_fstat(fd) {
            Ok(st) => (st.st_dev, st.st_ino) != (e.dev, e.ino),
            Err(_) => true,
        }
    }

    /// Replaces the epoll set behind the kqueue descriptor with a fresh one
    /// that holds only live registrations, dropping the knotes of numbers
    /// that were closed, as close() does on BSD. This is the only way to
    /// forget a closed number whose file a dup() keeps open. Rare: it runs
    /// when epoll reports such a file, never in steady state.
    fn rebuild(&mut self, epfd: c_int, wake: c_int) {
        let Ok(fresh) = sys_epoll_create() else {
            return; // out of descriptors: keep the old set
        };
        let mut ok = sys_epoll_ctl(
            fresh,
            libc::EPOLL_CTL_ADD,
            wake,
            libc::EPOLLIN as u32,
            TOKEN_WAKE << SHIFT,
        )
        .is_ok();
        for fd in 0..self.fds.len() as c_int {
            let e = &self.fds[fd as usize];
            if !e.used() || e.kind == Kind::AlwaysReady {
                continue;
            }
            let same = sys_fstat(fd).is_ok_and(|st| (st.st_dev, st.st_ino) == (e.dev, e.ino));
            if !same {
                self.drop_fd(epfd, fd);
                continue;
            }
            if e.registered != 0 {
                let token = (TOKEN_FD << SHIFT) | fd as u32 as u64;
                ok &= sys_epoll_ctl(fresh, libc::EPOLL_CTL_ADD, fd, e.registered, token).is_ok();
            }
        }
        for t in self.timers.values().filter(|t| t.registered) {
            let token = (TOKEN_TIMER << SHIFT) | t.tfd as u32 as u64;
            ok &= sys_epoll_ctl(
                fresh,
                libc::EPOLL_CTL_ADD,
                t.tfd,
                libc::EPOLLIN as u32,
                token,
            )
            .is_ok();
        }
        for s in self.signals.values().filter(|s| s.registered) {
            for fd in [s.sfd, s.mail] {
                let token = (TOKEN_SIGNAL << SHIFT) | fd as u32 as u64;
                ok &= sys_epoll_ctl(fresh, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
                    .is_ok();
            }
        }
        // dup3() swaps the file behind the caller's descriptor number in
        // one step; the old set goes away with its last reference.
        // SAFETY: plain syscalls on descriptors this queue owns.
        if ok && unsafe { libc::dup3(fresh, epfd, libc::O_CLOEXEC) } >= 0 {
            // A thread blocked in epoll_wait() on the old set is woken
            // through the eventfd both sets watch, and goes round on the
            // new one; sync_wake() drains it again.
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(wake, (&one as *const u64).cast(), 8) };
            self.wake_armed = true;
        }
        sys_close(fresh);
    }

    /// Runs the filter of one descriptor knote and reports it if it is true.
    // Inlined: this is the per-event hot path (scripts/translation-cost.sh).
    #[inline(always)]
    fn deliver_fd(&mut self, epfd: c_int, fd: c_int, filter: Filter, revents: u32, out: &mut Out) {
        let idx = fd as usize;
        let Some(e) = self.fds.get_mut(idx) else {
            return;
        };
        let Some(k) = *e.knote(filter) else { return };
        if k.disabled || k.queued {
            return;
        }
        if !out.room() {
            // No room left in this call: keep it for the next one.
            e.knote(filter).as_mut().expect("present").queued = true;
            self.pending.push_back(PendingRef { filter, ident: idx });
            return;
        }
        let fired = if filter == EVFILT_READ {
            filt_read(e, fd, &k, revents)
        } else {
            filt_write(e, fd, revents)
        };
        let Some((extra, fflags, data)) = fired else {
            if e.unconnected && e.registered & libc::EPOLLET as u32 == 0 {
                // A socket registered before connect() (stream_is_unconnected):
                // edge-triggered from now on, level knotes re-checked.
                let _ = self.update_fd(epfd, fd);
            }
            return;
        };
        out.push(k.event(idx, filter, extra, fflags, data));
        // A level knote whose registration is edge-triggered (it shares the
        // descriptor with an EV_CLEAR knote) or that epoll cannot watch is
        // re-checked in userspace on the next call.
        let recheck = k.flags & EV_CLEAR == 0
            && (e.kind == Kind::AlwaysReady || e.registered & libc::EPOLLET as u32 != 0);
        // Steady state (a level knote epoll keeps reporting) needs nothing
        // more: skip the call.
        if recheck || k.flags & (EV_ONESHOT | EV_DISPATCH) != 0 {
            self.after_delivery(epfd, PendingRef { filter, ident: idx }, k.flags, recheck);
        }
    }

    fn deliver_timer(&mut self, epfd: c_int, tfd: c_int, out: &mut Out) {
        let Some(&ident) = self.timer_by_fd.get(&tfd) else {
            return;
        };
        let Some(t) = self.timers.get_mut(&ident) else {
            return;
        };
        if t.knote.disabled || t.knote.queued {
            return;
        }
        if !out.room() {
            t.knote.queued = true;
            self.pending.push_back(PendingRef {
                filter: EVFILT_TIMER,
                ident,
            });
            return;
        }
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our timerfd.
        let n = unsafe { libc::read(tfd, (&mut count as *mut u64).cast(), 8) };
        if n != 8 || count == 0 {
            return; // another thread took this expiration
        }
        let k = t.knote;
        // FreeBSD reports fflags 0 and the number of expirations in data.
        out.push(k.event(ident, EVFILT_TIMER, 0, 0, count.min(i64::MAX as u64) as i64));
        self.after_delivery(
            epfd,
            PendingRef {
                filter: EVFILT_TIMER,
                ident,
            },
            k.flags,
            false,
        );
    }

    fn deliver_signal(&mut self, epfd: c_int, sfd: c_int, out: &mut Out) {
        let Some(&ident) = self.signal_by_fd.get(&sfd) else {
            return;
        };
        let Some(s) = self.signals.get_mut(&ident) else {
            return;
        };
        if s.knote.disabled || s.knote.queued {
            return;
        }
        if !out.room() {
            s.knote.queued = true;
            self.pending.push_back(PendingRef {
                filter: EVFILT_SIGNAL,
                ident,
            });
            return;
        }
        let count = take_signals(ident as c_int, s.mail);
        if count == 0 {
            return;
        }
        let k = s.knote;
        out.push(k.event(
            ident,
            EVFILT_SIGNAL,
            0,
            0,
            count.min(i64::MAX as u64) as i64,
        ));
        self.after_delivery(
            epfd,
            PendingRef {
                filter: EVFILT_SIGNAL,
                ident,
            },
            k.flags,
            false,
        );
    }

    fn deliver_user(&mut self, ident: usize, out: &mut Out) {
        let Some(u) = self.users.get_mut(&ident) else {
            return;
        };
        u.knote.queued = false;
        if u.knote.disabled || !u.triggered {
            return;
        }
        let k = u.knote;
        out.push(k.event(ident, EVFILT_USER, 0, k.sfflags, k.sdata));
        if k.flags & EV_CLEAR != 0 {
            u.triggered = false;
        }
        // Without EV_CLEAR a triggered knote stays true: report it again on
        // the next call, as the kernel's level-triggered scan would.
        let again = k.flags & EV_CLEAR == 0;
        self.after_delivery(
            0,
            PendingRef {
                filter: EVFILT_USER,
                ident,
            },
            k.flags,
            again,
        );
    }

    /// EV_ONESHOT deletes a knote once delivered, EV_DISPATCH disables it;
    /// a level knote watched in userspace goes back in the queue.
    fn after_delivery(&mut self, epfd: c_int, r: PendingRef, flags: Flags, requeue: bool) {
        if flags & EV_ONESHOT != 0 {
            let mut del = kevent {
                ident: r.ident,
                filter: r.filter,
                flags: EV_DELETE,
                fflags: 0,
                data: 0,
                udata: std::ptr::null_mut(),
            };
            if is_fd_filter(r.filter) {
                // Delete without the fstat: the knote is known to be live.
                self.unqueue(r);
                let idx = r.ident;
                *self.fds[idx].knote(r.filter) = None;
                let _ = self.update_fd(epfd, r.ident as c_int);
                if self.fds[idx].read.is_none() && self.fds[idx].write.is_none() {
                    self.fds[idx] = FdEntry::default();
                }
            } else {
                del.flags = EV_DELETE;
                let _ = self.register(epfd, &del);
            }
            return;
        }
        if flags & EV_DISPATCH != 0 {
            self.set_disabled(epfd, r);
            return;
        }
        if requeue {
            if let Some(k) = self.knote_mut(r) {
                if !k.queued {
                    k.queued = true;
                    self.pending.push_back(r);
                }
            }
        }
    }

    fn set_disabled(&mut self, epfd: c_int, r: PendingRef) {
        if let Some(k) = self.knote_mut(r) {
            k.disabled = true;
        }
        match r.filter {
            EVFILT_READ | EVFILT_WRITE => {
                let _ = self.update_fd(epfd, r.ident as c_int);
            }
            EVFILT_TIMER => {
                if let Some(t) = self.timers.get_mut(&r.ident) {
                    let _ = set_registered(epfd, t.tfd, &mut t.registered, false, TOKEN_TIMER);
                }
            }
            EVFILT_SIGNAL => {
                if let Some(s) = self.signals.get_mut(&r.ident) {
                    let _ = set_signal_registered(epfd, s, false);
                }
            }
            _ => {}
        }
        self.unqueue(r);
    }

    fn knote_mut(&mut self, r: PendingRef) -> Option<&mut Knote> {
        match r.filter {
            EVFILT_READ | EVFILT_WRITE => self.fds.get_mut(r.ident)?.knote(r.filter).as_mut(),
            EVFILT_TIMER => self.timers.get_mut(&r.ident).map(|t| &mut t.knote),
            EVFILT_SIGNAL => self.signals.get_mut(&r.ident).map(|s| &mut s.knote),
            _ => self.users.get_mut(&r.ident).map(|u| &mut u.knote),
        }
    }
}

fn is_fd_filter(filter: Filter) -> bool {
    filter == EVFILT_READ || filter == EVFILT_WRITE
}

fn is_socket(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::TcpListener | Kind::OtherListener | Kind::Stream | Kind::Dgram
    )
}

// ---------------------------------------------------------------------------
// Filters: what BSD's filt_soread / filt_sowrite / pipe filters compute
// ---------------------------------------------------------------------------

/// EVFILT_READ. Returns (extra flags, fflags, data) when the knote is true.
#[inline(always)]
fn filt_read(e: &mut FdEntry, fd: c_int, k: &Knote, revents: u32) -> Option<(Flags, u32, i64)> {
    let hup = revents & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0;
    let err = revents & libc::EPOLLERR as u32 != 0;
    match e.kind {
        Kind::TcpListener => {
            if revents & (libc::EPOLLIN | libc::EPOLLERR) as u32 == 0 {
                return None;
            }
            let queued = tcp_accept_queue(fd);
            // Zero: another thread accepted in between; nothing to report.
            (queued > 0).then_some((0, 0, queued))
        }
        Kind::OtherListener => (revents & libc::EPOLLIN as u32 != 0).then_some((0, 0, 1)),
        Kind::AlwaysReady => Some((0, 0, if e.regular { bytes_to_eof(fd) } else { 0 })),
        Kind::Dgram => {
            // A datagram (even an empty one) or a pending error makes the
            // socket readable; the error stays for recv() to return, as a
            // temporary UDP error does on BSD (no EV_EOF).
            let n = fionread(fd);
            (revents & (libc::EPOLLIN | libc::EPOLLERR) as u32 != 0).then_some((0, 0, n))
        }
        Kind::Stream => {
            if (hup || err) && stream_is_unconnected(e, fd, revents) {
                return None;
            }
            let n = fionread(fd);
            if e.eof {
                return Some((EV_EOF, e.so_error, n));
            }
            // NOTE_LOWAT: the registration is edge-triggered then
            // (update_fd), so arrivals below the mark cost one look each.
            let lowat = if k.sfflags & NOTE_LOWAT != 0 {
                k.sdata.max(1)
            } else {
                1
            };
            (n >= lowat && revents & libc::EPOLLIN as u32 != 0).then_some((0, 0, n))
        }
        Kind::Pipe => {
            // A pipe's EOF (no writer left) ends when a new writer opens it.
            let n = fionread(fd);
            if hup {
                return Some((EV_EOF, 0, n));
            }
            // NOTE_LOWAT is not applied here: nothing would stop a level
            // registration from waking us below the mark for ever (a
            // documented limitation; sockets enforce it in the kernel).
            (n >= 1 && revents & libc::EPOLLIN as u32 != 0).then_some((0, 0, n))
        }
        Kind::Other | Kind::Unused => {
            let n = fionread(fd);
            if hup || err {
                return Some((EV_EOF, 0, n));
            }
            (revents & libc::EPOLLIN as u32 != 0).then_some((0, 0, n))
        }
    }
}

/// EVFILT_WRITE: `data` is the space left in the send buffer.
///
/// Linux has no SO_SNDLOWAT and EPOLLOUT fires by its own rule, so
/// NOTE_LOWAT cannot be honoured for writing without spinning: it is not
/// applied (a documented limitation).
fn filt_write(e: &mut FdEntry, fd: c_int, revents: u32) -> Option<(Flags, u32, i64)> {
    let gone = revents & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
    let writable = revents & libc::EPOLLOUT as u32 != 0;
    let lowat = 1;
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
            let queued = ioctl_int(fd, libc::TIOCOUTQ);
            let mut space = e.capacity as i64 - queued;
            if space < lowat && writable {
                // Linux grows a TCP send buffer by itself (autotuning), so
                // the size read at EV_ADD can be stale: read it again.
                e.capacity = sndbuf(fd);
                space = e.capacity as i64 - queued;
            }
            if gone {
                return Some((EV_EOF, e.so_error, space.max(0)));
            }
            // The kernel says there is room: never drop that report (an
            // EV_CLEAR writer would wait for ever, a level one would spin).
            writable.then_some((0, 0, space.max(lowat)))
        }
        Kind::Pipe => {
            let mut space = e.capacity as i64 - fionread(fd);
            if space < lowat && writable {
                // F_SETPIPE_SZ may have resized the pipe since EV_ADD.
                // SAFETY: F_GETPIPE_SZ takes no argument and only reads.
                e.capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }.max(0) as u32;
                space = e.capacity as i64 - fionread(fd);
            }
            if gone {
                return Some((EV_EOF, 0, 0));
            }
            writable.then_some((0, 0, space.max(lowat)))
        }
        Kind::Other | Kind::Unused => {
            if gone {
                return Some((EV_EOF, 0, 0));
            }
            (revents & libc::EPOLLOUT as u32 != 0).then_some((0, 0, 0))
        }
    }
}

/// A stream socket's hang-up, seen by the READ filter. Linux calls a
/// stream socket that is not connected (yet) hung up (EPOLLHUP without
/// EPOLLRDHUP or EPOLLERR); BSD reports nothing until it connects, and the
/// end of the stream only after it. Returns true for that case (nothing to
/// report; the entry turns edge-triggered so epoll does not report it on
/// every wait). Otherwise latches EOF (and the socket error) and returns
/// false.
#[cold]
fn stream_is_unconnected(e: &mut FdEntry, fd: c_int, revents: u32) -> bool {
    if revents & (libc::EPOLLRDHUP | libc::EPOLLERR) as u32 == 0 {
        e.unconnected = true;
        return true;
    }
    if revents & libc::EPOLLERR as u32 != 0 {
        note_socket_error(e, fd);
    }
    e.eof = true;
    false
}

/// Reads and keeps the socket's pending error (Linux clears it on read).
fn note_socket_error(e: &mut FdEntry, fd: c_int) {
    let err = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR);
    if err > 0 {
        e.so_error = err as u32;
    }
    e.eof = true;
}

fn new_fd_entry(fd: c_int, st: &libc::stat) -> FdEntry {
    let fmt = st.st_mode & libc::S_IFMT;
    let mut e = FdEntry {
        dev: st.st_dev,
        ino: st.st_ino,
        regular: fmt == libc::S_IFREG,
        ..Default::default()
    };
    e.kind = match fmt {
        libc::S_IFSOCK => {
            let listening = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == 1;
            let ty = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE);
            if listening {
                let domain = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN);
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
            // SAFETY: F_GETPIPE_SZ takes no argument and only reads.
            let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
            e.capacity = size.max(0) as u32;
            Kind::Pipe
        }
        _ => Kind::Other,
    };
    e
}

// ---------------------------------------------------------------------------
// Small syscall wrappers
// ---------------------------------------------------------------------------

fn sys_close(fd: c_int) {
    // SAFETY: closes a descriptor this module owns.
    unsafe { libc::close(fd) };
}

/// Whether epoll still holds a registration of the file `fd` names now.
/// epoll keys its entries by (open file, number), so EPOLL_CTL_MOD fails
/// with ENOENT when the number was closed and reopened. The MOD also
/// re-arms the entry, so a modified or re-enabled knote that is already
/// true is reported again, as FreeBSD re-runs the filter on every change.
fn still_registered(epfd: c_int, fd: c_int, events: u32) -> bool {
    let token = (TOKEN_FD << SHIFT) | fd as u32 as u64;
    sys_epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, events, token) != Err(libc::ENOENT)
}

fn sys_epoll_create() -> Result<c_int, Errno> {
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

fn sys_eventfd() -> Result<c_int, Errno> {
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

fn sys_epoll_ctl(epfd: c_int, op: c_int, fd: c_int, events: u32, token: u64) -> Result<(), Errno> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live epoll_event (ignored for EPOLL_CTL_DEL).
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Adds `fd` to the epoll set or removes it, as `want` says.
fn set_registered(epfd: c_int, fd: c_int, registered: &mut bool, want: bool, kind: u64) -> Errno {
    if *registered == want {
        return 0;
    }
    let op = if want {
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_DEL
    };
    match sys_epoll_ctl(
        epfd,
        op,
        fd,
        libc::EPOLLIN as u32,
        (kind << SHIFT) | fd as u32 as u64,
    ) {
        Ok(()) => {
            *registered = want;
            0
        }
        Err(e) => e,
    }
}

/// Adds a signal knote's two descriptors (the shared signalfd and its own
/// mail eventfd) to the epoll set, or removes them, as `want` says.
fn set_signal_registered(epfd: c_int, s: &mut Signal, want: bool) -> Errno {
    if s.registered == want {
        return 0;
    }
    let mut mail = s.registered;
    let err = set_registered(epfd, s.mail, &mut mail, want, TOKEN_SIGNAL);
    if err != 0 {
        return err;
    }
    let err = set_registered(epfd, s.sfd, &mut s.registered, want, TOKEN_SIGNAL);
    if err != 0 {
        let _ = set_registered(epfd, s.mail, &mut mail, !want, TOKEN_SIGNAL);
    }
    err
}

fn sys_fstat(fd: c_int) -> Result<libc::stat, Errno> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a full `stat` on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } < 0 {
        return Err(errno());
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    Ok(unsafe { st.assume_init() })
}

/// One non-blocking poll of `fd`, for knotes checked in userspace.
fn sys_poll(fd: c_int) -> u32 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one live pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    // POLL* and EPOLL* share their bit values on Linux.
    if n > 0 {
        p.revents as u16 as u32
    } else {
        0
    }
}

fn ioctl_int(fd: c_int, request: libc::Ioctl) -> i64 {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD/TIOCOUTQ write one int.
    if unsafe { libc::ioctl(fd, request, &mut n) } < 0 {
        return 0;
    }
    n as i64
}

fn fionread(fd: c_int) -> i64 {
    ioctl_int(fd, libc::FIONREAD)
}

fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` describe a live int.
    if unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len) } < 0 {
        return -1;
    }
    v
}

fn sndbuf(fd: c_int) -> u32 {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).max(0) as u32
}

/// The number of connections waiting in a TCP listener's accept queue: on
/// a listening socket Linux reports it as `tcpi_unacked`.
fn tcp_accept_queue(fd: c_int) -> i64 {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` describe a live tcp_info buffer.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return 1;
    }
    // SAFETY: zero-initialised and (partly) filled in by the kernel.
    unsafe { info.assume_init() }.tcpi_unacked as i64
}

/// `data` for a regular file: the bytes between the offset and the end.
fn bytes_to_eof(fd: c_int) -> i64 {
    let Ok(st) = sys_fstat(fd) else { return 0 };
    // SAFETY: lseek with SEEK_CUR and offset 0 only reads the offset.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if pos < 0 {
        return 0;
    }
    (st.st_size - pos).max(0)
}

fn sys_timerfd(absolute: bool) -> Result<c_int, Errno> {
    let clock = if absolute {
        libc::CLOCK_REALTIME
    } else {
        libc::CLOCK_MONOTONIC
    };
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe { libc::timerfd_create(clock, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// Sets a timerfd from a timer knote: period `sdata` in the unit its
/// `sfflags` name (milliseconds by default).
fn arm_timer(tfd: c_int, k: &Knote) -> Result<(), Errno> {
    if k.sdata < 0 {
        return Err(libc::EINVAL);
    }
    let unit = k.sfflags & (NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS);
    let per_second: i64 = match unit {
        0 | NOTE_MSECONDS => 1_000,
        NOTE_SECONDS => 1,
        NOTE_USECONDS => 1_000_000,
        NOTE_NSECONDS => 1_000_000_000,
        _ => return Err(libc::EINVAL), // more than one unit
    };
    let absolute = k.sfflags & NOTE_ABSTIME != 0;
    let oneshot = absolute || k.flags & EV_ONESHOT != 0;
    // FreeBSD: a periodic timer of 0 runs every 1 unit.
    let amount = if k.sdata == 0 && !oneshot { 1 } else { k.sdata };
    let mut value = libc::timespec {
        tv_sec: (amount / per_second) as libc::time_t,
        tv_nsec: ((amount % per_second) * (1_000_000_000 / per_second)) as _,
    };
    if value.tv_sec == 0 && value.tv_nsec == 0 {
        value.tv_nsec = 1; // {0, 0} would disarm a timerfd: fire at once
    }
    let spec = libc::itimerspec {
        it_interval: if oneshot {
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }
        } else {
            value
        },
        it_value: value,
    };
    let flags = if absolute { libc::TFD_TIMER_ABSTIME } else { 0 };
    // SAFETY: `spec` is a live itimerspec; the old value is not wanted.
    if unsafe { libc::timerfd_settime(tfd, flags, &spec, std::ptr::null_mut()) } < 0 {
        return Err(errno());
    }
    Ok(())
}

fn sigset_of(signo: c_int) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds a valid signal.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signo);
        set.assume_init()
    }
}

/// Per signal, for the whole process: the one signalfd every knote for it
/// reads (in any kqueue), each knote's mail eventfd with the deliveries
/// counted for it and not yet reported, and whether `kq` blocked the signal.
///
/// kqueue(2) records every delivery in every knote for the signal. A
/// signalfd read consumes the signal, so one read must serve all of them:
/// whoever reads it adds the count to every knote and wakes the other
/// kqueues through their knotes' mail (`take_signals`).
struct SignalState {
    sfd: c_int,
    blocked_by_us: bool,
    /// (mail eventfd, deliveries not yet reported) per knote.
    watchers: Vec<(c_int, u64)>,
}

static SIGNALS: Mutex<[SignalState; 65]> = Mutex::new(
    [const {
        SignalState {
            sfd: -1,
            blocked_by_us: false,
            watchers: Vec::new(),
        }
    }; 65],
);

fn signals() -> MutexGuard<'static, [SignalState; 65]> {
    SIGNALS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new knote for `signo`: blocks the signal in this thread (signalfd sees
/// only blocked signals), opens the shared signalfd if it is the first,
/// and gives the knote a mail eventfd. Returns (signalfd, mail).
fn watch_signal(signo: c_int) -> Result<(c_int, c_int), Errno> {
    let mail = sys_eventfd()?;
    let mut all = signals();
    let st = &mut all[signo as usize];
    let was_blocked = match block_signal(signo) {
        Ok(b) => b,
        Err(e) => {
            sys_close(mail);
            return Err(e);
        }
    };
    st.blocked_by_us |= !was_blocked;
    if st.sfd < 0 {
        let set = sigset_of(signo);
        // SAFETY: `set` is a live sigset.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let e = errno();
            if st.watchers.is_empty() && std::mem::take(&mut st.blocked_by_us) {
                unblock_signal(signo);
            }
            sys_close(mail);
            return Err(e);
        }
        st.sfd = fd;
    }
    st.watchers.push((mail, 0));
    Ok((st.sfd, mail))
}

/// A knote for `signo` goes (EV_DELETE, or its kqueue closed). The last one
/// drops the signals still waiting (they were meant for kqueues), closes
/// the signalfd and unblocks the signal if `kq` blocked it.
fn unwatch_signal(signo: c_int, mail: c_int) {
    let mut all = signals();
    let st = &mut all[signo as usize];
    st.watchers.retain(|&(m, _)| m != mail);
    sys_close(mail);
    if st.watchers.is_empty() && st.sfd >= 0 {
        drain_signalfd(st.sfd);
        sys_close(st.sfd);
        st.sfd = -1;
        if std::mem::take(&mut st.blocked_by_us) {
            unblock_signal(signo);
        }
    }
}

/// The deliveries of `signo` to report for the knote with mail `mail`:
/// reads what is waiting in the shared signalfd, counts it for every
/// knote (waking the others' kqueues through their mail), and takes this
/// knote's count.
fn take_signals(signo: c_int, mail: c_int) -> u64 {
    let mut all = signals();
    let st = &mut all[signo as usize];
    let arrived = if st.sfd >= 0 {
        drain_signalfd(st.sfd) as u64
    } else {
        0
    };
    let mut mine = 0;
    for (m, count) in &mut st.watchers {
        *count += arrived;
        if *m == mail {
            // Clear our mail (another kqueue may have written it); done
            // under the lock, with the count, so no wake-up is lost.
            drain_eventfd(*m);
            mine = std::mem::take(count);
        } else if arrived > 0 {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to a knote's eventfd,
            // open while it is listed here (under this lock).
            unsafe { libc::write(*m, (&one as *const u64).cast(), 8) };
        }
    }
    mine
}

fn drain_eventfd(fd: c_int) {
    let mut n: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd.
    unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
}

/// Blocks `signo` in this thread; returns whether it was blocked already.
fn block_signal(signo: c_int) -> Result<bool, Errno> {
    let set = sigset_of(signo);
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both sets are live; `old` is written by the call.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) };
    if r != 0 {
        return Err(r);
    }
    // SAFETY: pthread_sigmask succeeded and filled `old`.
    Ok(unsafe { libc::sigismember(old.as_ptr(), signo) } == 1)
}

/// Counts (and consumes) the signals waiting in a signalfd.
fn drain_signalfd(sfd: c_int) -> usize {
    let mut total = 0;
    let mut buf = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); 8];
    loop {
        let size = std::mem::size_of_val(&buf);
        // SAFETY: reads at most `size` bytes into `buf`.
        let n = unsafe { libc::read(sfd, buf.as_mut_ptr().cast(), size) };
        if n <= 0 {
            return total;
        }
        total += n as usize / std::mem::size_of::<libc::signalfd_siginfo>();
        if (n as usize) < size {
            return total;
        }
    }
}

fn unblock_signal(signo: c_int) {
    let set = sigset_of(signo);
    // SAFETY: `set` is a live sigset; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}
