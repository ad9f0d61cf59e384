//! Helpers shared by the kqueue(2) conformance tests: building changes,
//! waiting for events with deadlines, and descriptors (sockets, pipes) to
//! watch.
//!
//! Every test binary is one process whose tests run in parallel threads, so
//! nothing here relies on descriptor numbers being predictable, and nothing
//! ever blocks without a deadline.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use kq::*;

/// How long an event that is due may take to arrive on a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How long we watch to be confident that an event is *not* coming.
pub const QUIET: Duration = Duration::from_millis(50);

/// A returned `struct kevent`, copied field by field (by value: macOS packs
/// the struct, so references to its fields are not allowed), in types that
/// are the same on every OS and print with `{:?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    pub ident: usize,
    pub filter: Filter,
    pub flags: Flags,
    pub fflags: u32,
    pub data: i64,
    pub udata: usize,
}

impl Ev {
    // `data` is int64_t on FreeBSD, NetBSD and in `kq` on Linux, but
    // intptr_t (isize) on macOS: the cast is a no-op on most targets.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_kevent(k: &kevent) -> Ev {
        Ev {
            ident: { k.ident },
            filter: { k.filter },
            flags: { k.flags },
            fflags: { k.fflags },
            data: { k.data } as i64,
            udata: { k.udata } as usize,
        }
    }

    /// Whether every bit of `flag` is set (returned flags differ between
    /// FreeBSD and macOS, so tests only ever look at single bits).
    pub fn has(&self, flag: Flags) -> bool {
        self.flags & flag == flag
    }

    pub fn is(&self, ident: usize, filter: Filter) -> bool {
        self.ident == ident && self.filter == filter
    }
}

/// What `EV_SET(&kev, ident, filter, flags, fflags, data, udata)` builds.
pub fn change(
    ident: usize,
    filter: Filter,
    flags: Flags,
    fflags: u32,
    data: i64,
    udata: usize,
) -> kevent {
    let mut kev = kevent_zeroed();
    ev_set(
        &mut kev,
        ident,
        filter,
        flags,
        fflags,
        data as Data,
        udata as *mut libc::c_void,
    );
    kev
}

/// A change for a descriptor filter with no fflags, data or udata.
pub fn fd_change(fd: RawFd, filter: Filter, flags: Flags) -> kevent {
    change(fd as usize, filter, flags, 0, 0, 0)
}

/// The changes in printable form, for failure messages.
pub fn show(changes: &[kevent]) -> Vec<Ev> {
    changes.iter().map(Ev::from_kevent).collect()
}

pub fn new_kq() -> Kqueue {
    Kqueue::new().expect("kqueue() failed")
}

/// Applies `changes` with no eventlist, so a failed change makes the call
/// fail with its errno (kqueue(2): no room for the EV_ERROR entry).
pub fn apply(kq: &Kqueue, changes: &[kevent]) -> io::Result<usize> {
    kq.kevent(changes, &mut [], Some(Duration::ZERO))
}

/// Applies `changes` and panics, saying which, if the call fails.
pub fn add(kq: &Kqueue, changes: &[kevent]) {
    if let Err(e) = apply(kq, changes) {
        panic!("applying {:?} failed: {e}", show(changes));
    }
}

/// The errno a single change fails with when there is no eventlist (0 if
/// it succeeds).
pub fn errno_of(kq: &Kqueue, ch: kevent) -> i32 {
    match apply(kq, &[ch]) {
        Ok(n) => {
            assert_eq!(n, 0, "kevent() with nevents = 0 returned {n}");
            0
        }
        Err(e) => e.raw_os_error().expect("an OS error"),
    }
}

/// The `data` of the EV_ERROR entry that `EV_RECEIPT` makes `ch` produce:
/// its errno, or 0 when it succeeded.
pub fn receipt_of(kq: &Kqueue, ch: kevent) -> i64 {
    let mut ch = ch;
    ch.flags |= EV_RECEIPT;
    let mut out = [kevent_zeroed(); 1];
    let n = kq
        .kevent(&[ch], &mut out, Some(DEADLINE))
        .unwrap_or_else(|e| {
            panic!(
                "kevent({:?}) with room for a receipt failed: {e}",
                show(&[ch])
            )
        });
    assert_eq!(
        n,
        1,
        "sent {:?} with EV_RECEIPT, expected one entry",
        show(&[ch])
    );
    let got = Ev::from_kevent(&out[0]);
    assert!(
        got.has(EV_ERROR),
        "sent {:?}, expected an EV_ERROR entry, got {got:?}",
        show(&[ch])
    );
    got.data
}

/// One `kevent()` call with no changes and room for 16 events.
pub fn wait(kq: &Kqueue, timeout: Duration) -> Vec<Ev> {
    let mut out = [kevent_zeroed(); 16];
    let n = kq
        .kevent(&[], &mut out, Some(timeout))
        .expect("kevent() failed");
    out[..n].iter().map(Ev::from_kevent).collect()
}

/// What is ready right now (zero timeout).
pub fn poll(kq: &Kqueue) -> Vec<Ev> {
    wait(kq, Duration::ZERO)
}

/// Waits up to [`DEADLINE`] for an event on (ident, filter) and returns it;
/// events for other knotes are dropped. Panics with what did arrive.
pub fn wait_for(kq: &Kqueue, ident: usize, filter: Filter) -> Ev {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < DEADLINE {
        let left = DEADLINE.saturating_sub(start.elapsed());
        for ev in wait(kq, left) {
            if ev.is(ident, filter) {
                return ev;
            }
            seen.push(ev);
        }
    }
    panic!("expected an event for ident {ident} filter {filter} within {DEADLINE:?}; got only {seen:?}");
}

/// Asserts that no event for (ident, filter) arrives within `within`.
pub fn assert_quiet(kq: &Kqueue, ident: usize, filter: Filter, within: Duration, why: &str) {
    let start = Instant::now();
    loop {
        let left = within.saturating_sub(start.elapsed());
        let evs = wait(kq, left);
        if let Some(ev) = evs.iter().find(|e| e.is(ident, filter)) {
            panic!("{why}: expected no event for ident {ident} filter {filter}, got {ev:?}");
        }
        if left.is_zero() {
            return;
        }
    }
}

/// Asserts that no event for (ident, filter) arrives within `within`, and
/// that kevent() slept meanwhile: it used under a third of that time of
/// CPU (a busy loop inside kevent() uses all of it).
pub fn assert_quiet_and_asleep(
    kq: &Kqueue,
    ident: usize,
    filter: Filter,
    within: Duration,
    why: &str,
) {
    let cpu = thread_cpu();
    assert_quiet(kq, ident, filter, within, why);
    let spent = thread_cpu() - cpu;
    assert!(
        spent < within / 3,
        "{why}: waiting {within:?} used {spent:?} of CPU: kevent() spins"
    );
}

/// Asserts that the queue reports nothing at all within `within`.
pub fn assert_no_events(kq: &Kqueue, within: Duration, why: &str) {
    let evs = wait(kq, within);
    assert!(evs.is_empty(), "{why}: expected no events, got {evs:?}");
}

/// Runs `f` on a thread and panics if it has not finished within `limit`
/// (for calls that block with a NULL timeout: a bug must fail the test, not
/// hang it). The thread is left behind if it is stuck.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("{what}: still blocked after {limit:?}"),
    }
}

// --- descriptors -------------------------------------------------------------

/// A connected AF_UNIX stream socketpair, with read timeouts.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    for s in [&a, &b] {
        s.set_read_timeout(Some(DEADLINE)).expect("SO_RCVTIMEO");
        s.set_write_timeout(Some(DEADLINE)).expect("SO_SNDTIMEO");
    }
    (a, b)
}

/// A connected TCP pair on 127.0.0.1 (client, server side), with timeouts.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let client = TcpStream::connect(listener.local_addr().expect("local_addr")).expect("connect");
    // The connection is already established (connect() returned), so
    // accept() does not block.
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_read_timeout(Some(DEADLINE)).expect("SO_RCVTIMEO");
        s.set_write_timeout(Some(DEADLINE)).expect("SO_SNDTIMEO");
        s.set_nodelay(true).expect("TCP_NODELAY");
    }
    (client, server)
}

/// A pipe (read end, write end), both non-blocking and close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe(): {}", io::Error::last_os_error());
    // SAFETY: pipe() just returned these two descriptors; nothing else owns them.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(r.as_raw_fd());
    set_nonblocking(w.as_raw_fd());
    (r, w)
}

pub fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we hold; F_GETFL/F_SETFL take an int.
    let rc = unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK | libc::O_CLOEXEC)
    };
    assert!(rc >= 0, "fcntl(O_NONBLOCK): {}", io::Error::last_os_error());
}

/// write(2) once; returns the count or the error.
pub fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for reading bytes.len() bytes.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// read(2) once into a buffer of `max` bytes.
pub fn read_fd(fd: RawFd, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    // SAFETY: `buf` is valid for writing buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Writes to a non-blocking descriptor until it would block; returns how
/// many bytes went in.
pub fn fill(fd: RawFd) -> usize {
    let chunk = [b'x'; 4096];
    let mut total = 0;
    loop {
        match write_fd(fd, &chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("filling fd {fd}: {e}"),
        }
    }
}

/// Reads everything a stream holds right now, with its read timeout as the
/// deadline for the first byte.
pub fn read_exact_n<S: Read>(s: &mut S, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read_exact");
    buf
}

pub fn send<S: Write>(s: &mut S, bytes: &[u8]) {
    s.write_all(bytes).expect("write_all");
}

/// Whether `fd` is an open descriptor.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Moves `fd` onto the descriptor number `number` with dup2() and closes
/// the original.
///
/// Tests about descriptor numbers use numbers far above what the other
/// tests ever hold: descriptors are allocated lowest-first, so no other
/// thread of the test process can take such a number between our close()
/// and our reuse of it. Each test uses its own number.
pub fn move_to(fd: OwnedFd, number: RawFd) -> OwnedFd {
    assert!(
        !is_open(number),
        "fd {number} is already in use: pick another number for this test"
    );
    // SAFETY: dup2 of a descriptor we own onto a number nobody holds.
    let rc = unsafe { libc::dup2(fd.as_raw_fd(), number) };
    assert_eq!(
        rc,
        number,
        "dup2 onto {number}: {}",
        io::Error::last_os_error()
    );
    drop(fd);
    // SAFETY: dup2 just made `number` a new descriptor that only we own.
    unsafe { OwnedFd::from_raw_fd(number) }
}

/// Sends a TCP reset instead of a FIN: SO_LINGER with a zero timeout, then
/// close().
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a live `linger` of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

/// Sets an int socket option; panics with the OS error if it fails.
pub fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: setsockopt reads a live int of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {name}, {value}): {}",
        io::Error::last_os_error()
    );
}

pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the live `v`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
    v
}

/// CPU time this thread has used so far.
pub fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A directory of its own under the system's temporary directory, removed
/// (with everything in it) when dropped, also while panicking.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh directory named after the test (`tag`) and this process.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("kq-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends `bytes` to the file at `path` through a descriptor of its own
/// (another writer, as far as a reader's descriptor is concerned).
pub fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path:?} for appending: {e}"));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("append to {path:?}: {e}"));
}

/// The pid waitid() reported (0: nothing has exited). Linux and NetBSD's
/// libc bindings have an accessor, the others a field.
#[cfg(any(target_os = "linux", target_os = "netbsd"))]
pub fn exited_pid(info: &libc::siginfo_t) -> libc::pid_t {
    // SAFETY: waitid() filled `info` in; si_pid is 0 if nothing exited.
    unsafe { info.si_pid() }
}
#[cfg(not(any(target_os = "linux", target_os = "netbsd")))]
pub fn exited_pid(info: &libc::siginfo_t) -> libc::pid_t {
    info.si_pid
}

/// Waits (up to DEADLINE) until our child `pid` has exited, without
/// reaping it.
pub fn wait_until_exited(pid: usize) {
    let start = Instant::now();
    loop {
        // SAFETY: a zeroed siginfo for waitid() to fill in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid() on our own child with a live siginfo; WNOWAIT
        // leaves it to be reaped later.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            )
        };
        if rc == 0 && exited_pid(&info) != 0 {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "child {pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A directory with a file `f` holding "0123456789", the file opened for
/// reading, and a queue with an EV_CLEAR vnode knote for `notes` on it.
pub struct Watched {
    pub dir: TempDir,
    pub file: std::fs::File,
    pub kq: Kqueue,
}

impl Watched {
    pub fn new(tag: &str, notes: u32) -> Watched {
        let dir = TempDir::new(&format!("vnode-{tag}"));
        std::fs::write(dir.path("f"), b"0123456789").expect("write the file");
        let file = std::fs::File::open(dir.path("f")).expect("open the file");
        let kq = new_kq();
        add(
            &kq,
            &[change(
                file.as_raw_fd() as usize,
                EVFILT_VNODE,
                EV_ADD | EV_CLEAR,
                notes,
                0,
                42,
            )],
        );
        Watched { dir, file, kq }
    }

    pub fn fd(&self) -> usize {
        self.file.as_raw_fd() as usize
    }

    /// The next vnode event: its fflags, after checking ident, udata, flags.
    pub fn next(&self, after: &str) -> u32 {
        let ev = wait_for(&self.kq, self.fd(), EVFILT_VNODE);
        assert_eq!(ev.udata, 42, "{after}: got {ev:?}");
        assert!(!ev.has(EV_EOF) && !ev.has(EV_ERROR), "{after}: got {ev:?}");
        ev.fflags
    }

    pub fn quiet(&self, why: &str) {
        assert_quiet(&self.kq, self.fd(), EVFILT_VNODE, QUIET, why);
    }
}
