//! Spawning a server under test, and where checks connect.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::failure::{describe_status, Failure, Result};
use crate::sys::cvt;

/// How long a server has to print `listening on HOST:PORT`.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// How the harness starts a server: the program, its arguments (`--port 0`
/// is added unless they give `--port`), and the limits it runs under.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Tags the server's stderr lines in failures, e.g. `step3`.
    pub name: String,
    pub program: OsString,
    pub args: Vec<String>,
    /// RLIMIT_NOFILE (soft and hard) for the server, set between fork and
    /// exec: the most descriptors it may have open.
    pub fd_limit: Option<u64>,
    /// How long the server has to print `listening on HOST:PORT`.
    pub deadline: Duration,
    /// Leave the server's stderr a pipe nobody reads (see
    /// [`Launch::stderr_unread`]).
    pub stderr_unread: bool,
}

impl Launch {
    pub fn new(name: &str, program: impl AsRef<OsStr>, args: &[&str]) -> Launch {
        Launch {
            name: name.to_string(),
            program: program.as_ref().to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            fd_limit: None,
            deadline: STARTUP_DEADLINE,
            stderr_unread: false,
        }
    }

    /// Runs the server with its stderr a pipe that the harness keeps open
    /// but never reads, as `server 2>&1 | less` left on its first screen:
    /// once the pipe is full, a server that writes its log with blocking
    /// writes stops. The server's log is then not collected: failures do
    /// not quote it, and waiting for a log line fails.
    pub fn stderr_unread(mut self) -> Launch {
        self.stderr_unread = true;
        self
    }

    /// Runs the server with at most `n` descriptors (RLIMIT_NOFILE).
    pub fn fd_limit(mut self, n: u64) -> Launch {
        self.fd_limit = Some(n);
        self
    }

    /// The same server on another port: any `--port` in the arguments is
    /// replaced by `--port PORT`.
    pub fn on_port(&self, port: u16) -> Launch {
        self.with_arg("--port", &port.to_string())
    }

    /// The same server with `flag value` in its arguments, replacing any
    /// `flag` they had.
    pub fn with_arg(&self, flag: &str, value: &str) -> Launch {
        let mut args = Vec::new();
        let mut given = self.args.iter();
        while let Some(a) = given.next() {
            if a == flag {
                given.next();
            } else {
                args.push(a.clone());
            }
        }
        args.extend([flag.to_string(), value.to_string()]);
        Launch {
            args,
            ..self.clone()
        }
    }

    /// The value that follows `flag` in the arguments, if any.
    pub fn arg(&self, flag: &str) -> Option<&str> {
        let at = self.args.iter().position(|a| a == flag)?;
        self.args.get(at + 1).map(String::as_str)
    }

    /// The command line as a person would type it.
    pub fn shown(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// What a spawned server shares with the clients and checks that talk to it.
pub(crate) struct Shared {
    pub(crate) name: String,
    launch: Launch,
    pid: u32,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    stderr: Mutex<Vec<u8>>,
    /// The server's stderr reached end of file (it exited).
    stderr_closed: std::sync::atomic::AtomicBool,
    /// Lines and bytes written on stderr since the start (the text itself
    /// is trimmed when a server writes megabytes; these counts are not).
    stderr_lines: std::sync::atomic::AtomicU64,
    stderr_bytes: std::sync::atomic::AtomicU64,
    /// With [`Launch::stderr_unread`]: the pipe's reading end, held open
    /// (so the server's writes fill it rather than fail) and never read.
    unread_stderr: Mutex<Option<std::process::ChildStderr>>,
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
        let start = Instant::now();
        loop {
            let exited = self.exit_status().is_some();
            let waited = start.elapsed();
            if self.finished() {
                return;
            }
            if (!exited && waited >= Duration::from_millis(150)) || waited >= Duration::from_secs(2)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server has exited and everything it wrote on stderr has
    /// been read: nothing more will come.
    pub(crate) fn finished(&self) -> bool {
        self.exit_status().is_some()
            && self
                .stderr_closed
                .load(std::sync::atomic::Ordering::Acquire)
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
        Server::start(&Launch::new(name, program, args))
    }

    /// [`Server::spawn`] with another deadline for the `listening on` line.
    pub fn spawn_within(
        name: &str,
        program: impl AsRef<OsStr>,
        args: &[&str],
        deadline: Duration,
    ) -> Result<Server> {
        Server::start(&Launch {
            deadline,
            ..Launch::new(name, program, args)
        })
    }

    /// Starts the server as `launch` says and waits for `listening on`.
    pub fn start(launch: &Launch) -> Result<Server> {
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args);
        if !launch.args.iter().any(|a| a == "--port") {
            cmd.args(["--port", "0"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        start_clean(&mut cmd, launch.fd_limit);
        let shown = launch.shown();
        let deadline = launch.deadline;
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::new(format!("cannot start {}: {e}", shown.trim())))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let shared = Arc::new(Shared {
            name: launch.name.clone(),
            launch: launch.clone(),
            pid: child.id(),
            child: Mutex::new(child),
            status: Mutex::new(None),
            stderr: Mutex::new(Vec::new()),
            stderr_closed: Default::default(),
            stderr_lines: Default::default(),
            stderr_bytes: Default::default(),
            unread_stderr: Mutex::new(None),
        });
        if launch.stderr_unread {
            *lock(&shared.unread_stderr) = Some(stderr);
        } else {
            // Keep reading stderr for as long as the server lives, so it
            // never blocks on a full pipe and failures can quote it.
            let sink = Arc::clone(&shared);
            std::thread::spawn(move || collect_stderr(stderr, &sink));
        }
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

    /// What checks and clients take. The room size, queue limit and idle
    /// timeout are read from the server's arguments (`--max-users`,
    /// `--max-queue`, `--idle-timeout`) where it was given them.
    pub fn target(&self) -> Target {
        let launch = &self.shared.launch;
        let mut target = Target::addr(self.addr);
        target.server = Some(Arc::clone(&self.shared));
        target.pid = Some(self.shared.pid);
        if let Some(n) = launch.arg("--max-users").and_then(|v| v.parse().ok()) {
            target.max_users = n;
        }
        target.max_queue = launch.arg("--max-queue").and_then(|v| v.parse().ok());
        target.idle_timeout = launch
            .arg("--idle-timeout")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64);
        target
    }

    /// How this server was started.
    pub fn launch(&self) -> &Launch {
        &self.shared.launch
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
        wait_for_stderr(&self.shared, needle, timeout)
    }

    /// Waits for the server to log `line`, prefixed the way a step prefixes
    /// every log line, with its name: `user #0 joined` waits for
    /// `step8: user #0 joined`.
    pub fn wait_for_log(&self, line: &str, timeout: Duration) -> Result<()> {
        self.wait_for_stderr(&format!("{}: {line}", self.shared.launch.name), timeout)
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
        stop(pid)
    }

    /// Sends the server `sig` (`libc::SIGTERM`, `libc::SIGINT`), as kill(1)
    /// would.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        signal(self.shared.pid as libc::pid_t, sig)
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

/// SIGSTOP, then waits (up to 5 s) until the process is stopped.
fn stop(pid: libc::pid_t) -> Result<Frozen> {
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

fn signal(pid: libc::pid_t, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill() takes no pointers; `pid` is a server we spawned.
    cvt(unsafe { libc::kill(pid, sig) })
        .map(drop)
        .map_err(|e| Failure::new(format!("kill({pid}, {sig}): {e}")))
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

/// Whether the process is stopped (state `T`).
fn is_stopped(pid: libc::pid_t) -> bool {
    crate::process::state(pid as u32) == Some('T')
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
///
/// With `fd_limit`, the server runs with at most that many descriptors
/// (RLIMIT_NOFILE, soft and hard, so it cannot raise it again).
///
/// Public for other tools that start step programs (the book's transcript
/// runner), so their descriptor numbers do not depend on what the tool
/// itself inherited.
pub fn start_clean(cmd: &mut Command, fd_limit: Option<u64>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl() (Linux), signal(), syscall(), fcntl() and setrlimit(),
    // which are async-signal-safe and touch no memory of the parent's; the
    // rlimit struct lives on the child's stack.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // An ignored signal stays ignored across exec, and a shell
            // starts background jobs (`cargo test &`, a CI script) with
            // SIGINT and SIGQUIT ignored: the server would shrug off the
            // Ctrl-C a check sends. Give it the dispositions a terminal
            // would.
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            close_inherited_on_exec();
            if let Some(n) = fd_limit {
                let limit = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                cvt(libc::setrlimit(libc::RLIMIT_NOFILE, &limit))?;
            }
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
        use std::sync::atomic::Ordering::Relaxed;
        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        shared.stderr_lines.fetch_add(lines, Relaxed);
        shared.stderr_bytes.fetch_add(n as u64, Relaxed);
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

/// Waits until the server's stderr contains `needle`; fails at `timeout`,
/// or at once when the server has exited without writing it.
fn wait_for_stderr(shared: &Shared, needle: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        // Whether the server has exited and all it wrote has been read,
        // taken before looking, so a line written just before the exit
        // is still found.
        let over = shared.finished();
        if shared.stderr_text().contains(needle) {
            return Ok(());
        }
        if over {
            // Nothing more will come: say so now, not at the deadline.
            return Err(Failure::new(format!(
                "expected the server to log {needle:?}; it exited without logging it"
            ))
            .with_server(Some(shared)));
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "expected the server to log {needle:?} within {} ms; it did not",
                timeout.as_millis()
            ))
            .with_server(Some(shared)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where checks connect: an address, plus (when the harness spawned the
/// server) the server itself, for stderr tails, its pid and liveness; and
/// what the server was started with, as far as checks need to know.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    server: Option<Arc<Shared>>,
    pid: Option<u32>,
    max_users: usize,
    max_queue: Option<usize>,
    idle_timeout: Option<Duration>,
    /// Figures a check measured (a round trip, CPU use), for the CLI to show.
    notes: Arc<Mutex<Vec<String>>>,
}

/// How a server ended after the harness asked it to.
pub(crate) enum Ended {
    /// The harness started it and saw its exit status.
    Status(ExitStatus),
    /// It is gone; the harness did not start it, so cannot know the status.
    Gone,
}

impl Target {
    /// An already running server, in any language.
    pub fn addr(addr: SocketAddr) -> Target {
        Target {
            addr: connectable(addr),
            server: None,
            pid: None,
            max_users: DEFAULT_MAX_USERS,
            max_queue: None,
            idle_timeout: None,
            notes: Arc::default(),
        }
    }

    /// The chat room size (default 10, like NUSERS).
    pub fn with_max_users(mut self, n: usize) -> Target {
        self.max_users = n;
        self
    }

    /// The most bytes the server queues for one user (its `--max-queue`).
    pub fn with_max_queue(mut self, bytes: usize) -> Target {
        self.max_queue = Some(bytes);
        self
    }

    /// How long a user may stay silent (the server's `--idle-timeout`).
    pub fn with_idle_timeout(mut self, d: Duration) -> Target {
        self.idle_timeout = Some(d);
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

    /// The server's `--max-queue`, or a failure saying the check needs it.
    pub fn max_queue(&self) -> Result<usize> {
        self.max_queue.ok_or_else(|| {
            Failure::new(
                "this check needs the server's --max-queue (the most bytes it queues for one user); \
                 the harness was not told it (harness check: --max-queue BYTES; in a test: Target::with_max_queue)",
            )
        })
    }

    /// The server's `--idle-timeout`, or a failure saying the check needs it.
    pub fn idle_timeout(&self) -> Result<Duration> {
        self.idle_timeout.ok_or_else(|| {
            Failure::new(
                "this check needs the server's --idle-timeout; the harness was not told it \
                 (harness check: --idle-timeout SECS; in a test: Target::with_idle_timeout)",
            )
        })
    }

    /// The descriptor limit the harness started the server with, if it did.
    pub fn fd_limit(&self) -> Option<u64> {
        self.server.as_ref().and_then(|s| s.launch.fd_limit)
    }

    /// How the harness started the server, if it did.
    pub fn launch(&self) -> Option<&Launch> {
        self.server.as_ref().map(|s| &s.launch)
    }

    /// The server's open descriptors, when its pid is known and the OS can
    /// count them.
    pub fn open_fds(&self) -> Option<usize> {
        self.pid.and_then(open_fds)
    }

    /// Everything the server wrote on stderr so far, when the harness
    /// started it (else None: a running server's stderr is not ours).
    pub fn stderr(&self) -> Option<String> {
        self.server.as_deref().map(Shared::stderr_text)
    }

    /// Waits for the server to log `line` with its name in front (see
    /// [`Server::wait_for_log`]); fails when the harness did not start the
    /// server, since then its log is not ours to read.
    pub fn wait_for_log(&self, line: &str, timeout: Duration) -> Result<()> {
        let Some(shared) = self.server.as_deref() else {
            return Err(Failure::new(
                "this check reads the server's log, so the harness must start the server: \
                 give its command (harness check STAGE -- <command...>), not --addr",
            ));
        };
        wait_for_stderr(shared, &format!("{}: {line}", shared.launch.name), timeout)
    }

    /// How many lines and bytes the server has written on stderr so far,
    /// when the harness started it.
    pub fn stderr_written(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        self.server
            .as_deref()
            .map(|s| (s.stderr_lines.load(Relaxed), s.stderr_bytes.load(Relaxed)))
    }

    /// Records a figure the check measured, e.g. "round trips took 3 ms".
    pub fn note(&self, line: impl Into<String>) {
        lock(&self.notes).push(line.into());
    }

    /// The figures noted so far.
    pub fn notes(&self) -> Vec<String> {
        lock(&self.notes).clone()
    }

    /// The pid, or a failure saying `why` the check needs it.
    pub(crate) fn need_pid(&self, why: &str) -> Result<u32> {
        self.pid.ok_or_else(|| {
            Failure::new(format!(
                "this check {why}, so it needs the server's process id: pass --pid PID with --addr"
            ))
        })
    }

    /// Sends `sig` to the server.
    pub(crate) fn signal(&self, sig: libc::c_int, why: &str) -> Result<()> {
        let pid = self.need_pid(why)?;
        signal(pid as libc::pid_t, sig)
    }

    /// Stops the server (SIGSTOP) until the guard is dropped (SIGCONT).
    pub(crate) fn stop(&self, why: &str) -> Result<Frozen> {
        let pid = self.need_pid(why)?;
        stop(pid as libc::pid_t)
    }

    /// Waits up to `timeout` for the server to exit.
    pub(crate) fn wait_for_exit(&self, timeout: Duration) -> Option<Ended> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.server.as_deref() {
                if let Some(st) = s.exit_status() {
                    return Some(Ended::Status(st));
                }
            } else if self.pid.is_some_and(crate::process::has_exited) {
                return Some(Ended::Gone);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
