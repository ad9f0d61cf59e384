//! # kq: the kqueue(2) API on every OS
//!
//! kqueue is the event notification interface of macOS, FreeBSD, NetBSD,
//! OpenBSD and DragonFly. This crate gives step code one kqueue API
//! everywhere:
//!
//! - on macOS and the BSDs it *is* the kernel's: `kqueue`, `kevent`, the
//!   struct and the constants are re-exported from `libc`, nothing is
//!   re-implemented;
//! - on Linux it is a userspace translation onto epoll, timerfd, signalfd,
//!   eventfd, inotify and pidfds ([`linux`]), faithful to FreeBSD's
//!   kqueue(2) man page. (The `kq-c` crate builds the same translation as
//!   `libkq.a`/`libkq.so` for C programs.)
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
//! ## Seeing your calls: `KQ_TRACE`
//!
//! Run a program with `KQ_TRACE=1` (or `KQ_TRACE=/some/file`) and every
//! [`Kqueue::kevent`] call is written to stderr (appended to the file),
//! decoded, one block per call: the changes as `EV_SET(...)`, with the
//! flag, filter and fflag names, the result or errno, how long it waited,
//! and the events. It works the same on macOS and the BSDs, and for C
//! programs linked with kq-c on Linux. It never makes the program wait
//! (a full pipe loses blocks, counted), and unset it costs one relaxed
//! atomic load per call: [`trace`] says how.
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
//! | peer closed | `EV_EOF` + `fflags` = error | `EPOLLRDHUP`/`EPOLLHUP`/`EPOLLERR` | `EV_EOF`, `fflags` from `TCP_INFO` (TCP) or `SO_ERROR` |
//! | timers | `EVFILT_TIMER` | `timerfd` | a timerfd per timer |
//! | signals | `EVFILT_SIGNAL` | `signalfd` (signal must be blocked) | one signalfd per signal for the process, its deliveries counted for every knote |
//! | user events | `EVFILT_USER` | `eventfd` | a flag per knote and one eventfd per queue |
//! | `close(fd)` | removes the fd's knotes (per descriptor number) | removes the entry when the last reference to the *open file* closes | before kq reports a knote it evaluated itself it checks that the number still names the knote's file; a number closed (and maybe reused) since has its knotes dropped, never reported |
//! | regular files | readable while the offset is before the end (`data` = bytes left) | `EPERM` | the same, computed with `fstat` and `lseek`; inotify wakes the queue when the file changes |
//! | files and directories | `EVFILT_VNODE` | inotify (by path) | an inotify watch on the file the descriptor holds (`/proc/self/fd/N`) |
//! | processes | `EVFILT_PROC` | pidfd | a pidfd per process; the wait status without reaping |
//!
//! ## Where Linux differs (each is tested in `kq/tests`)
//!
//! The Linux translation follows FreeBSD's kqueue(2): numbering (so
//! `EVFILT_USER` is -11 and `NOTE_MSECONDS` exists), returned flags (the
//! registration's minus `EV_ADD` and the other actions; `EV_ERROR` entries
//! carry exactly `EV_ERROR`), and error codes. What cannot match:
//!
//! 1. **A `dup()` keeps the file in epoll.** close() ends a descriptor's
//!    knotes, as on BSD: kq checks the number before it reports anything it
//!    evaluated itself, and epoll forgets a file when its last descriptor
//!    closes. But epoll follows open files, not numbers: if a registered
//!    descriptor is closed while a duplicate (a `dup()`, or a child after
//!    `fork()`) still holds the file, epoll keeps reporting that file under
//!    the old number, and only that number could remove it. The first time
//!    such a report finds nothing true, `kq` builds a fresh epoll set
//!    holding only live registrations and puts it behind the kqueue
//!    descriptor with `dup3()` (one `epoll_ctl` per registration, once). If
//!    the number was meanwhile reused by a file that has something to
//!    report, the old knote reports *that* file, with the old udata, until
//!    then or until a change names the number. If you `dup()` the *kqueue*
//!    descriptor itself, the copy keeps the old set. `EV_DELETE` before
//!    `close()` avoids all of it when descriptors are shared (or
//!    `O_CLOEXEC` when they are shared with children).
//! 2. **Socket errors.** Linux clears a socket's pending error when it is
//!    read (`SO_ERROR`, and `recv()` even with `MSG_PEEK`); BSD's filter
//!    only looks. For TCP, `EV_EOF`'s `fflags` are told without reading it
//!    (`poll()` says whether there is one, `TCP_INFO` which), so the
//!    program's next `read()` or `getsockopt(SO_ERROR)` still sees it:
//!    `ECONNRESET`, `ECONNREFUSED`, `EPIPE` (a reset after the peer's FIN,
//!    when `kq` saw the FIN first; otherwise `ECONNRESET`), and
//!    `ETIMEDOUT` for retries that ran out, even when an ICMP error
//!    (`EHOSTUNREACH`) ended them, which `TCP_INFO` does not show. For
//!    other sockets (AF_UNIX: `ECONNRESET` when the peer closed with data
//!    unread) `fflags` come from `SO_ERROR`, which clears it: the next
//!    `read()` returns 0 instead of failing. Every kqueue watching the
//!    socket gets the error (the first to read it keeps it for the others),
//!    except one that looks only after all the others deleted their knotes.
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
//!    per delivery, as in item 10).
//!    Our own `shutdown(SHUT_WR)` does not set `EV_EOF` on the WRITE knote
//!    (BSD does).
//! 5. **`NOTE_LOWAT`** is honoured for reading on sockets: the knote's
//!    epoll entry is edge-triggered and the filter compares `data` with the
//!    mark, so nothing below it is reported and `kevent()` does not spin;
//!    the socket's own `SO_RCVLOWAT` is left alone. On pipes it is not
//!    applied. For `EVFILT_WRITE` a mark above the buffer's size is never
//!    met, as on BSD (the knote reports only `EV_EOF`); a mark the buffer
//!    can reach is not applied: Linux has no way to make epoll wait for it.
//! 6. **Signals.** signalfd sees only blocked signals: registering
//!    `EVFILT_SIGNAL` blocks the signal *in the calling thread* (block it in
//!    every thread, or register before spawning threads). While registered,
//!    handlers do not run (BSD runs both), and a signal whose default action
//!    ends the process (SIGTERM, SIGHUP, ...) does not end it: it is only
//!    reported (BSD still terminates). Linux merges repeats of a standard
//!    signal that arrive before `kevent()` reads them, so `data` counts
//!    deliveries rather than every `kill()`. `EV_DELETE` drops what is still
//!    waiting and unblocks the signal if `kq` blocked it, once no knote in
//!    any kqueue watches it any more. Every knote for a signal, in any
//!    kqueue, shares one signalfd; whoever reads it counts the delivery for
//!    all of them, so each kqueue reports it, as on BSD. The block is
//!    inherited across `fork()` and `exec()`: a program started by a plain
//!    C `fork`/`exec` begins with the signal blocked (Rust's `Command` and
//!    most shells reset the mask). SIGKILL, SIGSTOP and numbers above
//!    SIGRTMAX (64; FreeBSD has 128) are `EINVAL`.
//! 7. **Closing a kqueue** does not wake a `kevent()` blocked on it in
//!    another thread. The queue's bookkeeping is freed at once when a
//!    [`Kqueue`] is dropped; after a raw `close()`, at the next `kqueue()`,
//!    or at the next `kevent()` on that number (which is `EBADF` once the
//!    number names anything else).
//! 8. **Datagram sockets** report the size of the next datagram (Linux's
//!    `FIONREAD`), not every byte queued. A kqueue watched by a kqueue
//!    reports in `data` how many events it has pending, as BSD does, but
//!    counts an `EV_CLEAR` knote whose condition still holds after it was
//!    reported (BSD: only once something new happens): epoll's ready list
//!    cannot be read without taking its edge-triggered events, so `kq`
//!    asks each knote's source with one `poll()`.
//! 9. **Regular files** follow FreeBSD's vnode filter: `EVFILT_READ` is true
//!    while the offset is before the end (or always, with
//!    `NOTE_FILE_POLL`), `data` = the bytes left; `EVFILT_WRITE` is always
//!    true with `data` 0. A quiet knote is looked at again when inotify
//!    says the file changed (a write, an attribute, a close), not after a
//!    `read()` of it (FreeBSD 14 also runs the filter on reads). Other
//!    descriptors epoll refuses (`/dev/null`) are always readable and
//!    writable with `data` 0. Where `kq` can only compare inodes (regular
//!    files, directories, a descriptor whose knotes are all disabled), a
//!    number closed and reopened on the *same* file is taken for the old
//!    descriptor. inotify's limits apply: `EV_ADD` fails with `ENOSPC` at
//!    `fs.inotify.max_user_watches`, `EMFILE` at `max_user_instances` (one
//!    per kqueue that watches files); `/proc` must be mounted.
//! 10. **Mixing trigger modes on one descriptor** (a level READ knote and an
//!     `EV_CLEAR` WRITE knote) makes the shared epoll entry edge-triggered;
//!     the level knote is then re-checked with `poll()` after each delivery,
//!     one extra syscall (so is a stream socket epoll keeps calling readable
//!     with nothing to read).
//!     Any change to one knote of a descriptor (adding, modifying, or a
//!     one-shot deletion of the other filter) re-arms the shared entry, so
//!     an `EV_CLEAR` knote on it may be reported once more with nothing new
//!     (BSD: only the changed knote is looked at again).
//! 11. A knote for `EVFILT_USER` added with `NOTE_TRIGGER` in the same change
//!     does not fire (FreeBSD); macOS fires it. Add first, then trigger.
//! 12. **`EVFILT_VNODE`** maps inotify's events onto FreeBSD's notes (see
//!     `linux::filter::vnode`). inotify cannot tell a `truncate()` that grows
//!     a file from a write (reported `NOTE_WRITE | NOTE_EXTEND`; FreeBSD:
//!     `NOTE_ATTRIB`; one that shrinks it is `NOTE_ATTRIB` as on FreeBSD).
//!     inotify merges a `chmod()` with a `link()` or `unlink()` that follows
//!     it before `kq` reads them (both are `IN_ATTRIB`): `kq` tells the
//!     attribute change by the mode, owner and modification time, so one
//!     that changed only the access time (which reads change too), or only
//!     the modification time with a write after it, is reported as the link
//!     change alone. `NOTE_REVOKE` is never reported: Linux has no
//!     `revoke()` and cannot unmount a file system a descriptor holds. A
//!     directory's `rmdir()` is heard through its parent's watch (inotify
//!     tells the directory itself only when its last descriptor closes):
//!     a parent the process may not read cannot be watched, and then the
//!     removal is not reported until that close.
//!     FreeBSD 14's `NOTE_OPEN`,
//!     `NOTE_CLOSE`, `NOTE_CLOSE_WRITE` and `NOTE_READ` come from inotify's
//!     `IN_OPEN`, `IN_CLOSE_NOWRITE`, `IN_CLOSE_WRITE` and `IN_ACCESS`. An
//!     inotify watch cannot be narrowed for one of its users, so once a
//!     knote asked for `NOTE_OPEN` or `NOTE_READ`, every open and read of
//!     that file wakes the queue (for nothing, after that knote is gone)
//!     until the file's last knote in that queue goes.
//! 13. **`EVFILT_PROC`** reports `NOTE_EXIT` only. A change asking for
//!     `NOTE_FORK`, `NOTE_EXEC` or `NOTE_TRACK` fails with `ENOTSUP` (its
//!     EV_ERROR entry, or -1): Linux tells a process about another's forks
//!     and execs only through the process connector (a netlink socket that
//!     needs `CAP_NET_ADMIN`) or ptrace, which a library cannot take over.
//!     Refused, the program finds out and can ask for `NOTE_EXIT` alone;
//!     accepted, it would wait for ever for a fork nobody reports.
//!     `NOTE_TRACKERR` and `NOTE_CHILD` are only ever output on FreeBSD.
//!     `data` is the
//!     wait status: a child's is read without reaping it; for a process that
//!     is not our child (or a child the program reaped before `kq` looked),
//!     it comes from the kernel after the process was reaped (Linux 6.15 and
//!     later) or from `/proc` while it is a zombie, and is 0 when neither
//!     can be had. Needs Linux 5.3 (pidfds).
//! 14. **Filters and flags.** Every constant of FreeBSD 14's
//!     `<sys/event.h>` is defined, with FreeBSD's value, so FreeBSD code
//!     compiles; what Linux cannot do fails at run time in an EV_ERROR
//!     entry, never silently. `EVFILT_AIO` and `EVFILT_LIO` are `EINVAL`
//!     (Linux's POSIX aio(7) is threads in the C library, with no
//!     `SIGEV_KEVENT` to send its completions to a queue), so are `EVFILT_PROCDESC` (Linux has no `pdfork()`;
//!     pidfds are what `EVFILT_PROC` uses), `EVFILT_FS` (Linux reports no
//!     mounts and unmounts to a process), `EVFILT_SENDFILE` (Linux's
//!     `sendfile()` completes before it returns) and `EVFILT_EMPTY` (Linux
//!     wakes epoll when send-buffer space is freed after a writer found it
//!     full, never when the last byte is acknowledged, `SIOCOUTQ` reaching
//!     0, so kq could only poll for it). A
//!     knote that `EV_FORCEONESHOT` reports while its filter finds nothing
//!     true has `fflags` and `data` 0 (FreeBSD: what its filter last
//!     recorded, which kq does not keep for knotes Linux evaluates).
//!     `EV_DROP`, `EV_FLAG1` and `EV_FLAG2` are the
//!     system's, stripped from every change as on FreeBSD. `struct kevent`
//!     is the 32-byte one of macOS and FreeBSD 11: FreeBSD 12's `ext[4]` is
//!     not there, so code that sets it does not compile.
//!
//! ## Cost
//!
//! In steady state a `kevent()` with an empty changelist is one `epoll_wait`
//! plus one cheap syscall per returned event (`ioctl(FIONREAD)` and friends,
//! for `data`), with no allocation per call (epoll's events are taken 256
//! at a time into a buffer on the stack, however long the event list, as
//! FreeBSD copies events out in chunks) and no `epoll_ctl` unless
//! something changed. A call with changes makes one `epoll_ctl` more, which
//! checks that the descriptor is still this kqueue (a number closed with
//! `close()` and reused is `EBADF`, as on BSD). What `kq` evaluates itself (regular files, level
//! knotes on an edge-triggered registration) costs one or two more
//! syscalls per delivery, the check that its number was not closed
//! included. A registered descriptor knote costs under 128 bytes
//! of user memory.

#[cfg(target_os = "linux")]
pub mod linux;
mod safe;
mod sys;
pub mod trace;

pub use safe::Kqueue;
pub use sys::*;
