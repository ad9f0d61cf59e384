//! Where a step's lines go: stderr (the log) and stdout (the `listening on`
//! line), written so that an event loop never waits for them.
//!
//! A write(2) to stderr blocks when the reader is not reading: `step6 2>&1
//! | less` left on its first screen, a service manager's pipe that nobody
//! drains, a terminal on hold (Ctrl-S). Some 64 KiB of log later (a
//! Linux pipe's size), a server that logs with blocking writes stops in the
//! middle of an event, and every user waits with it. Steps 1 to 5 do just
//! that, as the C servers they teach do. Steps 6 to 8 call
//! [`log_without_blocking`] first, and from then on the event loop only
//! hands its lines to a writer thread, through a bounded queue:
//!
//! - the thread does the blocking write()s, to whatever fd 2 is (a
//!   terminal, a pipe, a file, a socket), and waits there instead of the
//!   loop;
//! - the `listening on` line, written once, gets a thread of its own, so a
//!   stdout nobody reads stops neither the loop nor the log (the log waits
//!   at most [`ANNOUNCE_PATIENCE`] for it, so that the two keep their
//!   order on a terminal or in `2>&1`);
//! - the loop holds the queue's lock only to push a line, never while
//!   anything is written;
//! - with [`QUEUE_BYTES`] waiting (the reader is not reading), further log
//!   lines are dropped and counted, and once there is room again the log
//!   says so: `N log lines dropped: stderr is not being read`. The log is
//!   the first output a server forgets: a user's bytes are never dropped
//!   for it.
//!
//! Why a thread, and not a non-blocking write on fd 2 itself:
//!
//! - `O_NONBLOCK` is a flag of the open file description, which fd 2
//!   shares with the shell and every other process of the pipeline or the
//!   terminal: set it, and their writes start failing with EAGAIN (setting
//!   it around each write only makes the window small).
//! - `send(MSG_DONTWAIT)` is per call, but only for sockets; not pipes,
//!   terminals or files.
//! - poll() with a zero timeout before each write says "some room", not
//!   "room for this line": a terminal or a pipe may still block on a line
//!   longer than the room, and a regular file always says ready.
//! - reopening `/proc/self/fd/2` with `O_NONBLOCK` gives a description of
//!   our own, but on Linux only, not for a socket (ENXIO, systemd's
//!   journal), and for a file with an offset of its own.
//!
//! A writer thread works the same on Linux, macOS and the BSDs, for every
//! kind of descriptor, and touches nothing the shell shares. It starts with
//! every signal blocked, so a signal meant for the loop's `EVFILT_SIGNAL`
//! is never taken (and, ignored, thrown away) by it.
//!
//! Except under `KQ_TRACE=1`: then `kq` writes each `kevent()` call on
//! stderr too, from the loop's own thread, and a log written by another
//! thread would come out in an order of its own, a line about an event
//! after the next call's trace. A trace on stderr is for someone reading
//! it as it comes, so the log stays on the loop's thread and in order, as
//! in steps 1 to 5 (the writes may block; for a server whose stderr nobody
//! reads, give `KQ_TRACE` a file, as the harness does: then the writer
//! thread is used).

use std::collections::VecDeque;
use std::ffi::c_int;
use std::fmt;
use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The most bytes of lines that may wait for the writer thread: as much
/// again as a Linux pipe holds. Past it, log lines are dropped (counted).
pub const QUEUE_BYTES: usize = 64 * 1024;

/// How long the log's lines wait for the `listening on` line before them
/// to be written (stdout may be a pipe nobody reads).
pub const ANNOUNCE_PATIENCE: Duration = Duration::from_millis(100);

/// How long [`flush`] waits for the writer to make progress before giving
/// up on the rest (a reader that is not reading never will).
const FLUSH_PATIENCE: Duration = Duration::from_millis(500);

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    /// Lines for stderr, oldest first.
    lines: VecDeque<Vec<u8>>,
    /// The bytes in `lines`.
    bytes: usize,
    /// Log lines dropped since the last notice.
    dropped: u64,
    /// Whether the writer is in a write() now.
    writing: bool,
    /// While the `listening on` line is being written: since when.
    announcing: Option<Instant>,
    /// The step's name, from the last log line (for the notice of lines
    /// dropped).
    name: &'static str,
}

struct Writer {
    pending: Mutex<Pending>,
    /// Signalled when a line is queued (for the writer), and when the
    /// writer finished a line (for [`flush`]).
    changed: Condvar,
}

/// The writer, once [`log_without_blocking`] has started it.
static WRITER: OnceLock<Writer> = OnceLock::new();

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// From now on, [`say!`](crate::say) and [`log!`](crate::log) lines go
/// through a writer thread, and the `listening on` line through one of its
/// own, and neither ever blocks the caller (the module's documentation says why and how). Call it first in
/// `main`, before any signal is registered. Calling it again does nothing.
pub fn log_without_blocking() {
    if WRITER.get().is_some() || traced_on_stderr() {
        return;
    }
    let writer = WRITER.get_or_init(|| Writer {
        pending: Mutex::default(),
        changed: Condvar::new(),
    });
    spawn_quiet("stderr", move || write_forever(writer));
    // A panic (a learner's todo!()) ends the process: the log lines queued
    // before it are what says how the server got there, so they go out
    // first, then the panic's message.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush_unless_busy(writer);
        previous(info);
    }));
}

/// [`flush`], unless this thread panicked while holding the queue's lock:
/// taking it again would never return. The writer thread holds it only for
/// a moment, so a lock still held after 10 ms is this thread's.
fn flush_unless_busy(writer: &Writer) {
    for _ in 0..10 {
        // The guard (if any) is dropped at the end of this statement.
        let busy = matches!(
            writer.pending.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        );
        if !busy {
            return flush();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a thread with every signal blocked: it inherits the signal mask
/// of the thread that creates it, and must never take a signal meant for
/// the loop's `EVFILT_SIGNAL`.
fn spawn_quiet(name: &str, body: impl FnOnce() + Send + 'static) {
    let blocked = BlockAllSignals::new();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("cannot start a writer thread for the log");
    drop(blocked);
}

/// `line` written whole to `fd` with blocking writes; a write error
/// (EPIPE: nobody will ever read) drops the rest.
fn write_whole(fd: c_int, line: &[u8]) {
    let mut rest = line;
    while !rest.is_empty() {
        match crate::write(fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(_) => break,
        }
    }
}

/// The writer thread: takes the oldest line and writes it whole (after
/// the `listening on` line, if that is being written, for at most
/// ANNOUNCE_PATIENCE).
fn write_forever(writer: &Writer) {
    loop {
        let line = {
            let mut p = lock(&writer.pending);
            loop {
                let announcing = p
                    .announcing
                    .map(|since| ANNOUNCE_PATIENCE.saturating_sub(since.elapsed()))
                    .filter(|left| !left.is_zero());
                if let Some(left) = announcing {
                    p = writer
                        .changed
                        .wait_timeout(p, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                    continue;
                }
                if let Some(next) = p.lines.pop_front() {
                    p.bytes -= next.len();
                    p.writing = true;
                    break next;
                }
                p = writer
                    .changed
                    .wait(p)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        write_whole(libc::STDERR_FILENO, &line);
        lock(&writer.pending).writing = false;
        writer.changed.notify_all();
    }
}

/// Queues `line` for stderr, or drops it when the queue is full.
fn queue(writer: &Writer, line: Vec<u8>) {
    let mut p = lock(&writer.pending);
    if p.bytes + line.len() > QUEUE_BYTES {
        p.dropped += 1;
        return;
    }
    if p.dropped > 0 {
        let notice = dropped_notice(p.name, p.dropped);
        p.dropped = 0;
        p.bytes += notice.len();
        p.lines.push_back(notice);
    }
    p.bytes += line.len();
    p.lines.push_back(line);
    drop(p);
    writer.changed.notify_all();
}

/// `step8: N log lines dropped: stderr is not being read`.
/// Whether `kq` writes its trace on stderr (`KQ_TRACE=1`; a file is any
/// other value but `0`): the log then keeps its order with the trace (the
/// module's documentation says why).
fn traced_on_stderr() -> bool {
    std::env::var_os("KQ_TRACE").is_some_and(|v| v == "1")
}

fn dropped_notice(name: &str, n: u64) -> Vec<u8> {
    let s = if n == 1 { "" } else { "s" };
    format!("{name}: {n} log line{s} dropped: stderr is not being read\n").into_bytes()
}

/// One line on stderr, `name: args`: through the writer thread once
/// [`log_without_blocking`] was called, else a plain (blocking) write.
/// What [`say!`](crate::say) calls, with the step's name.
pub fn say_line(name: &'static str, args: fmt::Arguments<'_>) {
    let Some(writer) = WRITER.get() else {
        eprintln!("{name}: {args}");
        return;
    };
    lock(&writer.pending).name = name;
    let line = format!("{name}: {args}\n").into_bytes();
    queue(writer, line);
}

/// The `listening on` line on stdout, never dropped: once
/// [`log_without_blocking`] was called, by a thread of its own, else
/// printed and flushed (stdout is a pipe under the harness: unflushed, the
/// line would sit in a buffer).
pub(crate) fn announce(line: &str) {
    let Some(writer) = WRITER.get() else {
        println!("{line}");
        let _ = io::stdout().flush();
        return;
    };
    lock(&writer.pending).announcing = Some(Instant::now());
    let line = format!("{line}\n").into_bytes();
    spawn_quiet("stdout", move || {
        write_whole(libc::STDOUT_FILENO, &line);
        lock(&writer.pending).announcing = None;
        writer.changed.notify_all();
    });
}

/// Waits until the writer thread has written every line queued (and says
/// how many were dropped, if any were), or until it has made no progress
/// for half a second: a reader that is not reading is not waited for. A
/// step calls it before it exits ([`crate::exit`], and `pick!`'s `main`).
pub fn flush() {
    let Some(writer) = WRITER.get() else {
        let _ = io::stdout().flush();
        return;
    };
    let mut p = lock(&writer.pending);
    if p.dropped > 0 {
        let notice = dropped_notice(p.name, p.dropped);
        p.dropped = 0;
        p.bytes += notice.len();
        p.lines.push_back(notice);
        writer.changed.notify_all();
    }
    let state = |p: &Pending| (p.lines.len(), p.writing, p.announcing.is_some());
    while !p.lines.is_empty() || p.writing || p.announcing.is_some() {
        let left = state(&p);
        let (next, timeout) = writer
            .changed
            .wait_timeout(p, FLUSH_PATIENCE)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        p = next;
        if timeout.timed_out() && state(&p) == left {
            return;
        }
    }
}

/// Blocks every signal in this thread while it lives, then restores the
/// mask it had.
struct BlockAllSignals {
    old: libc::sigset_t,
}

impl BlockAllSignals {
    fn new() -> BlockAllSignals {
        // SAFETY: sigset_t is plain data; sigfillset() and
        // pthread_sigmask() only write the sets they are given.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            BlockAllSignals { old }
        }
    }
}

impl Drop for BlockAllSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by new(); no memory is written.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose thread is not running: what the loop's side does.
    fn stalled() -> Writer {
        let w = Writer {
            pending: Mutex::default(),
            changed: Condvar::new(),
        };
        lock(&w.pending).name = "step9";
        w
    }

    /// Past QUEUE_BYTES waiting, log lines are dropped and counted; the
    /// first line queued once there is room again comes after a notice
    /// saying how many were dropped.
    #[test]
    fn drops_log_lines_past_the_bound_and_then_says_how_many() {
        let w = stalled();
        let line = vec![b'x'; 1000];
        for _ in 0..100 {
            queue(&w, line.clone());
        }
        {
            let p = lock(&w.pending);
            assert_eq!((p.lines.len(), p.bytes, p.dropped), (65, 65_000, 35));
        }
        // The writer takes everything.
        {
            let mut p = lock(&w.pending);
            p.lines.clear();
            p.bytes = 0;
        }
        queue(&w, b"next\n".to_vec());
        let p = lock(&w.pending);
        assert_eq!(
            p.lines,
            [
                b"step9: 35 log lines dropped: stderr is not being read\n".to_vec(),
                b"next\n".to_vec()
            ]
        );
        assert_eq!(p.dropped, 0);
    }
}
