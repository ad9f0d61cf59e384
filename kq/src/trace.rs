//! `KQ_TRACE`: every `kevent()` call, decoded, for learners without
//! ktrace/kdump or dtrace.
//!
//! With `KQ_TRACE=1` in the environment, each call of [`Kqueue::kevent`]
//! (and, for C programs on Linux, kq-c's exported `kevent()`) writes one
//! block to stderr; with `KQ_TRACE=/some/path` the blocks are appended to
//! that file. Unset, empty or `0`: nothing. A block is the call, its
//! result or errno and how long it waited, then each change (before the
//! call) and each event (after it), as `EV_SET` would write them:
//!
//! ```text
//! kevent(3, 1 change, 64 events, NULL) = 1, waited 1.204 ms
//!   change EV_SET(5, EVFILT_READ, EV_ADD, 0, 0, NULL)
//!   event  EV_SET(5, EVFILT_READ, 0, 0, 6, NULL)
//! ```
//!
//! Flags, filters and fflags are named (the fflags by the filter they
//! belong to; on an `EV_EOF` event of `EVFILT_READ`/`EVFILT_WRITE` the
//! fflags are the socket's error, named as an errno), and so are the
//! errno in the `data` of an `EV_ERROR` entry and the call's own errno:
//! `= -1 EINTR (Interrupted system call)`. The timeout is `NULL` (for
//! ever) or `{seconds, nanoseconds}`.
//!
//! The C layer's [`kevent()`](fn@crate::kevent) is the system call itself (on
//! macOS and the BSDs, libc's) and is not traced.
//!
//! ## It never makes the traced program wait
//!
//! A server's stderr may be a pipe nobody reads, and a trace that blocked
//! there would stop the very loop it shows. So the trace never waits for
//! its reader:
//!
//! - a `KQ_TRACE` file is opened by `kq` itself, `O_APPEND | O_NONBLOCK`
//!   (a regular file never waits for a reader; a FIFO that is full loses
//!   the block);
//! - on stderr, each write is at most 512 bytes (POSIX's smallest
//!   `PIPE_BUF`) and is made only after `poll()` says the descriptor has
//!   room, which for a pipe or a socket means a write that size goes
//!   through without waiting. (Another thread writing to stderr between
//!   the two calls could still fill it; a terminal stopped with Ctrl-S
//!   holds writes too.)
//!
//! The file is opened at the first `kevent()` call and holds a descriptor
//! for the rest of the run (close-on-exec), so under `KQ_TRACE=FILE` the
//! numbers the program gets after that call are one higher.
//!
//! What does not fit is dropped, never queued, and counted: the next block
//! that is written starts with `(N kevent() calls not traced: the trace's
//! output was full)`. For a server whose stderr nobody may read, give
//! `KQ_TRACE` a file: the harness does (`harness check --trace`).
//!
//! ## It costs nothing when unset
//!
//! The variable is read once, at the first call; after that a call that is
//! not traced costs one relaxed atomic load and a branch (the bench's phase
//! I measures it). A traced call formats its block on the heap and makes
//! two to four more system calls (`clock_gettime`, `poll`, `write`), and
//! keeps `errno` as the call left it.
//!
//! [`Kqueue::kevent`]: crate::Kqueue::kevent

use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libc::c_int;

use crate::sys::{self, kevent as Kevent, timespec};
use crate::sys::{
    EVFILT_PROC, EVFILT_READ, EVFILT_SIGNAL, EVFILT_TIMER, EVFILT_USER, EVFILT_VNODE, EVFILT_WRITE,
    EV_ADD, EV_CLEAR, EV_DELETE, EV_DISABLE, EV_DISPATCH, EV_ENABLE, EV_EOF, EV_ERROR, EV_ONESHOT,
    EV_RECEIPT, NOTE_ATTRIB, NOTE_DELETE, NOTE_EXIT, NOTE_EXTEND, NOTE_FFAND, NOTE_FFCOPY,
    NOTE_FFCTRLMASK, NOTE_FFOR, NOTE_LINK, NOTE_LOWAT, NOTE_NSECONDS, NOTE_RENAME, NOTE_REVOKE,
    NOTE_SECONDS, NOTE_TRIGGER, NOTE_USECONDS, NOTE_WRITE,
};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

/// Whether `KQ_TRACE` asked for a trace: [`UNKNOWN`] until the first call.
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Where the trace goes; `None` when `KQ_TRACE` asks for none (or its file
/// cannot be opened).
static SINK: OnceLock<Option<Mutex<Sink>>> = OnceLock::new();

/// POSIX's smallest `PIPE_BUF`: a write this size to a pipe that `poll()`
/// called writable goes through whole, without waiting.
const CHUNK: usize = 512;

/// Whether this process traces its `kevent()` calls (`KQ_TRACE` is set,
/// not empty and not `0`, and its file could be opened).
///
/// Read from the environment at the first call only; after that, one
/// relaxed atomic load.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        OFF => false,
        ON => true,
        _ => init(),
    }
}

#[cold]
fn init() -> bool {
    let on = sink().is_some();
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
    on
}

fn sink() -> Option<&'static Mutex<Sink>> {
    SINK.get_or_init(|| {
        let value = std::env::var_os("KQ_TRACE")?;
        if value.is_empty() || value == "0" {
            return None;
        }
        if value == "1" {
            return Some(Mutex::new(Sink {
                fd: Out::Stderr,
                dropped: 0,
                cut: false,
            }));
        }
        match open_append(std::path::Path::new(&value)) {
            Ok(fd) => Some(Mutex::new(Sink {
                fd: Out::File(fd),
                dropped: 0,
                cut: false,
            })),
            Err(e) => {
                // Said once, on the only occasion: the program runs untraced.
                eprintln!("kq: KQ_TRACE={}: {e}; not tracing", value.to_string_lossy());
                None
            }
        }
    })
    .as_ref()
}

/// `kevent()` with the trace: the system call (on Linux, the translation)
/// exactly as [`kevent()`](fn@crate::kevent), and when [`enabled`], one block
/// of the trace for it. [`Kqueue::kevent`](crate::Kqueue::kevent) calls
/// it, and so does kq-c's exported `kevent()`.
///
/// # Safety
///
/// As for [`kevent()`](fn@crate::kevent): `changelist` valid for `nchanges`
/// events, `eventlist` for `nevents`, `timeout` null or valid. The trace
/// reads the changes before the call and the events it returned after it,
/// nothing more.
#[inline]
pub unsafe fn kevent(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const timespec,
) -> c_int {
    if !enabled() {
        // SAFETY: forwarded unchanged; the caller upholds kevent(2)'s rules.
        return unsafe { sys::kevent(kq, changelist, nchanges, eventlist, nevents, timeout) };
    }
    // SAFETY: as above; `traced` reads the lists within their counts.
    unsafe { traced(kq, changelist, nchanges, eventlist, nevents, timeout) }
}

#[cold]
#[inline(never)]
unsafe fn traced(
    kq: c_int,
    changelist: *const Kevent,
    nchanges: c_int,
    eventlist: *mut Kevent,
    nevents: c_int,
    timeout: *const timespec,
) -> c_int {
    // The changes are read before the call: a C program may pass one array
    // as both lists, and the events overwrite it.
    let changes: Vec<Kevent> = if changelist.is_null() || nchanges <= 0 {
        Vec::new()
    } else {
        // SAFETY: the caller says `changelist` holds `nchanges` events.
        unsafe { std::slice::from_raw_parts(changelist, nchanges as usize) }.to_vec()
    };
    // SAFETY: `timeout` is null or valid, as the caller says.
    let wait = unsafe { timeout.as_ref() }.map(|t| (t.tv_sec, t.tv_nsec));
    let start = Instant::now();
    // SAFETY: forwarded unchanged; the caller upholds kevent(2)'s rules.
    let r = unsafe { sys::kevent(kq, changelist, nchanges, eventlist, nevents, timeout) };
    let waited = start.elapsed();
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let events: &[Kevent] = if r <= 0 || eventlist.is_null() {
        &[]
    } else {
        // SAFETY: the call filled in `r` (<= `nevents`) entries of `eventlist`.
        unsafe { std::slice::from_raw_parts(eventlist, r.min(nevents) as usize) }
    };
    let call = Call {
        kq,
        changes: &changes,
        nevents,
        timeout: wait,
        result: if r < 0 { Err(errno) } else { Ok(r) },
        events,
        waited,
    };
    if let Some(sink) = sink() {
        let block = call.to_string();
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_block(block.as_bytes());
    }
    // The caller reads errno after a -1: the trace's own calls must not
    // change it.
    set_errno(errno);
    r
}

/// One `kevent()` call, as the trace shows it. Public so that other tools
/// can print a call the same way; [`Display`](std::fmt::Display) writes the
/// block, ending with a newline.
pub struct Call<'a> {
    /// The kqueue descriptor.
    pub kq: c_int,
    /// The changelist, as passed.
    pub changes: &'a [Kevent],
    /// The room in the eventlist (`nevents`).
    pub nevents: c_int,
    /// The timeout as `(seconds, nanoseconds)`; `None`: NULL, for ever.
    pub timeout: Option<(libc::time_t, libc::c_long)>,
    /// What the call returned: the number of events, or the errno of a -1.
    pub result: Result<c_int, c_int>,
    /// The events it returned.
    pub events: &'a [Kevent],
    /// How long the call took (it waited for most of it, if at all).
    pub waited: Duration,
}

impl std::fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        write!(
            f,
            "kevent({}, {}, {}, ",
            self.kq,
            plural(self.changes.len(), "change"),
            plural(self.nevents.max(0) as usize, "event")
        )?;
        match self.timeout {
            None => write!(f, "NULL")?,
            Some((s, ns)) => write!(f, "{{{s}, {ns}}}")?,
        }
        match self.result {
            Ok(n) => write!(f, ") = {n}")?,
            Err(e) => write!(f, ") = -1 {}", errno_text(e))?,
        }
        writeln!(f, ", waited {}", millis(self.waited))?;
        for ev in self.changes {
            writeln!(f, "  change {}", describe(ev, false))?;
        }
        for ev in self.events {
            writeln!(f, "  event  {}", describe(ev, true))?;
        }
        Ok(())
    }
}

fn millis(d: Duration) -> String {
    format!("{}.{:03} ms", d.as_millis(), d.subsec_micros() % 1000)
}

/// One `struct kevent` as the `EV_SET(...)` that makes it. `returned`: an
/// event the call filled in (its fflags may be an errno), not a change.
// `flags` is a u16 everywhere but NetBSD, where it is already a u32.
#[allow(clippy::useless_conversion)]
pub fn describe(ev: &Kevent, returned: bool) -> String {
    // Copied out: the struct is packed on some systems.
    let (ident, filter, flags, fflags, data, udata) = (
        ev.ident,
        ev.filter,
        u32::from(ev.flags),
        ev.fflags,
        ev.data,
        ev.udata,
    );
    let mut s = format!(
        "EV_SET({ident}, {}, {}, {}, {data}",
        filter_name(filter),
        flag_names(flags),
        fflag_names(filter, flags, fflags, returned)
    );
    if flags & u32::from(EV_ERROR) != 0 && data != 0 {
        if let Ok(e) = c_int::try_from(data) {
            let _ = write!(s, " /* {} */", errno_name(e).unwrap_or("?"));
        }
    }
    if udata.is_null() {
        s.push_str(", NULL)");
    } else {
        let _ = write!(s, ", {udata:p})");
    }
    s
}

fn filter_name(filter: sys::Filter) -> String {
    let names = [
        (EVFILT_READ, "EVFILT_READ"),
        (EVFILT_WRITE, "EVFILT_WRITE"),
        (EVFILT_TIMER, "EVFILT_TIMER"),
        (EVFILT_SIGNAL, "EVFILT_SIGNAL"),
        (EVFILT_USER, "EVFILT_USER"),
        (EVFILT_VNODE, "EVFILT_VNODE"),
        (EVFILT_PROC, "EVFILT_PROC"),
    ];
    match names.iter().find(|(f, _)| *f == filter) {
        Some((_, name)) => name.to_string(),
        None => filter.to_string(),
    }
}

/// `EV_ADD|EV_CLEAR`, `0` for none, unknown bits in hex.
#[allow(clippy::useless_conversion)] // as in `describe`
fn flag_names(flags: u32) -> String {
    let names = [
        (EV_ADD, "EV_ADD"),
        (EV_DELETE, "EV_DELETE"),
        (EV_ENABLE, "EV_ENABLE"),
        (EV_DISABLE, "EV_DISABLE"),
        (EV_ONESHOT, "EV_ONESHOT"),
        (EV_CLEAR, "EV_CLEAR"),
        (EV_RECEIPT, "EV_RECEIPT"),
        (EV_DISPATCH, "EV_DISPATCH"),
        (EV_ERROR, "EV_ERROR"),
        (EV_EOF, "EV_EOF"),
    ];
    bits(
        flags,
        names.iter().map(|&(bit, name)| (u32::from(bit), name)),
    )
}

#[allow(clippy::useless_conversion)] // as in `describe`
fn fflag_names(filter: sys::Filter, flags: u32, fflags: u32, returned: bool) -> String {
    if filter == EVFILT_READ || filter == EVFILT_WRITE {
        if returned && flags & u32::from(EV_EOF) != 0 && fflags != 0 {
            // An EV_EOF event's fflags are the socket's error.
            let e = c_int::try_from(fflags).unwrap_or(c_int::MAX);
            return errno_name(e).map_or_else(|| fflags.to_string(), str::to_string);
        }
        return bits(fflags, [(NOTE_LOWAT, "NOTE_LOWAT")]);
    }
    if filter == EVFILT_VNODE {
        return bits(
            fflags,
            [
                (NOTE_DELETE, "NOTE_DELETE"),
                (NOTE_WRITE, "NOTE_WRITE"),
                (NOTE_EXTEND, "NOTE_EXTEND"),
                (NOTE_ATTRIB, "NOTE_ATTRIB"),
                (NOTE_LINK, "NOTE_LINK"),
                (NOTE_RENAME, "NOTE_RENAME"),
                (NOTE_REVOKE, "NOTE_REVOKE"),
            ],
        );
    }
    if filter == EVFILT_PROC {
        return bits(fflags, [(NOTE_EXIT, "NOTE_EXIT")]);
    }
    if filter == EVFILT_TIMER {
        // Milliseconds, the default, is no bit on macOS; left as it comes.
        return bits(
            fflags,
            [
                (NOTE_SECONDS, "NOTE_SECONDS"),
                (NOTE_USECONDS, "NOTE_USECONDS"),
                (NOTE_NSECONDS, "NOTE_NSECONDS"),
            ],
        );
    }
    if filter == EVFILT_USER {
        let control = match fflags & NOTE_FFCTRLMASK {
            c if c == NOTE_FFAND => Some("NOTE_FFAND"),
            c if c == NOTE_FFOR => Some("NOTE_FFOR"),
            c if c == NOTE_FFCOPY => Some("NOTE_FFCOPY"),
            _ => None,
        };
        let rest = bits(fflags & !NOTE_FFCTRLMASK, [(NOTE_TRIGGER, "NOTE_TRIGGER")]);
        return match (control, rest.as_str()) {
            (Some(c), "0") => c.to_string(),
            (Some(c), _) => format!("{c}|{rest}"),
            (None, _) => rest,
        };
    }
    bits(fflags, [])
}

/// The names of the bits set in `value`, joined with `|`; what no name
/// covers, in hex; `0` for nothing.
fn bits(value: u32, names: impl IntoIterator<Item = (u32, &'static str)>) -> String {
    let mut out = Vec::new();
    let mut rest = value;
    for (bit, name) in names {
        if bit != 0 && value & bit == bit {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "0".to_string()
    } else {
        out.join("|")
    }
}

/// `EINTR (Interrupted system call)`.
fn errno_text(e: c_int) -> String {
    let text = io::Error::from_raw_os_error(e).to_string();
    // std says "Interrupted system call (os error 4)": keep the words.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    match errno_name(e) {
        Some(name) => format!("{name} ({text})"),
        None => format!("{e} ({text})"),
    }
}

/// The C name of the errnos a kevent() call or its events may carry.
fn errno_name(e: c_int) -> Option<&'static str> {
    let names = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::ECHILD, "ECHILD"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EEXIST, "EEXIST"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENFILE, "ENFILE"),
        (libc::EMFILE, "EMFILE"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::EPIPE, "EPIPE"),
        (libc::ERANGE, "ERANGE"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENOTSUP, "ENOTSUP"),
        (libc::ENOTSOCK, "ENOTSOCK"),
        (libc::EADDRINUSE, "EADDRINUSE"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    ];
    names.iter().find(|(n, _)| *n == e).map(|(_, name)| *name)
}

/// Where the blocks go.
enum Out {
    /// fd 2, shared with the program: written only where `poll()` says
    /// there is room.
    Stderr,
    /// A file `kq` opened itself, `O_APPEND | O_NONBLOCK`.
    File(OwnedFd),
}

struct Sink {
    fd: Out,
    /// Calls not traced since the last block written whole.
    dropped: u64,
    /// The last block was cut short: the next output starts a new line.
    cut: bool,
}

impl Sink {
    fn raw_fd(&self) -> RawFd {
        match &self.fd {
            Out::Stderr => libc::STDERR_FILENO,
            Out::File(fd) => fd.as_raw_fd(),
        }
    }

    /// Writes `block` whole, or as much of it as fits, and counts it as
    /// dropped if it did not fit.
    fn write_block(&mut self, block: &[u8]) {
        let mut text = Vec::with_capacity(block.len() + 80);
        if self.cut {
            text.push(b'\n');
        }
        if self.dropped > 0 {
            let note = format!(
                "({} kevent() calls not traced: the trace's output was full)\n",
                self.dropped
            );
            text.extend_from_slice(note.as_bytes());
        }
        text.extend_from_slice(block);
        let mut rest = &text[..];
        let mut wrote_any = false;
        while !rest.is_empty() {
            if matches!(self.fd, Out::Stderr) && !has_room(self.raw_fd()) {
                break;
            }
            let chunk = &rest[..rest.len().min(CHUNK)];
            match write_fd(self.raw_fd(), chunk) {
                Ok(n) => {
                    rest = &rest[n..];
                    wrote_any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if rest.is_empty() {
            self.dropped = 0;
            self.cut = false;
        } else {
            self.dropped += 1;
            self.cut |= wrote_any;
        }
    }
}

/// Whether `poll()` says a write to `fd` would not wait now.
fn has_room(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and a zero timeout: poll() returns at once.
    match cvt(unsafe { libc::poll(&mut p, 1, 0) }) {
        Ok(n) => n == 1 && p.revents & libc::POLLOUT != 0,
        Err(_) => false,
    }
}

fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for its length.
    let n = cvt(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })?;
    Ok(n as usize)
}

fn open_append(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags =
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: `c` is a NUL-terminated path; the mode is a plain integer.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags, 0o644 as libc::c_uint) })?;
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// -1 means the call failed with errno; anything else is its result.
fn cvt<T: Default + PartialOrd>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_errno(e: c_int) {
    // SAFETY: each function returns this thread's errno slot.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "dragonfly"))]
        {
            *libc::__errno_location() = e;
        }
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        {
            *libc::__error() = e;
        }
        #[cfg(target_os = "netbsd")]
        {
            *libc::__errno() = e;
        }
    }
}
