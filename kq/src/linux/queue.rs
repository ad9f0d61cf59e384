//! The queue: a kqueue *is* an epoll descriptor, with a [`Table`] of knotes
//! beside it; the registry that finds a queue by its descriptor number; and
//! the scan of one kevent() call, which turns what epoll reports (and what
//! waits in userspace) into events.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use libc::c_int;

use super::abi::kevent;
use super::fd::Kind;
use super::knote::Table;
use super::os;

/// How many epoll events one epoll_wait takes (the buffer is on the
/// stack); a call with more room takes them in chunks (FreeBSD's
/// KQ_NEVENTS is 40).
const BATCH: usize = 256;
/// FreeBSD silently caps timeouts at 24 hours (kqueue(2), BUGS).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// What an epoll event in a kqueue's set stands for (`epoll_event.u64`: the
/// kind in the top byte, a descriptor number below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// A descriptor with READ and/or WRITE knotes.
    Fd(RawFd),
    /// A timer's timerfd.
    Timer(RawFd),
    /// A signal's signalfd, or a signal knote's mail eventfd.
    Signal(RawFd),
    /// A process's pidfd.
    Proc(RawFd),
    /// The queue's inotify descriptor.
    Inotify,
    /// The queue's wake-up eventfd (knotes pending in userspace).
    Wake,
}

const SHIFT: u32 = 56;

impl Token {
    #[inline(always)]
    pub(crate) fn encode(self) -> u64 {
        let (kind, fd) = match self {
            Token::Fd(fd) => (0, fd),
            Token::Timer(fd) => (1, fd),
            Token::Signal(fd) => (2, fd),
            Token::Proc(fd) => (3, fd),
            Token::Inotify => (4, 0),
            Token::Wake => (5, 0),
        };
        (kind << SHIFT) | fd as u32 as u64
    }

    /// The descriptor of a `Token::Fd`, without decoding the others.
    #[inline(always)]
    fn fd_of(token: u64) -> Option<RawFd> {
        (token >> SHIFT == 0).then_some(token as u32 as RawFd)
    }

    fn decode(token: u64) -> Token {
        let fd = (token & 0xffff_ffff) as RawFd;
        match token >> SHIFT {
            0 => Token::Fd(fd),
            1 => Token::Timer(fd),
            2 => Token::Signal(fd),
            3 => Token::Proc(fd),
            4 => Token::Inotify,
            _ => Token::Wake,
        }
    }
}

/// Adds `fd` to the epoll set `epfd` for reading, or removes it, as `want`
/// says; `registered` tracks which it is.
pub(crate) fn set_registered(
    epfd: RawFd,
    fd: RawFd,
    token: Token,
    registered: &mut bool,
    want: bool,
) -> io::Result<()> {
    if *registered == want {
        return Ok(());
    }
    let op = if want {
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_DEL
    };
    os::epoll_ctl(epfd, op, fd, libc::EPOLLIN as u32, token.encode())?;
    *registered = want;
    Ok(())
}

/// Where kevent() writes its results: the caller's eventlist.
pub(crate) struct Out {
    ptr: *mut kevent,
    cap: usize,
    pub(crate) n: usize,
}

impl Out {
    /// # Safety
    /// `ptr` must be valid for writing `cap` entries while `Out` is used.
    pub(crate) unsafe fn new(ptr: *mut kevent, cap: usize) -> Out {
        Out { ptr, cap, n: 0 }
    }

    #[inline(always)]
    pub(crate) fn room(&self) -> bool {
        self.n < self.cap
    }

    /// An eventlist that is a null pointer with room for `cap`: entries
    /// pushed are counted, not written (FreeBSD ignores the failed copyout
    /// of an EV_ERROR entry).
    pub(crate) fn discarding(cap: usize) -> Out {
        Out {
            ptr: std::ptr::null_mut(),
            cap,
            n: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, ev: kevent) {
        debug_assert!(self.room());
        if !self.ptr.is_null() {
            // SAFETY: `ptr` is valid for `cap` entries (Out::new's
            // contract) and n < cap.
            unsafe { self.ptr.add(self.n).write(ev) };
        }
        self.n += 1;
    }
}

/// One kqueue: the epoll descriptor the caller holds and the knote table.
pub(crate) struct Kq {
    epfd: RawFd,
    /// The table's wake eventfd (the table owns it): whether the epoll set
    /// behind `epfd` still holds it tells whether `epfd` is still this
    /// queue, without taking the table's lock.
    wake_fd: RawFd,
    table: Mutex<Table>,
}

/// The kqueues of this process, by descriptor number. Looked up on every
/// kevent() call, so hashed by a multiply (`FdHash`) instead of SipHash:
/// the keys are this process's own descriptor numbers, not an attacker's.
type Registry = HashMap<RawFd, Arc<Kq>, std::hash::BuildHasherDefault<FdHash>>;

/// A descriptor number's hash: one multiply by the golden ratio, which
/// spreads small consecutive numbers over the high bits the table uses.
#[derive(Default)]
pub(crate) struct FdHash(u64);

impl std::hash::Hasher for FdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = (n as u32 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

// --- fork() ----------------------------------------------------------------
//
// kqueue(2): "The queue is not inherited by a child created with fork(2)"
// (FreeBSD's fdcopy() leaves a kqueue's slot empty in the child). An epoll
// descriptor is inherited, and a child's epoll_wait() on it would take the
// parent's EV_CLEAR events. So a pthread_atfork() handler gives the child
// what FreeBSD gives it: every kqueue number closed, the registry empty
// (kevent() on the number is EBADF), the parent's queues untouched (the
// registrations belong to the epoll set, which the parent still holds).
//
// The child of a threaded process may only make async-signal-safe calls,
// and a lock another thread held at fork() stays held in the child for
// ever. So the registry's lock is taken before fork() (the prepare
// handler, an ordinary context), which also keeps the registry still while
// the process is copied, and the child's handler only empties the map and
// makes close() and epoll_ctl() calls. A queue's table is left alone (its
// lock may be held by a thread that does not exist in the child): it is
// leaked, never dropped, and its other descriptors (timerfds, pidfds, the
// inotify one), all close-on-exec, go at the child's exec().

thread_local! {
    /// The registry's lock, held by the forking thread across fork().
    static HELD_FOR_FORK: RefCell<Option<RwLockWriteGuard<'static, Registry>>> =
        const { RefCell::new(None) };
}

fn install_fork_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()`s that live for
        // the whole program. pthread_atfork fails only for lack of memory;
        // then a child inherits the queues, as without kq's care.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
    });
}

extern "C" fn before_fork() {
    let held = registry().write().unwrap_or_else(|p| p.into_inner());
    HELD_FOR_FORK.with(|h| *h.borrow_mut() = Some(held));
}

extern "C" fn after_fork_in_parent() {
    HELD_FOR_FORK.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn after_fork_in_child() {
    HELD_FOR_FORK.with(|h| {
        let Some(mut reg) = h.borrow_mut().take() else {
            return;
        };
        // drain() keeps the map's memory: no allocator call here.
        for (kq, q) in reg.drain() {
            // The number may have been closed (and reused) with a raw
            // close() since the queue was made: then it is not ours.
            if q.alive() {
                os::close(kq);
            }
            os::close(q.wake_fd);
            // The table (which owns `wake_fd`) is never dropped here.
            std::mem::forget(q);
        }
    });
}

impl Kq {
    /// `kqueue()`: a new epoll set with our wake eventfd in it.
    pub(crate) fn create() -> io::Result<RawFd> {
        install_fork_handlers();
        Self::sweep();
        let ep = os::epoll_create()?;
        let wake = os::eventfd()?;
        os::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            Token::Wake.encode(),
        )?;
        // From here on the descriptor is the caller's: it is the kqueue.
        let epfd = std::os::fd::IntoRawFd::into_raw_fd(ep);
        let q = Arc::new(Kq {
            epfd,
            wake_fd: wake.as_raw_fd(),
            table: Mutex::new(Table::new(epfd, wake)),
        });
        // A stale entry under the same number (a kqueue closed with close())
        // is replaced, which frees its timers and signals.
        registry()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(epfd, q);
        Ok(epfd)
    }

    pub(crate) fn lookup(kq: RawFd) -> Option<Arc<Kq>> {
        registry()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kq)
            .cloned()
    }

    /// Whether `fd` is a live kqueue (for the filters a kqueue refuses).
    pub(crate) fn is_kqueue(fd: RawFd) -> bool {
        Self::lookup(fd).is_some_and(|q| q.alive())
    }

    /// How many events the kqueue `kq` has pending, for a kqueue watching
    /// it (`Table::active_count`). Called under the watching queue's lock,
    /// so this one's is only tried (two queues may watch each other, and
    /// one's scan waits for the other's lock): if another thread holds it
    /// for a moment longer, at least the one event epoll saw is pending.
    pub(crate) fn pending_events(kq: RawFd) -> i64 {
        let Some(q) = Self::lookup(kq) else {
            return 1;
        };
        for _ in 0..8 {
            match q.table.try_lock() {
                Ok(t) => return t.active_count(),
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner().active_count(),
                Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
        1
    }

    pub(crate) fn forget(kq: RawFd, q: &Arc<Kq>) {
        let mut reg = registry().write().unwrap_or_else(|p| p.into_inner());
        if reg.get(&kq).is_some_and(|cur| Arc::ptr_eq(cur, q)) {
            reg.remove(&kq);
        }
    }

    /// Frees the bookkeeping of queues whose descriptor was closed with a
    /// plain `close()` (one cheap `epoll_ctl` per queue, only in `kqueue()`).
    fn sweep() {
        let mut reg = registry().write().unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, q| q.alive());
    }

    /// Whether the descriptor number is still this queue: its epoll set
    /// holds our wake eventfd (adding it again is EEXIST, and changes
    /// nothing). A closed number is EBADF; one reused by another file is
    /// EPERM or EINVAL, or, for another epoll set, a success that is undone.
    pub(crate) fn alive(&self) -> bool {
        let token = Token::Wake.encode();
        let events = libc::EPOLLIN as u32;
        match os::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, self.wake_fd, events, token) {
            Err(e) => e.raw_os_error() == Some(libc::EEXIST),
            Ok(()) => {
                let _ = os::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, self.wake_fd, 0, 0);
                false
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Collects ready events into `out`, waiting up to `timeout` (None: for
    /// ever).
    // Inlined into kevent(), its one caller, so `out` lives in registers
    // on the per-event path (scripts/translation-cost.sh).
    #[inline(always)]
    pub(crate) fn scan(&self, out: &mut Out, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = match timeout {
            Some(t) if !t.is_zero() => Some(Instant::now() + t.min(MAX_TIMEOUT)),
            _ => None,
        };
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); BATCH];
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
            let sweep;
            {
                let mut t = self.lock();
                sweep = t.next_sweep();
                if first_round {
                    first_round = false;
                    t.epoll_turn = !t.epoll_turn;
                    epoll_first = t.epoll_turn && !t.pending.is_empty();
                }
                if !epoll_first {
                    t.deliver_pending(out);
                    t.sync_wake();
                }
            }
            if !out.room() {
                // Filled from userspace alone, without asking epoll (which
                // would fail on a descriptor that is not a kqueue any more).
                return if self.alive() {
                    Ok(())
                } else {
                    Err(os::err(libc::EBADF))
                };
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
                        left.as_nanos().div_ceil(1_000_000).min(c_int::MAX as u128) as c_int
                    }
                }
            };
            let before = out.n;
            // epoll's events, in chunks of at most BATCH (FreeBSD copies
            // events out KQ_NEVENTS at a time): nothing here is sized by the
            // caller's `nevents`, which may be far larger than its list. A
            // level registration that stays ready is handed out again by
            // the next epoll_wait (epoll puts it back behind the others), so
            // a descriptor seen in an earlier chunk of this round is a
            // repeat: it is skipped, and ends the round's chunks.
            let mut wait = wait_ms;
            let mut orphan = false;
            let mut round_events = 0usize;
            // The table's lock from the round's last chunk, kept for the
            // work after the round: one lock less per call.
            let mut held = None;
            loop {
                let chunk = (out.cap - out.n).min(BATCH);
                let batch = &mut buf[..chunk];
                let n = match os::epoll_wait(self.epfd, batch, wait) {
                    Ok(n) => n,
                    Err(e) => {
                        return match os::errno_of(&e) {
                            libc::EINTR if out.n > 0 => Ok(()),
                            // The descriptor was closed, or now names
                            // something else.
                            libc::EBADF | libc::EINVAL => Err(os::err(libc::EBADF)),
                            _ => Err(e),
                        };
                    }
                };
                if n == 0 {
                    break;
                }
                // Sightings are recorded only where another chunk could
                // follow (this one is a full BATCH with room left after it)
                // and checked only in a later chunk: a call that asks for
                // at most BATCH events, the usual one, pays nothing for them
                // on its per-event path.
                let later_chunk = round_events > 0;
                let more_may_follow = n == BATCH && out.cap - out.n > BATCH;
                let sightings = later_chunk || more_may_follow;
                round_events += n;
                let chunk_before = out.n;
                let mut repeat = false;
                let mut t = self.lock();
                for slot in &batch[..n] {
                    // SAFETY: epoll_wait initialised the first `n` entries.
                    let ev = unsafe { slot.assume_init() };
                    let events = ev.events;
                    let token = ev.u64;
                    // Descriptors first: they are the per-event path.
                    if let Some(fd) = Token::fd_of(token) {
                        if sightings && !t.first_sight(fd, sweep) {
                            repeat = true;
                            continue;
                        }
                        orphan |= t.deliver_fd_event(fd, events, out);
                        continue;
                    }
                    match Token::decode(token) {
                        Token::Fd(fd) => orphan |= t.deliver_fd_event(fd, events, out),
                        Token::Timer(tfd) => {
                            if let Some(&ident) = t.timer_by_fd.get(&tfd) {
                                t.deliver_timer(ident, out);
                            }
                        }
                        Token::Signal(sfd) => {
                            if let Some(&ident) = t.signal_by_fd.get(&sfd) {
                                t.deliver_signal(ident, out);
                            }
                        }
                        Token::Proc(pfd) => {
                            if let Some(&ident) = t.proc_by_fd.get(&pfd) {
                                t.deliver_proc(ident, out);
                            }
                        }
                        Token::Inotify => t.read_inotify(out),
                        Token::Wake => {} // pending knotes: handled above
                    }
                }
                // Another chunk only while the last one was full, brought
                // something new, and there is room: the next epoll_wait does
                // not wait.
                if n < chunk || repeat || out.n == chunk_before || !out.room() {
                    held = Some(t);
                    break;
                }
                drop(t);
                wait = 0;
            }
            if round_events > 0 {
                let mut t = held.take().unwrap_or_else(|| self.lock());
                // epoll reported readiness nobody asked for: a file whose
                // registered number was closed while a dup() keeps it open.
                // epoll cannot forget it (EPOLL_CTL_DEL needs that number),
                // and a level registration would report it forever: start a
                // fresh epoll set without it.
                if orphan || (out.n == before && wait_ms != 0 && spurious_rounds >= 2) {
                    t.rebuild();
                    spurious_rounds = 0;
                } else if out.n == before {
                    spurious_rounds += 1;
                }
                t.sync_wake();
            }
            if epoll_first {
                // The userspace knotes' turn, after epoll's.
                let mut t = self.lock();
                t.deliver_pending(out);
                t.sync_wake();
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

impl Table {
    /// Replaces the epoll set behind the kqueue descriptor with a fresh one
    /// that holds only live registrations, dropping the knotes of numbers
    /// that were closed, as close() does on BSD. This is the only way to
    /// forget a closed number whose file a dup() keeps open. Rare: it runs
    /// when epoll reports such a file, never in steady state.
    pub(crate) fn rebuild(&mut self) {
        let Ok(fresh) = os::epoll_create() else {
            return; // out of descriptors: keep the old set
        };
        let set = fresh.as_raw_fd();
        let add = |fd: RawFd, events: u32, token: Token| {
            os::epoll_ctl(set, libc::EPOLL_CTL_ADD, fd, events, token.encode()).is_ok()
        };
        let input = libc::EPOLLIN as u32;
        let mut ok = add(self.wake.as_raw_fd(), input, Token::Wake);
        for fd in 0..self.fds.len() as RawFd {
            let e = &self.fds[fd as usize];
            if !e.used() || matches!(e.kind, Kind::File | Kind::AlwaysReady) {
                continue;
            }
            let same = os::fstat(fd).is_ok_and(|st| e.is(&st));
            if !same {
                self.drop_fd(fd);
                continue;
            }
            if e.registered != 0 {
                ok &= add(fd, e.registered, Token::Fd(fd));
            }
        }
        for t in self.timers.values().filter(|t| t.registered) {
            ok &= add(t.fd(), input, Token::Timer(t.fd()));
        }
        for s in self.signals.values().filter(|s| s.registered) {
            ok &= add(s.sfd, input, Token::Signal(s.sfd));
            ok &= add(s.mail.as_raw_fd(), input, Token::Signal(s.mail.as_raw_fd()));
        }
        for p in self.procs.values().filter(|p| p.registered) {
            ok &= add(p.fd(), input, Token::Proc(p.fd()));
        }
        if let Some(ino) = &self.inotify {
            ok &= add(ino.fd(), input, Token::Inotify);
        }
        // dup3() swaps the file behind the caller's descriptor number in
        // one step; the old set goes away with its last reference (ours
        // goes when `fresh` drops).
        if ok && os::dup3(set, self.epfd).is_ok() {
            // A thread blocked in epoll_wait() on the old set is woken
            // through the eventfd both sets watch, and goes round on the
            // new one; sync_wake() drains it again.
            os::eventfd_signal(self.wake.as_raw_fd());
            self.wake_armed = true;
        }
    }
}
