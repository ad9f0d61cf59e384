//! # kq: the kqueue(2) API on every OS
//!
//! kqueue is the event notification interface of macOS, FreeBSD, NetBSD,
//! OpenBSD and DragonFly. This crate gives step code one kqueue API
//! everywhere:
//!
//! - on macOS and the BSDs it *is* the kernel's: `kqueue`, `kevent`, the
//!   struct and the constants are re-exported from `libc`, nothing is
//!   re-implemented;
//! - on Linux it is a userspace translation onto epoll, timerfd, signalfd
//!   and eventfd ([`linux`]), faithful to FreeBSD's kqueue(2) man page.
//!
//! Two layers, so a chapter can show either:
//!
//! - **the C layer**, shaped like `<sys/event.h>`: [`kqueue()`], [`kevent()`]
//!   with raw pointers and counts, [`struct kevent`](struct@kevent), [`ev_set`] for the
//!   `EV_SET` macro, and the `EVFILT_*`, `EV_*`, `NOTE_*` constants;
//! - **the safe layer**, [`Kqueue`]: an owned descriptor and
//!   `kq.kevent(&changes, &mut events, timeout) -> io::Result<usize>`, the
//!   same call with slices and no policy of its own.
//!
//! ```no_run
//! use kq::*;
//! use std::net::TcpListener;
//! use std::os::fd::AsRawFd;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let kq = Kqueue::new()?;                               // kqueue()
//! let mut change = kevent_zeroed();
//! ev_set(&mut change, listener.as_raw_fd() as usize,      // EV_SET
//!        EVFILT_READ, EV_ADD, 0, 0, std::ptr::null_mut());
//! kq.kevent(&[change], &mut [], None)?;                  // kevent(changes)
//! let mut events = [kevent_zeroed(); 8];
//! let n = kq.kevent(&[], &mut events, None)?;            // kevent(events)
//! println!("{} connection(s) waiting", { events[0].data });
//! # let _ = n;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## kqueue and epoll, side by side
//!
//! | | kqueue (BSD, macOS) | epoll (Linux) | how `kq` bridges it on Linux |
//! |---|---|---|---|
//! | what is registered | a knote per (ident, filter) | one entry per descriptor | a knote table; READ and WRITE knotes of one fd share one epoll entry |
//! | register and wait | one call: `kevent(changes, events)` | `epoll_ctl` per change, then `epoll_wait` | changes applied in order, then one `epoll_wait` |
//! | errors of a change | `EV_ERROR` entries (or -1) | `epoll_ctl` returns -1 | `EV_ERROR` entries with `data` = errno, FreeBSD's no-room rule |
//! | default trigger | level | level | level |
//! | edge trigger | `EV_CLEAR` | `EPOLLET` | `EPOLLET` |
//! | one-shot / dispatch | `EV_ONESHOT` / `EV_DISPATCH` | `EPOLLONESHOT` (per fd) | applied per knote at delivery |
//! | how much is ready | `data`: bytes, queue length, free space | nothing | one cheap syscall per returned event |
//! | peer closed | `EV_EOF` + `fflags` = error | `EPOLLRDHUP`/`EPOLLHUP`/`EPOLLERR` | `EV_EOF`, `fflags` from `SO_ERROR` |
//! | timers | `EVFILT_TIMER` | `timerfd` | a timerfd per timer |
//! | signals | `EVFILT_SIGNAL` | `signalfd` (signal must be blocked) | one signalfd per signal for the process, its deliveries counted for every knote |
//! | user events | `EVFILT_USER` | `eventfd` | a flag per knote and one eventfd per queue |
//! | `close(fd)` | removes the fd's knotes (per descriptor number) | removes the entry when the last reference to the *open file* closes | knotes of a closed number are recognised at the next change on that number (another (st_dev, st_ino), or epoll no longer holding the file) and dropped |
//! | regular files | always readable | `EPERM` | always readable, checked in userspace |
//!
//! ## Where Linux differs (each is tested in `kq/tests`)
//!
//! The Linux translation follows FreeBSD's kqueue(2): numbering (so
//! `EVFILT_USER` is -11 and `NOTE_MSECONDS` exists), returned flags (the
//! registration's minus `EV_ADD` and the other actions; `EV_ERROR` entries
//! carry exactly `EV_ERROR`), and error codes. What cannot match:
//!
//! 1. **A `dup()` keeps the file in epoll.** epoll follows open files, not
//!    descriptor numbers: if a registered descriptor is closed while a
//!    duplicate (a `dup()`, or a child after `fork()`) still holds the file,
//!    epoll keeps the registration, and only that number could remove it.
//!    `kq` drops such knotes as BSD does: the first time epoll reports the
//!    orphaned file, `kq` builds a fresh epoll set holding only live
//!    registrations and puts it behind the kqueue descriptor with `dup3()`,
//!    so nothing is reported and `kevent()` does not spin. The cost is one
//!    `epoll_ctl` per registration, once. If you `dup()` the *kqueue*
//!    descriptor itself, the copy keeps the old set. `EV_DELETE` before
//!    `close()` avoids all of it when descriptors are shared.
//! 2. **Reading the socket error clears it.** `EV_EOF`'s `fflags` come from
//!    `getsockopt(SO_ERROR)`, which on Linux resets the error: after a reset,
//!    `fflags` says `ECONNRESET` but the next `read()` returns 0 instead of
//!    failing with `ECONNRESET`. BSD's filter only peeks.
//! 3. **Listeners.** `data` of a TCP listener is the real accept queue length
//!    (`TCP_INFO`); for other families (AF_UNIX) Linux cannot tell, and
//!    `data` is 1. A socket is recognised as a listener when it is
//!    registered: call `listen()` before `EV_ADD`.
//! 4. **`EVFILT_WRITE`'s `data`** is `SO_SNDBUF` (read when the knote is
//!    added, and again whenever the kernel says there is room but the old
//!    size says none) minus the bytes queued; Linux reports `SO_SNDBUF`
//!    doubled (its real budget, with bookkeeping overhead). When Linux grows
//!    a TCP buffer by itself (autotuning), `data` may understate the room
//!    until then; it is never 0 in a reported event. An unconnected TCP
//!    socket reports `EV_EOF` for writing on Linux (the kernel calls it hung
//!    up); BSD reports nothing until it connects. For reading `kq` reports
//!    nothing, as BSD does, and keeps that socket's epoll entry
//!    edge-triggered afterwards (a level READ knote then costs one `poll()`
//!    per delivery, as in item 11).
//!    Our own `shutdown(SHUT_WR)` does not set `EV_EOF` on the WRITE knote
//!    (BSD does).
//! 5. **`NOTE_LOWAT`** is honoured for reading on sockets: the knote's
//!    epoll entry is edge-triggered and the filter compares `data` with the
//!    mark, so nothing below it is reported and `kevent()` does not spin;
//!    the socket's own `SO_RCVLOWAT` is left alone. On pipes and for
//!    `EVFILT_WRITE` it is not applied: Linux has no way to make epoll wait
//!    for a mark there.
//! 6. **Signals.** signalfd sees only blocked signals: registering
//!    `EVFILT_SIGNAL` blocks the signal *in the calling thread* (block it in
//!    every thread, or register before spawning threads). While registered,
//!    handlers do not run (BSD runs both). Linux merges repeats of a standard
//!    signal that arrive before `kevent()` reads them, so `data` counts
//!    deliveries rather than every `kill()`. `EV_DELETE` drops what is still
//!    waiting and unblocks the signal if `kq` blocked it, once no knote in
//!    any kqueue watches it any more. Every knote for a signal, in any
//!    kqueue, shares one signalfd; whoever reads it counts the delivery for
//!    all of them, so each kqueue reports it, as on BSD. The block is
//!    inherited across `fork()` and `exec()`: a program started by a plain
//!    C `fork`/`exec` begins with the signal blocked (Rust's `Command` and
//!    most shells reset the mask).
//! 7. **Closing a kqueue** does not wake a `kevent()` blocked on it in
//!    another thread. The queue's bookkeeping is freed at once when a
//!    [`Kqueue`] is dropped; after a raw `close()`, at the next `kqueue()`
//!    or `kevent()` on that number.
//! 8. **A kqueue watched by a kqueue** reports `data` 0 (BSD: the number of
//!    pending events). Datagram sockets report the size of the next datagram
//!    (Linux's `FIONREAD`), not every byte queued.
//! 9. **`fork()`**: the child inherits the epoll descriptor (BSD kqueues are
//!    not inherited); do not use a kqueue in both processes.
//! 10. **Regular files** are always readable, with `data` = bytes to the end
//!     of the file (macOS behaves so; FreeBSD reports a file at its end only
//!     with `NOTE_FILE_POLL`). `/dev/null` is always readable with `data` 0.
//! 11. **Mixing trigger modes on one descriptor** (a level READ knote and an
//!     `EV_CLEAR` WRITE knote) makes the shared epoll entry edge-triggered;
//!     the level knote is then re-checked with `poll()` after each delivery,
//!     one extra syscall.
//!     Any change to one knote of a descriptor (adding, modifying, or a
//!     one-shot deletion of the other filter) re-arms the shared entry, so
//!     an `EV_CLEAR` knote on it may be reported once more with nothing new
//!     (BSD: only the changed knote is looked at again).
//! 12. A knote for `EVFILT_USER` added with `NOTE_TRIGGER` in the same change
//!     does not fire (FreeBSD); macOS fires it. Add first, then trigger.
//! 13. **Smaller differences.** `NOTE_ABSTIME` timers are one-shot (FreeBSD
//!     keeps a fired absolute timer registered); unknown timer `fflags` are
//!     ignored (FreeBSD: `EINVAL`). `EV_RECEIPT` entries echo the change's
//!     `fflags` (FreeBSD zeroes them for a new knote). `kevent()` with
//!     changes but no room for events on a kqueue number closed with a raw
//!     `close()` is not `EBADF` until the number is reused or the next
//!     `kqueue()` call. A closed descriptor's knotes are dropped when the
//!     number is next used in a change; a number reopened on the same file
//!     while both its knotes were disabled cannot be told from the old one.
//!
//! ## Cost
//!
//! In steady state a `kevent()` with an empty changelist is one `epoll_wait`
//! plus one cheap syscall per returned event (`ioctl(FIONREAD)` and friends,
//! for `data`), with no allocation per call and no `epoll_ctl` unless
//! something changed. A registered descriptor knote costs under 128 bytes
//! of user memory.

#[cfg(target_os = "linux")]
pub mod linux;
mod safe;
mod sys;

pub use safe::Kqueue;
pub use sys::*;
