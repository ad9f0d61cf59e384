//! The Linux system calls the translation makes, one small wrapper each.
//!
//! Every wrapper has the same shape: plain arguments in, `io::Result` out
//! (the errno of a failed call as an `io::Error`, which costs no
//! allocation), and a descriptor the translation will own comes back as an
//! [`OwnedFd`]. The `unsafe` lives here, one `// SAFETY:` per call, so the
//! rest of the module is safe code.
//!
//! A few wrappers on the per-event path answer a plain value instead
//! (`fionread` gives 0 for an error): a failed query there only means there
//! is nothing to report.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::c_int;

/// -1 means the call failed with errno; anything else is its result.
fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A descriptor a system call just returned, owned from now on.
fn owned(r: c_int) -> io::Result<OwnedFd> {
    let fd = cvt(r)?;
    // SAFETY: the call succeeded, so `fd` is a new descriptor nobody else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The errno of an error (EIO for the rare error that has none).
pub(crate) fn errno_of(e: &io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// An `io::Error` for an errno value.
pub(crate) fn err(errno: c_int) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Sets this thread's `errno`.
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location() returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// close(2) of a descriptor no `OwnedFd` owns (the child's copies after
/// fork()); async-signal-safe.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: plain syscall; the caller owns the number.
    unsafe { libc::close(fd) };
}

// --- epoll -----------------------------------------------------------------

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live epoll_event (ignored for EPOLL_CTL_DEL).
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(drop)
}

/// Waits for up to `buf.len()` events; returns how many were written.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    buf: &mut [MaybeUninit<libc::epoll_event>],
    timeout_ms: c_int,
) -> io::Result<usize> {
    let max = buf.len().min(c_int::MAX as usize) as c_int;
    // SAFETY: `buf` has room for `max` events.
    let n = cvt(unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr().cast(), max, timeout_ms) })?;
    Ok(n as usize)
}

/// Puts the file of `from` behind the descriptor number `to` (closing what
/// `to` named), close-on-exec.
pub(crate) fn dup3(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on two descriptor numbers.
    cvt(unsafe { libc::dup3(from, to, libc::O_CLOEXEC) }).map(drop)
}

// --- eventfd, timerfd --------------------------------------------------------

pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// Adds 1 to an eventfd's counter (it becomes readable).
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64. It can only fail if the
    // counter is about to overflow, when the eventfd is readable anyway.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Reads the 8-byte counter of a non-blocking eventfd or timerfd: the
/// count, or 0 if there was none (EAGAIN).
pub(crate) fn read_counter(fd: RawFd) -> u64 {
    let mut n: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let r = unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) };
    if r == 8 {
        n
    } else {
        0
    }
}

/// A non-blocking timerfd on the monotonic clock, or on the realtime clock
/// for absolute deadlines.
pub(crate) fn timerfd(realtime: bool) -> io::Result<OwnedFd> {
    let clock = if realtime {
        libc::CLOCK_REALTIME
    } else {
        libc::CLOCK_MONOTONIC
    };
    // SAFETY: plain syscall, no pointers.
    owned(unsafe { libc::timerfd_create(clock, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })
}

pub(crate) fn timerfd_settime(
    fd: RawFd,
    absolute: bool,
    spec: &libc::itimerspec,
) -> io::Result<()> {
    let flags = if absolute { libc::TFD_TIMER_ABSTIME } else { 0 };
    // SAFETY: `spec` is a live itimerspec; the old value is not wanted.
    cvt(unsafe { libc::timerfd_settime(fd, flags, spec, std::ptr::null_mut()) }).map(drop)
}

/// Now on `clock`.
pub(crate) fn clock_now(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into the live `ts`; the clocks used here
    // always exist, so it cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

// --- descriptors -------------------------------------------------------------

pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a full `stat` on success.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so `st` is initialised.
    Ok(unsafe { st.assume_init() })
}

/// The descriptor's file offset.
pub(crate) fn offset(fd: RawFd) -> io::Result<i64> {
    // SAFETY: lseek with SEEK_CUR and offset 0 only reads the offset.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if pos < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pos)
    }
}

/// One non-blocking poll() of `fd` for reading and writing; the returned
/// events (POLL* and EPOLL* share their bit values on Linux), 0 if none.
pub(crate) fn poll(fd: RawFd) -> u32 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one live pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n > 0 {
        p.revents as u16 as u32
    } else {
        0
    }
}

/// One non-blocking poll() of many descriptors; each `revents` is filled
/// in (0 for one with nothing, or when the call fails).
pub(crate) fn poll_many(fds: &mut [libc::pollfd]) {
    // SAFETY: `fds` is a live slice of pollfds, its length passed with it.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
}

/// An ioctl that writes one int (FIONREAD, TIOCOUTQ).
pub(crate) fn ioctl_int(fd: RawFd, request: libc::Ioctl) -> io::Result<c_int> {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD and TIOCOUTQ write one int.
    cvt(unsafe { libc::ioctl(fd, request, &mut n) })?;
    Ok(n)
}

/// Bytes waiting to be read (0 when the descriptor cannot tell). On the
/// per-event path, so it skips building an error nobody looks at.
#[inline(always)]
pub(crate) fn fionread(fd: RawFd) -> i64 {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } < 0 {
        return 0;
    }
    n.into()
}

/// The size of a pipe's buffer.
pub(crate) fn pipe_size(fd: RawFd) -> io::Result<c_int> {
    // SAFETY: F_GETPIPE_SZ takes no argument and only reads.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) })
}

// --- sockets -----------------------------------------------------------------

pub(crate) fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` describe a live int.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len) })?;
    Ok(v)
}

/// A TCP socket's `TCP_INFO` (EOPNOTSUPP for another kind of socket).
/// Reading it changes nothing: unlike `SO_ERROR`, it clears no error.
pub(crate) fn tcp_info(fd: RawFd) -> io::Result<libc::tcp_info> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` describe a live tcp_info buffer.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised and (partly) filled in by the kernel.
    Ok(unsafe { info.assume_init() })
}

/// The connections waiting in a TCP listener's accept queue: on a
/// listening socket Linux reports it as `tcpi_unacked`.
pub(crate) fn tcp_accept_queue(fd: RawFd) -> io::Result<u32> {
    Ok(tcp_info(fd)?.tcpi_unacked)
}

/// The ordinary bytes a stream socket holds, counted without copying them
/// (MSG_PEEK | MSG_TRUNC): unlike FIONREAD, which stops at a TCP urgent
/// mark, this reads past an urgent byte as read() does. 0 if none.
pub(crate) fn stream_bytes(fd: RawFd) -> i64 {
    // SAFETY: with MSG_TRUNC the kernel copies nothing into the (null)
    // buffer; it only counts, and MSG_PEEK leaves the bytes queued.
    let n = unsafe {
        libc::recv(
            fd,
            std::ptr::null_mut(),
            c_int::MAX as usize,
            libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    n.max(0) as i64
}

// --- signals -----------------------------------------------------------------

/// A set holding one signal; EINVAL if it is not a signal number.
fn sigset_of(signo: c_int) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset checks `signo`.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        cvt(libc::sigaddset(set.as_mut_ptr(), signo))?;
        Ok(set.assume_init())
    }
}

/// Blocks `signo` in this thread; returns whether it was blocked already.
pub(crate) fn block_signal(signo: c_int) -> io::Result<bool> {
    let set = sigset_of(signo)?;
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both sets are live; `old` is written by the call.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) };
    if r != 0 {
        return Err(err(r));
    }
    // SAFETY: pthread_sigmask succeeded and filled `old`.
    Ok(unsafe { libc::sigismember(old.as_ptr(), signo) } == 1)
}

pub(crate) fn unblock_signal(signo: c_int) {
    if let Ok(set) = sigset_of(signo) {
        // SAFETY: `set` is a live sigset; the old mask is not wanted.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// A non-blocking signalfd for one signal.
pub(crate) fn signalfd(signo: c_int) -> io::Result<OwnedFd> {
    let set = sigset_of(signo)?;
    // SAFETY: `set` is a live sigset; -1 asks for a new descriptor.
    owned(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })
}

/// Reads (and so consumes) every signal waiting in a signalfd; returns how
/// many there were.
pub(crate) fn drain_signalfd(sfd: RawFd) -> u64 {
    let mut total = 0;
    let mut buf = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); 8];
    let size = std::mem::size_of_val(&buf);
    loop {
        // SAFETY: reads at most `size` bytes into `buf`.
        let n = unsafe { libc::read(sfd, buf.as_mut_ptr().cast(), size) };
        if n <= 0 {
            return total;
        }
        total += (n as usize / std::mem::size_of::<libc::signalfd_siginfo>()) as u64;
        if (n as usize) < size {
            return total;
        }
    }
}

/// The highest signal number (SIGRTMAX as the C library defines it).
pub(crate) fn sigrtmax() -> c_int {
    libc::SIGRTMAX()
}

// --- inotify -----------------------------------------------------------------

pub(crate) fn inotify() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    owned(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })
}

pub(crate) fn inotify_add_watch(ifd: RawFd, path: &CStr, mask: u32) -> io::Result<c_int> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::inotify_add_watch(ifd, path.as_ptr(), mask) })
}

pub(crate) fn inotify_rm_watch(ifd: RawFd, wd: c_int) {
    // SAFETY: plain syscall; an unknown `wd` is only EINVAL.
    unsafe { libc::inotify_rm_watch(ifd, wd) };
}

/// Reads what is waiting in a non-blocking descriptor into `buf`; 0 when
/// nothing is (EAGAIN) or on an error.
pub(crate) fn read_into(fd: RawFd, buf: &mut [u8]) -> usize {
    // SAFETY: reads at most buf.len() bytes into `buf`.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    n.max(0) as usize
}

// --- processes ---------------------------------------------------------------

/// A descriptor for process `pid` (ESRCH if there is none).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with two integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    owned(r as c_int)
}

/// Whether the process behind `pidfd` still exists (signal 0 is only a
/// check): true for a zombie, false once it was reaped.
pub(crate) fn pidfd_alive(pidfd: RawFd) -> bool {
    // SAFETY: plain syscall; signal 0 sends nothing, a null siginfo is
    // allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    r == 0
}

/// The wait status of an exited child, without reaping it (WNOWAIT), so
/// its parent can still wait for it. Ok(None): it has not exited;
/// Err(ECHILD): it is not our child.
pub(crate) fn child_status(pidfd: RawFd) -> io::Result<Option<c_int>> {
    // SAFETY: a zeroed siginfo is a valid value for waitid() to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid() on a pidfd with a live siginfo; WNOWAIT leaves the
    // child to be reaped by its parent.
    cvt(unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    })?;
    // SAFETY: waitid() succeeded; si_pid is 0 when nothing has exited.
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    // SAFETY: as above; for a CLD_* code si_status is the exit code or the
    // signal.
    let status = unsafe { info.si_status() };
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f, // CLD_KILLED
    }))
}

/// The wait status the kernel kept for a process that exited and was
/// reaped (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15 and later).
/// None: not available (an older kernel, or not reaped yet).
pub(crate) fn pidfd_exit_status(pidfd: RawFd) -> Option<c_int> {
    // SAFETY: pidfd_info is plain integers; all-zero is a valid value.
    let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
    info.mask = libc::PIDFD_INFO_EXIT as u64;
    // SAFETY: PIDFD_GET_INFO reads and writes one pidfd_info.
    let r = unsafe { libc::ioctl(pidfd, libc::PIDFD_GET_INFO, &mut info) };
    (r == 0 && info.mask & libc::PIDFD_INFO_EXIT as u64 != 0).then_some(info.exit_code)
}
