//! Spawning a server under test, and where checks connect.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::failure::{describe_status, Failure, Result};

/// How long a server has to print `listening on HOST:PORT`.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// What a spawned server shares with the clients and checks that talk to it.
pub(crate) struct Shared {
    pub(crate) name: String,
    pid: u32,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    stderr: Mutex<Vec<u8>>,
    /// The server's stderr reached end of file (it exited).
    stderr_closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// Lets the server's side of a failure settle before it is reported: a
    /// server that is closing a connection may be about to exit, and its
    /// last stderr lines may still be in the pipe. Waits briefly for the
    /// exit, and after an exit, for the rest of stderr.
    pub(crate) fn settle(&self) {
        use std::sync::atomic::Ordering;
        let start = Instant::now();
        loop {
            let exited = self.exit_status().is_some();
            let waited = start.elapsed();
            if exited && self.stderr_closed.load(Ordering::Acquire) {
                return;
            }
            if (!exited && waited >= Duration::from_millis(150)) || waited >= Duration::from_secs(2)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status, if the server has exited (without waiting).
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        let mut status = lock(&self.status);
        if status.is_none() {
            if let Ok(Some(st)) = lock(&self.child).try_wait() {
                *status = Some(st);
            }
        }
        *status
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A server the harness started. Dropping it kills and reaps the process,
/// also when a test panics, so no test leaves a server behind.
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Server {
    /// Runs `program args.. --port 0` (`--port` is only appended when `args`
    /// has none) and waits for its stdout line `listening on HOST:PORT`.
    /// `name` tags the server's stderr lines in failures, e.g. `step3`.
    pub fn spawn(name: &str, program: impl AsRef<OsStr>, args: &[&str]) -> Result<Server> {
        Server::spawn_within(name, program, args, STARTUP_DEADLINE)
    }

    /// [`Server::spawn`] with another deadline for the `listening on` line.
    pub fn spawn_within(
        name: &str,
        program: impl AsRef<OsStr>,
        args: &[&str],
        deadline: Duration,
    ) -> Result<Server> {
        let program = program.as_ref();
        let mut cmd = Command::new(program);
        cmd.args(args);
        if !args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        start_clean(&mut cmd);
        let shown = format!("{} {}", program.to_string_lossy(), args.join(" "));
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::new(format!("cannot start {}: {e}", shown.trim())))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            status: Mutex::new(None),
            stderr: Mutex::new(Vec::new()),
            stderr_closed: Default::default(),
        });
        // Keep reading stderr for as long as the server lives, so it never
        // blocks on a full pipe and failures can quote it.
        let sink = Arc::clone(&shared);
        std::thread::spawn(move || collect_stderr(stderr, &sink));
        // The first stdout line arrives through a channel, so waiting for it
        // can have a deadline.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            for _ in lines {} // drain: the server may print more
        });
        let server_failure = |msg: String| Failure::new(msg).with_server(Some(&shared));
        let line = match rx.recv_timeout(deadline) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => {
                // stdout closed: the server is exiting. Give it a moment so
                // the failure can say how it exited.
                wait_exit(&shared, Duration::from_secs(2));
                return Err(server_failure(format!(
                    "{} closed its stdout without printing 'listening on HOST:PORT'",
                    shown.trim()
                )));
            }
            Err(_) => {
                return Err(server_failure(format!(
                    "{} did not print 'listening on HOST:PORT' within {} ms\n(print it to stdout and flush once the socket listens)",
                    shown.trim(),
                    deadline.as_millis()
                )))
            }
        };
        let addr = parse_listening_line(&line).map_err(server_failure)?;
        Ok(Server { shared, addr })
    }

    /// The address clients connect to (an unspecified host such as 0.0.0.0
    /// becomes loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// What checks and clients take.
    pub fn target(&self) -> Target {
        Target {
            addr: self.addr,
            server: Some(Arc::clone(&self.shared)),
            pid: Some(self.shared.pid),
            max_users: DEFAULT_MAX_USERS,
        }
    }

    /// A new client connected to this server.
    pub fn client(&self) -> Result<Client> {
        Client::connect(&self.target())
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.shared.stderr_text()
    }

    /// Waits until the server's stderr contains `needle`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "expected the server to log {needle:?} within {} ms; it did not",
                    timeout.as_millis()
                ))
                .with_server(Some(&self.shared)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many descriptors the server has open, where the OS can tell
    /// (Linux: /proc/PID/fd; macOS: proc_pidinfo; the BSDs: `fstat -p`).
    pub fn open_fds(&self) -> Option<usize> {
        open_fds(self.shared.pid)
    }

    /// Fails with the exit status and stderr tail if the server has exited.
    pub fn assert_running(&self) -> Result<()> {
        self.target().assert_running()
    }

    /// The exit status, if the server has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.shared.exit_status()
    }

    /// Stops the server (SIGSTOP) until the returned guard is dropped
    /// (SIGCONT), so clients can pile up in its accept queue, or data in its
    /// sockets, while it is not looking: the way to make one kevent() call
    /// see several events at once.
    ///
    /// It first waits (up to 2 s) until the server sits in its event wait
    /// (epoll_wait, kevent, poll or select): a server stopped a moment
    /// earlier would still hold the previous batch's bookkeeping, and the
    /// order of the next batch would depend on timing.
    pub fn freeze(&self) -> Result<Frozen> {
        let pid = self.shared.pid as libc::pid_t;
        crate::checks::settle(Duration::from_secs(2), || {
            is_waiting_for_events(pid).then_some(())
        });
        signal(pid, libc::SIGSTOP)?;
        let frozen = Frozen { pid };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_stopped(pid) {
            if Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "sent SIGSTOP to the server (pid {pid}); it did not stop within 5 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(frozen)
    }

    /// Waits until the kernel holds `n` completed connections in the
    /// server's accept queue (Linux: /proc/net/tcp; elsewhere the loopback
    /// handshake completes within connect(), so there is nothing to wait
    /// for).
    pub fn wait_for_accept_queue(&self, n: usize) -> Result<()> {
        if !cfg!(target_os = "linux") {
            return Ok(());
        }
        let port = format!(":{:04X}", self.addr.port());
        let mut queued = None;
        let ok = crate::checks::settle(Duration::from_secs(5), || {
            queued = accept_queue_length(&port);
            (queued == Some(n)).then_some(())
        });
        ok.ok_or_else(|| {
            Failure::new(format!(
                "connected {n} clients to {}; the kernel's accept queue holds {queued:?}",
                self.addr
            ))
        })
    }
}

/// The server stays stopped while this lives; dropping it sends SIGCONT.
pub struct Frozen {
    pid: libc::pid_t,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = signal(self.pid, libc::SIGCONT);
    }
}

fn signal(pid: libc::pid_t, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill() takes no pointers; `pid` is a server we spawned.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        )))
    }
}

/// Whether the process is blocked in an event wait, judged by its wait
/// channel (Linux: /proc/PID/wchan, e.g. `do_epoll_wait`; elsewhere `ps`,
/// e.g. `kqread`).
fn is_waiting_for_events(pid: libc::pid_t) -> bool {
    let wchan = if cfg!(target_os = "linux") {
        std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
    } else {
        Command::new("ps")
            .args(["-o", "wchan=", "-p", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    ["epoll", "kqread", "kevent", "poll", "select"]
        .iter()
        .any(|w| wchan.contains(w))
}

/// Whether the process is stopped: state `T` in /proc on Linux, in `ps`
/// elsewhere.
fn is_stopped(pid: libc::pid_t) -> bool {
    if cfg!(target_os = "linux") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) STATE ...": the state follows the last ')'.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    } else {
        Command::new("ps")
            .args(["-o", "stat=", "-p", &pid.to_string()])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim_start()
                    .starts_with('T')
            })
            .unwrap_or(false)
    }
}

/// The accept queue of the listening socket on `port` (":1F90"), from the
/// rx_queue column of /proc/net/tcp{,6}.
fn accept_queue_length(port: &str) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // f[1] local address, f[3] state (0A = LISTEN), f[4] tx:rx queue.
        if f.len() > 4 && f[1].ends_with(port) && f[3] == "0A" {
            let rx = f[4].split(':').nth(1)?;
            usize::from_str_radix(rx, 16).ok()
        } else {
            None
        }
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut child = lock(&self.shared.child);
        let _ = child.kill();
        if let Ok(st) = child.wait() {
            *lock(&self.shared.status) = Some(st);
        }
    }
}

/// On Linux the kernel kills the server if the harness itself dies (for
/// example when a test run is interrupted), so no server outlives it.
///
/// The server also starts with only stdin, stdout and stderr: descriptors
/// the harness inherited (cargo's jobserver pipe, a CI runner's sockets)
/// would otherwise leak into it, and a learner counting their server's
/// descriptors, or the leak check comparing counts, would see them.
#[cfg(target_os = "linux")]
fn start_clean(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(), syscall() and fcntl(), which are async-signal-safe and
    // touch no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            close_inherited_on_exec();
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn start_clean(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls fcntl(), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            close_inherited_on_exec();
            Ok(())
        });
    }
}

/// Marks every descriptor above stderr close-on-exec, in the child just
/// before exec. Marking rather than closing keeps std's own exec-error pipe
/// working (it is close-on-exec already).
///
/// # Safety
/// Call only between fork and exec.
unsafe fn close_inherited_on_exec() {
    #[cfg(target_os = "linux")]
    {
        // close_range(3, ~0, CLOSE_RANGE_CLOEXEC) does it in one call on
        // Linux 5.11 and later; older kernels take the loop below.
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: a plain syscall on integers; it fails cleanly (ENOSYS or
        // EINVAL) where the kernel lacks it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if r == 0 {
            return;
        }
    }
    for fd in 3..4096 {
        // SAFETY: F_GETFD/F_SETFD on a descriptor that may not be open;
        // EBADF is harmless.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

fn collect_stderr(mut stderr: impl Read, shared: &Shared) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut all = lock(&shared.stderr);
        all.extend_from_slice(&buf[..n]);
        // A chatty server must not eat the harness's memory: keep the end.
        if all.len() > 4 << 20 {
            let cut = all.len() - (2 << 20);
            all.drain(..cut);
        }
    }
    shared
        .stderr_closed
        .store(true, std::sync::atomic::Ordering::Release);
}

fn wait_exit(shared: &Shared, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while shared.exit_status().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `listening on 127.0.0.1:40123` -> the address to connect to.
pub fn parse_listening_line(line: &str) -> std::result::Result<SocketAddr, String> {
    let rest = line
        .trim_end()
        .strip_prefix("listening on ")
        .ok_or_else(|| {
            format!("expected the first stdout line to be 'listening on HOST:PORT', got {line:?}")
        })?;
    let addr: SocketAddr = rest
        .parse()
        .map_err(|_| format!("cannot read an address (HOST:PORT) in {line:?}"))?;
    if addr.port() == 0 {
        return Err(format!(
            "the server announced port 0 in {line:?}: print the port the OS chose (getsockname)"
        ));
    }
    Ok(connectable(addr))
}

fn connectable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

pub use crate::fds::open_fds;

/// The chat room size when nobody says otherwise: NUSERS in chatserv.c.
pub const DEFAULT_MAX_USERS: usize = 10;

/// Where checks connect: an address, plus (when the harness spawned the
/// server) the server itself, for stderr tails, its pid and liveness.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    server: Option<Arc<Shared>>,
    pid: Option<u32>,
    max_users: usize,
}

impl Target {
    /// An already running server, in any language.
    pub fn addr(addr: SocketAddr) -> Target {
        Target {
            addr: connectable(addr),
            server: None,
            pid: None,
            max_users: DEFAULT_MAX_USERS,
        }
    }

    /// The chat room size (default 10, like NUSERS).
    pub fn with_max_users(mut self, n: usize) -> Target {
        self.max_users = n;
        self
    }

    /// The server's process id, so descriptor counts can be checked for a
    /// server the harness did not spawn.
    pub fn with_pid(mut self, pid: u32) -> Target {
        self.pid = Some(pid);
        self
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn max_users(&self) -> usize {
        self.max_users
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The server's open descriptors, when its pid is known and the OS can
    /// count them.
    pub fn open_fds(&self) -> Option<usize> {
        self.pid.and_then(open_fds)
    }

    /// Fails if the spawned server has exited.
    pub fn assert_running(&self) -> Result<()> {
        match self.server.as_deref().and_then(Shared::exit_status) {
            None => Ok(()),
            Some(st) => Err(Failure::new(format!(
                "the server {} while being checked",
                describe_status(&st)
            ))
            .with_server(self.server.as_deref())),
        }
    }

    /// A failure with the server's stderr tail attached (when spawned).
    pub fn fail(&self, message: impl Into<String>) -> Failure {
        Failure::new(message).with_server(self.server.as_deref())
    }

    pub(crate) fn shared(&self) -> Option<&Shared> {
        self.server.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The announcement is read whether the host is v4, v6 or unspecified.
    #[test]
    fn reads_the_listening_line() {
        assert_eq!(
            parse_listening_line("listening on 127.0.0.1:4000\n").unwrap(),
            "127.0.0.1:4000".parse().unwrap()
        );
        assert_eq!(
            parse_listening_line("listening on 0.0.0.0:4000").unwrap(),
            "127.0.0.1:4000".parse().unwrap()
        );
        assert_eq!(
            parse_listening_line("listening on [::]:4000").unwrap(),
            "[::1]:4000".parse().unwrap()
        );
    }

    /// A wrong first line or port 0 is explained, not just rejected.
    #[test]
    fn explains_a_bad_listening_line() {
        let e = parse_listening_line("Listening at port 4000").unwrap_err();
        assert!(e.contains("'listening on HOST:PORT'"), "{e}");
        let e = parse_listening_line("listening on 127.0.0.1:0").unwrap_err();
        assert!(e.contains("port 0"), "{e}");
    }
}
