//! Transcripts for the chapters' "Run it" sections and the instructors'
//! page. Each step's are played from its scenario file
//! (`steps/stepN/transcripts.txt`, format in [`crate::scenario`]) against
//! the step's binary; the harness CLI's three come from [`harness`] here.
//!
//! Deterministic on purpose, so the freshness check does not flap: every
//! client action waits for the server to log that it was handled before
//! the next one starts (the scenarios' `await`); the server's stdout and
//! stderr share one pipe, as they share a terminal; and what changes from
//! run to run is normalised: the server's port becomes 8080 (the default a
//! reader types), each client's port becomes 50001, 50002, ... in the
//! order the clients connect, binary paths become `target/debug/NAME`, and
//! measured times are rounded to the timeout they measure.
//!
//! Descriptor numbers are kept, since watching them be reused is part of
//! the lesson. They are the Linux ones: there `kq` keeps one more
//! descriptor per queue (an eventfd), so on macOS and the BSDs every client
//! number is one lower. The chapters say so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::generated::{Generated, DIR};
use crate::scenario::{self, Action};
use crate::steps::Step;

/// The longest any single wait may take before the run fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// The port the transcripts show for the server: the steps' default.
const SHOWN_PORT: u16 = 8080;

/// The binaries the transcripts run.
pub struct Bins {
    /// Every step's binary, by the step's name.
    pub steps: HashMap<String, PathBuf>,
    /// The harness CLI.
    pub harness: PathBuf,
}

impl Bins {
    fn step(&self, name: &str) -> Result<&Path, String> {
        self.steps
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("no binary given for {name}"))
    }
}

/// A child process whose stdout and stderr arrive, merged, line by line.
/// Killed and reaped on drop, also when a run fails half-way.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Proc {
    /// Starts `bin args...` through `sh` so that stderr goes into the same
    /// pipe as stdout (`2>&1`): the order of the lines is the order the
    /// program wrote them, as in a terminal.
    /// With `limit`, the program may open descriptors below that number
    /// only (`ulimit -n`).
    fn spawn(
        bin: &Path,
        args: &[&str],
        stdin: Stdio,
        limit: Option<u64>,
        env: &[(String, String)],
    ) -> Result<Proc, String> {
        let mut cmd = Command::new("sh");
        // Only stdin, stdout and stderr, whatever this process inherited
        // (the descriptor numbers in the transcripts depend on it), and
        // the limit, as `ulimit -n` would set it.
        harness::start_clean(&mut cmd, limit);
        // Only the variables the scenario sets: a KQ_TRACE in the
        // generator's own environment must not change the transcripts.
        cmd.env_remove("KQ_TRACE");
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(bin)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("server")
            .to_string();
        Ok(Proc {
            name,
            child,
            lines: rx,
            log: Vec::new(),
        })
    }

    /// Waits until the output holds `needle` at least `count` times.
    fn wait_for(&mut self, needle: &str, count: usize) -> Result<(), String> {
        let until = Instant::now() + DEADLINE;
        loop {
            let seen = self.log.iter().filter(|l| l.contains(needle)).count();
            if seen >= count {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: waited {DEADLINE:?} for {count} line(s) containing {needle:?}, saw {seen}; output so far:\n{}",
                        self.name,
                        self.log.join("\n")
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: exited before printing {needle:?}; output:\n{}",
                        self.name,
                        self.log.join("\n")
                    ))
                }
            }
        }
    }

    /// Ctrl-C: what the program printed so far, then `^C`, then SIGINT
    /// (its terminal shows them in that order).
    fn interrupt(&mut self) -> Result<(), String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
            self.log.push(line);
        }
        self.log.push("^C".to_string());
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .map_err(|e| format!("kill -INT {pid}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -INT {pid}: {status}"))
        }
    }

    /// Sends the program SIG`name` (`STOP`, `CONT`), as kill(1) does.
    fn signal(&self, name: &str) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .map_err(|e| format!("kill -{name} {pid}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{name} {pid}: {status}"))
        }
    }

    /// Reads the rest of the output until the program exits.
    fn wait_exit(&mut self) -> Result<(), String> {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: still running after {DEADLINE:?}; output so far:\n{}",
                        self.name,
                        self.log.join("\n")
                    ))
                }
            }
        }
        let _ = self.child.wait();
        Ok(())
    }

    /// The address from `listening on HOST:PORT`, read as the harness
    /// reads it.
    fn listening(&mut self) -> Result<SocketAddr, String> {
        self.wait_for("listening on ", 1)?;
        let line = self
            .log
            .iter()
            .find(|l| l.starts_with("listening on "))
            .cloned()
            .unwrap_or_default();
        harness::parse_listening_line(&line).map_err(|e| format!("{}: {e}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client's reader thread has read, and whether it may read on.
#[derive(Default)]
struct Inbox {
    /// Bytes read and not yet taken by an `expect`.
    data: Vec<u8>,
    /// The server closed the connection (or it failed: `error`).
    closed: bool,
    error: Option<String>,
    /// Ctrl-Z: the reader stops reading.
    suspended: bool,
    /// The reader has seen `suspended` and reads nothing more.
    paused: bool,
    /// Drop what arrives (`> /dev/null`).
    discard: bool,
}

/// An inbox and the condition variable its reader signals on.
type Shared = Arc<(Mutex<Inbox>, Condvar)>;

/// A scripted `nc`: what it sends is "typed", what it receives is printed,
/// and both go into its terminal. Like `nc` it reads whatever arrives as
/// soon as it arrives (a thread does, into an inbox), unless suspended.
struct Client {
    stream: TcpStream,
    inbox: Shared,
}

impl Client {
    fn connect(addr: SocketAddr, terminal: &mut Vec<String>) -> Result<Client, String> {
        let c = Client::open(addr, false)?;
        terminal.push(format!("$ nc 127.0.0.1 {SHOWN_PORT}"));
        Ok(c)
    }

    /// Connects and starts the reader thread (which drops what it reads
    /// when `discard`).
    fn open(addr: SocketAddr, discard: bool) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_write_timeout(Some(DEADLINE))
            .map_err(|e| format!("socket timeouts: {e}"))?;
        let reader = stream
            .try_clone()
            .map_err(|e| format!("cloning the socket: {e}"))?;
        // Short reads, so a suspension is noticed at once.
        reader
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| format!("socket timeouts: {e}"))?;
        let inbox: Shared = Arc::new((
            Mutex::new(Inbox {
                discard,
                ..Inbox::default()
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&inbox);
        thread::spawn(move || read_into(reader, &shared));
        Ok(Client { stream, inbox })
    }

    fn port(&self) -> u16 {
        self.stream.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Types one line (the terminal shows it, as a tty echoes typing).
    fn type_line(&mut self, line: &str, terminal: &mut Vec<String>) -> Result<(), String> {
        terminal.push(line.to_string());
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("sending {line:?}: {e}"))
    }

    /// Waits until the inbox holds `n` bytes (or the connection ended),
    /// then runs `take` on it.
    fn take<T>(
        &self,
        n: usize,
        what: &str,
        take: impl FnOnce(&mut Inbox) -> Result<T, String>,
    ) -> Result<T, String> {
        let (lock, ready) = &*self.inbox;
        let until = Instant::now() + DEADLINE;
        let mut inbox = lock.lock().map_err(|_| "a reader thread panicked")?;
        if inbox.suspended {
            return Err(format!(
                "waiting for {what}: the terminal is suspended (`resume` it first)"
            ));
        }
        while inbox.data.len() < n && !inbox.closed {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "waiting for {what}: {} of {n} bytes arrived within {DEADLINE:?}",
                    inbox.data.len()
                ));
            }
            inbox = ready
                .wait_timeout(inbox, left)
                .map_err(|_| "a reader thread panicked")?
                .0;
        }
        take(&mut inbox)
    }

    /// Receives exactly `want` (plus its newline) and shows it.
    fn expect_line(&mut self, want: &str, terminal: &mut Vec<String>) -> Result<(), String> {
        self.expect_many(1, want, terminal)
    }

    /// Receives `want` (plus its newline) `n` times; shows it once, and
    /// how many more lines like it scrolled by.
    fn expect_many(
        &mut self,
        n: usize,
        want: &str,
        terminal: &mut Vec<String>,
    ) -> Result<(), String> {
        let line = format!("{want}\n");
        let total = line.len() * n;
        let what = if n == 1 {
            format!("{want:?}")
        } else {
            format!("{n} lines of {want:?}")
        };
        self.take(total, &what, |inbox| {
            if let Some(e) = &inbox.error {
                return Err(format!("waiting for {what}: {e}"));
            }
            let got = &inbox.data[..total.min(inbox.data.len())];
            if let Some(i) = (0..n).find(|&i| {
                let piece =
                    &got[(i * line.len()).min(got.len())..((i + 1) * line.len()).min(got.len())];
                piece != line.as_bytes()
            }) {
                let at = i * line.len();
                let piece = &got[at.min(got.len())..(at + line.len()).min(got.len())];
                return Err(format!(
                    "expected {what}; line {} is {:?}{}",
                    i + 1,
                    String::from_utf8_lossy(piece),
                    if inbox.closed {
                        ", then the server closed the connection"
                    } else {
                        ""
                    }
                ));
            }
            inbox.data.drain(..total);
            Ok(())
        })?;
        terminal.push(want.to_string());
        if n > 1 {
            terminal.push(format!("[... {} more lines like it]", n - 1));
        }
        Ok(())
    }

    /// The server closed the connection: reads EOF. macOS's nc exits then,
    /// but OpenBSD netcat (Debian's and Ubuntu's `nc`) waits for its own
    /// input to end too, so the transcript shows the Ctrl-C a Linux reader
    /// has to type (harmless at a macOS prompt). The chapters say both.
    fn closed_by_server(self, terminal: &mut Vec<String>) -> Result<(), String> {
        self.take(usize::MAX, "end of file", |inbox| {
            if let Some(e) = &inbox.error {
                return Err(format!("waiting for EOF: {e}"));
            }
            if !inbox.data.is_empty() {
                return Err(format!(
                    "expected EOF, got {:?}",
                    String::from_utf8_lossy(&inbox.data)
                ));
            }
            Ok(())
        })?;
        terminal.push("^C".to_string());
        Ok(())
    }

    /// Ctrl-Z: `nc` stops, and reads nothing more until `fg`.
    fn suspend(&mut self, terminal: &mut Vec<String>) -> Result<(), String> {
        let (lock, ready) = &*self.inbox;
        let mut inbox = lock.lock().map_err(|_| "a reader thread panicked")?;
        inbox.suspended = true;
        let until = Instant::now() + DEADLINE;
        while !inbox.paused && !inbox.closed {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the reader did not stop".into());
            }
            inbox = ready
                .wait_timeout(inbox, left)
                .map_err(|_| "a reader thread panicked")?
                .0;
        }
        terminal.push("^Z".to_string());
        terminal.push(format!(
            "[1]+  Stopped                 nc 127.0.0.1 {SHOWN_PORT}"
        ));
        Ok(())
    }

    /// `fg`: `nc` runs and reads again.
    fn resume(&mut self, terminal: &mut Vec<String>) -> Result<(), String> {
        let (lock, ready) = &*self.inbox;
        let mut inbox = lock.lock().map_err(|_| "a reader thread panicked")?;
        if !inbox.suspended {
            return Err("`resume` of a terminal that is not suspended".into());
        }
        inbox.suspended = false;
        ready.notify_all();
        terminal.push("$ fg".to_string());
        terminal.push(format!("nc 127.0.0.1 {SHOWN_PORT}"));
        Ok(())
    }

    /// Ctrl-C in nc: the connection is closed.
    fn leave(self, terminal: &mut Vec<String>) {
        terminal.push("^C".to_string());
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// A client's reader thread: reads what arrives into the inbox until the
/// connection ends, pausing while the client is suspended.
fn read_into(mut stream: TcpStream, shared: &Shared) {
    let (lock, ready) = &**shared;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        {
            let Ok(mut inbox) = lock.lock() else { return };
            while inbox.suspended {
                inbox.paused = true;
                ready.notify_all();
                inbox = match ready.wait(inbox) {
                    Ok(i) => i,
                    Err(_) => return,
                };
            }
            inbox.paused = false;
        }
        let got = stream.read(&mut buf);
        let Ok(mut inbox) = lock.lock() else { return };
        match got {
            Ok(0) => inbox.closed = true,
            Ok(n) => {
                if !inbox.discard {
                    inbox.data.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                inbox.closed = true;
                inbox.error = Some(e.to_string());
            }
        }
        ready.notify_all();
        if inbox.closed {
            return;
        }
    }
}

/// `yes 'LINE' | head -n N | nc 127.0.0.1 8080 > /dev/null`: a client
/// that sends LINE N times (from a thread, as the pipe would) and drops
/// what it receives.
fn flood(
    addr: SocketAddr,
    n: usize,
    line: &str,
    terminal: &mut Vec<String>,
) -> Result<Client, String> {
    let client = Client::open(addr, true)?;
    let mut out = client
        .stream
        .try_clone()
        .map_err(|e| format!("cloning the socket: {e}"))?;
    out.set_write_timeout(None)
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let bytes = format!("{line}\n").repeat(n).into_bytes();
    thread::spawn(move || {
        let _ = out.write_all(&bytes);
    });
    terminal.push(format!(
        "$ yes '{line}' | head -n {n} | nc 127.0.0.1 {SHOWN_PORT} > /dev/null"
    ));
    Ok(client)
}

/// Replaces ports and paths that change from run to run.
struct Normaliser {
    replacements: Vec<(String, String)>,
    next_client_port: u16,
}

impl Normaliser {
    /// For a server at `server` (none for a program without one).
    fn new(server: Option<SocketAddr>) -> Normaliser {
        Normaliser {
            replacements: server
                .map(|a| {
                    (
                        format!("{}:{}", a.ip(), a.port()),
                        format!("{}:{SHOWN_PORT}", a.ip()),
                    )
                })
                .into_iter()
                .collect(),
            next_client_port: 50001,
        }
    }

    /// The next client's port is shown as 50001, 50002, ...
    fn client(&mut self, port: u16) {
        self.replacements.push((
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{}", self.next_client_port),
        ));
        self.next_client_port += 1;
    }

    fn apply(&self, line: &str) -> String {
        let mut s = line.to_string();
        for (from, to) in &self.replacements {
            s = replace_port(&s, from, to);
        }
        s
    }
}

/// Replaces `from` (an address) with `to`, but not inside a longer number
/// (`127.0.0.1:5000` must not match `127.0.0.1:50001`).
fn replace_port(s: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Client ports the normaliser was not told about (the harness's own
/// clients): `127.0.0.1:NNNNN` becomes 50001, 50002, ... by first
/// appearance.
fn normalise_unknown_ports(lines: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    lines
        .iter()
        .map(|line| {
            let mut out = String::new();
            let mut rest = line.as_str();
            while let Some(at) = rest.find("127.0.0.1:") {
                let digits: String = rest[at + 10..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                out.push_str(&rest[..at + 10]);
                if digits.len() >= 4 {
                    let idx = seen.iter().position(|d| *d == digits).unwrap_or_else(|| {
                        seen.push(digits.clone());
                        seen.len() - 1
                    });
                    out.push_str(&(50001 + idx).to_string());
                } else {
                    out.push_str(&digits);
                }
                rest = &rest[at + 10 + digits.len()..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// A terminal's transcript, one line per line, ending in a newline.
fn text(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn file(name: &str, lines: &[String]) -> Generated {
    Generated {
        path: Path::new(DIR).join("transcripts").join(name),
        content: text(lines),
    }
}

/// Every transcript: each step's scenario, then the harness CLI's.
pub fn all(root: &Path, steps: &[Step], bins: &Bins) -> Result<Vec<Generated>, String> {
    let mut out = Vec::new();
    for step in steps {
        let path = step.file(scenario::FILE);
        let text = std::fs::read_to_string(root.join(&path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let commands = scenario::parse(&step.name, &text)
            .map_err(|e| format!("{}/{e}", step.dir.display()))?;
        let files = play(&step.name, bins.step(&step.name)?, &commands)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.extend(files);
    }
    out.extend(harness(bins)?);
    Ok(out)
}

/// One run of a scenario: the program, its terminal and the clients'.
struct Run {
    proc: Proc,
    shown: String,
    /// What the program's terminal shows before its command (`ulimit -n`).
    preamble: Vec<String>,
    /// Lines containing any of these are left out of its terminal.
    hidden: Vec<String>,
    /// Unless empty, only lines containing one of these are kept.
    only: Vec<String>,
    /// Set for a server; a stdin program has none.
    addr: Option<SocketAddr>,
    norm: Normaliser,
    stdin: Option<std::process::ChildStdin>,
    /// How many lines containing each awaited text were awaited so far.
    awaited: HashMap<String, usize>,
    terminals: HashMap<String, Vec<String>>,
    clients: HashMap<String, Client>,
    exited: bool,
    /// Since `freeze`: the connections made and the bytes typed, which
    /// `thaw` waits for the kernel to hold.
    frozen: Option<Pending>,
}

/// What clients did while the program was stopped.
#[derive(Default)]
struct Pending {
    connections: usize,
    bytes: usize,
}

impl Run {
    fn start(
        step: &str,
        bin: &Path,
        args: &[String],
        stdin: bool,
        limit: Option<u64>,
        env: &[(String, String)],
    ) -> Result<Run, String> {
        let vars: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let mut shown = format!("{vars}cargo run -p {step}");
        if !args.is_empty() {
            shown = format!("{shown} -- {}", args.join(" "));
        }
        let mut all_args: Vec<&str> = args.iter().map(String::as_str).collect();
        if !stdin {
            all_args.extend(["--port", "0"]);
        }
        let input = if stdin { Stdio::piped() } else { Stdio::null() };
        let mut proc = Proc::spawn(bin, &all_args, input, limit, env)?;
        let stdin = proc.child.stdin.take();
        let addr = if stdin.is_none() {
            Some(proc.listening()?)
        } else {
            None
        };
        Ok(Run {
            proc,
            shown,
            preamble: limit
                .map(|n| format!("$ ulimit -n {n}"))
                .into_iter()
                .collect(),
            hidden: Vec::new(),
            only: Vec::new(),
            norm: Normaliser::new(addr),
            addr,
            stdin,
            awaited: HashMap::new(),
            terminals: HashMap::new(),
            clients: HashMap::new(),
            exited: false,
            frozen: None,
        })
    }

    fn client(&mut self, t: &str) -> Result<(&mut Client, &mut Vec<String>), String> {
        let client = self
            .clients
            .get_mut(t)
            .ok_or_else(|| format!("terminal {t} is not connected (`connect {t}` first)"))?;
        Ok((client, self.terminals.entry(t.to_string()).or_default()))
    }

    fn take_client(&mut self, t: &str) -> Result<(Client, &mut Vec<String>), String> {
        let client = self
            .clients
            .remove(t)
            .ok_or_else(|| format!("terminal {t} is not connected (`connect {t}` first)"))?;
        Ok((client, self.terminals.entry(t.to_string()).or_default()))
    }

    fn act(&mut self, action: &Action) -> Result<Option<(String, Vec<String>)>, String> {
        match action {
            Action::Start { .. } | Action::Ulimit(_) | Action::Env(..) => {
                unreachable!("a run is started by `play`")
            }
            Action::Show(command) => self.shown = command.clone(),
            Action::Hide(text) => self.hidden.push(text.clone()),
            Action::Only(text) => self.only.push(text.clone()),
            Action::Interrupt => self.proc.interrupt()?,
            Action::Freeze => {
                if self.frozen.is_some() {
                    return Err("`freeze` twice, without a `thaw`".into());
                }
                // Stopped in its wait (Linux: /proc/PID/wchan), not on its
                // way there: so that its next kevent() after `thaw` is
                // always the same call, the one SIGSTOP and SIGCONT
                // interrupted (EINTR on Linux).
                let pid = self.proc.child.id();
                let until = Instant::now() + DEADLINE;
                while !std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                    .is_ok_and(|w| w.contains("epoll"))
                {
                    if Instant::now() >= until {
                        return Err(format!(
                            "{}: not waiting in kevent() after {DEADLINE:?} (`freeze` reads /proc/PID/wchan: Linux only)",
                            self.proc.name
                        ));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                self.proc.signal("STOP")?;
                while harness::process::state(pid) != Some('T') {
                    if Instant::now() >= until {
                        return Err(format!(
                            "{}: not stopped after {DEADLINE:?}",
                            self.proc.name
                        ));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                self.frozen = Some(Pending::default());
            }
            Action::Thaw => {
                let pending = self.frozen.take().ok_or("`thaw` without a `freeze`")?;
                let addr = self.addr.ok_or("`thaw` needs a server (`start`)")?;
                wait_for_kernel(addr.port(), &pending)?;
                self.proc.signal("CONT")?;
            }
            Action::Stdin(line) => {
                let stdin = self.stdin.as_mut().ok_or("`stdin` needs `start-stdin`")?;
                stdin
                    .write_all(format!("{line}\n").as_bytes())
                    .map_err(|e| format!("writing {line:?} to stdin: {e}"))?;
            }
            Action::CloseStdin => {
                self.stdin
                    .take()
                    .ok_or("`close-stdin` needs `start-stdin`")?;
            }
            Action::Exit => {
                self.proc.wait_exit()?;
                self.exited = true;
            }
            Action::Await(text) => {
                let n = self.awaited.entry(text.clone()).or_insert(0);
                *n += 1;
                let n = *n;
                self.proc.wait_for(text, n)?;
            }
            Action::Connect(t) => {
                if self.clients.contains_key(t) {
                    return Err(format!("terminal {t} is connected already"));
                }
                let addr = self.addr.ok_or("`connect` needs a server (`start`)")?;
                let terminal = self.terminals.entry(t.clone()).or_default();
                let c = Client::connect(addr, terminal)?;
                if let Some(p) = &mut self.frozen {
                    p.connections += 1;
                }
                self.norm.client(c.port());
                self.clients.insert(t.clone(), c);
            }
            Action::Type(t, line) => {
                if let Some(p) = &mut self.frozen {
                    p.bytes += line.len() + 1;
                }
                let (c, terminal) = self.client(t)?;
                c.type_line(line, terminal)?;
            }
            Action::Expect(t, line) => {
                let (c, terminal) = self.client(t)?;
                c.expect_line(line, terminal)?;
            }
            Action::ExpectMany(t, n, line) => {
                let (c, terminal) = self.client(t)?;
                c.expect_many(*n, line, terminal)?;
            }
            Action::Flood(t, n, line) => {
                if self.clients.contains_key(t) {
                    return Err(format!("terminal {t} is connected already"));
                }
                let addr = self.addr.ok_or("`flood` needs a server (`start`)")?;
                let terminal = self.terminals.entry(t.clone()).or_default();
                let c = flood(addr, *n, line, terminal)?;
                self.norm.client(c.port());
                self.clients.insert(t.clone(), c);
            }
            Action::Suspend(t) => {
                let (c, terminal) = self.client(t)?;
                c.suspend(terminal)?;
            }
            Action::Resume(t) => {
                let (c, terminal) = self.client(t)?;
                c.resume(terminal)?;
            }
            Action::Closed(t) => {
                let (c, terminal) = self.take_client(t)?;
                c.closed_by_server(terminal)?;
            }
            Action::Leave(t) => {
                let (c, terminal) = self.take_client(t)?;
                c.leave(terminal);
            }
            Action::Save(None, file) => {
                let mut lines = self.preamble.clone();
                lines.push(format!(
                    "$ {}{}",
                    self.shown,
                    grep(&self.only, &self.hidden)
                ));
                lines.extend(
                    self.proc
                        .log
                        .iter()
                        .filter(|l| {
                            (self.only.is_empty()
                                || self.only.iter().any(|o| l.contains(o.as_str())))
                                && !self.hidden.iter().any(|h| l.contains(h.as_str()))
                        })
                        .map(|l| round_wait(&round_timing(&self.norm.apply(l)))),
                );
                if !self.exited && self.proc.log.last().map(String::as_str) != Some("^C") {
                    lines.push("^C".to_string());
                }
                return Ok(Some((file.clone(), lines)));
            }
            Action::Save(Some(t), file) => {
                let lines = self
                    .terminals
                    .get(t)
                    .cloned()
                    .ok_or_else(|| format!("terminal {t} was never used"))?;
                return Ok(Some((file.clone(), lines)));
            }
        }
        Ok(None)
    }
}

/// Waits until Linux's /proc/net/tcp shows what clients did while the
/// server on `port` was stopped: its listener's accept queue holds the
/// connections made, and its connected sockets hold the bytes typed,
/// unread. (The server read everything before `freeze`: the scenario
/// awaited its lines.)
fn wait_for_kernel(port: u16, pending: &Pending) -> Result<(), String> {
    let local = format!(":{port:04X}");
    let until = Instant::now() + DEADLINE;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp")
            .map_err(|e| format!("`thaw` reads /proc/net/tcp (Linux only): {e}"))?;
        let (mut queued, mut unread) = (0, 0);
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // f[1] local address, f[3] state (0A LISTEN, 01 ESTABLISHED),
            // f[4] tx_queue:rx_queue in hex.
            if f.len() < 5 || !f[1].ends_with(&local) {
                continue;
            }
            let rx = f[4]
                .split_once(':')
                .and_then(|(_, rx)| usize::from_str_radix(rx, 16).ok())
                .unwrap_or(0);
            match f[3] {
                "0A" => queued += rx,
                "01" => unread += rx,
                _ => {}
            }
        }
        if queued >= pending.connections && unread >= pending.bytes {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(format!(
                "`thaw`: after {DEADLINE:?} the kernel holds {queued} connection(s) and {unread} byte(s) for port {port}, not {} and {}",
                pending.connections, pending.bytes
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Plays a step's scenario against its binary; returns the files saved.
fn play(step: &str, bin: &Path, commands: &[scenario::Command]) -> Result<Vec<Generated>, String> {
    let mut out: Vec<Generated> = Vec::new();
    let mut run: Option<Run> = None;
    let mut limit = None;
    let mut env = Vec::new();
    for c in commands {
        let at = |e: String| format!("line {}: {e}", c.line);
        if let Action::Ulimit(n) = &c.action {
            // The previous run's program is stopped (dropped) first.
            drop(run.take());
            limit = Some(*n);
            continue;
        }
        if let Action::Env(name, value) = &c.action {
            drop(run.take());
            env.push((name.clone(), value.clone()));
            continue;
        }
        if let Action::Start { args, stdin } = &c.action {
            drop(run.take());
            let env = std::mem::take(&mut env);
            run = Some(Run::start(step, bin, args, *stdin, limit.take(), &env).map_err(at)?);
            continue;
        }
        let r = run.as_mut().ok_or_else(|| at("no `start` yet".into()))?;
        if let Some((name, lines)) = r.act(&c.action).map_err(at)? {
            let g = file(&name, &lines);
            if out.iter().any(|o| o.path == g.path) {
                return Err(at(format!("{name} is saved twice")));
            }
            out.push(g);
        }
    }
    Ok(out)
}

/// ` 2>&1 | grep -e 'KEPT'` for the texts of `only`, then ` | grep -v
/// 'TEXT'` for the hidden texts (nothing for neither): the command that
/// shows what the transcript shows.
fn grep(only: &[String], hidden: &[String]) -> String {
    let patterns = |texts: &[String]| -> String {
        let p: Vec<String> = texts.iter().map(|t| format!("-e '{t}'")).collect();
        p.join(" ")
    };
    let mut out = String::new();
    if !only.is_empty() {
        out.push_str(&format!(" 2>&1 | grep {}", patterns(only)));
    }
    if !hidden.is_empty() {
        let pipe = if only.is_empty() { " 2>&1 |" } else { " |" };
        out.push_str(&format!("{pipe} grep -v {}", patterns(hidden)));
    }
    out
}

/// `kevent(...) = 1, waited 0.173 ms`, a line of `KQ_TRACE`: how long a
/// call waited is the clock's, and differs from run to run; it is shown as
/// `waited … ms`.
fn round_wait(line: &str) -> String {
    let Some((head, tail)) = line.rsplit_once(", waited ") else {
        return line.to_string();
    };
    let measured = tail
        .strip_suffix(" ms")
        .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if line.starts_with("kevent(") && measured {
        format!("{head}, waited … ms")
    } else {
        line.to_string()
    }
}

/// `timeout T ms: 0 events after E ms`: E is the clock, T is the lesson.
/// An E within 50 ms above T is shown as T; anything else is kept, since
/// then the timeout did not do what the chapter says.
fn round_timing(line: &str) -> String {
    let Some((head, tail)) = line.split_once(" events after ") else {
        return line.to_string();
    };
    let Some(timeout) = head
        .split_once("timeout ")
        .and_then(|(_, t)| t.split_once(" ms"))
        .and_then(|(t, _)| t.parse::<u64>().ok())
    else {
        return line.to_string();
    };
    let Some(elapsed) = tail.strip_suffix(" ms").and_then(|e| e.parse::<u64>().ok()) else {
        return line.to_string();
    };
    if (timeout..timeout + 50).contains(&elapsed) {
        format!("{head} events after {timeout} ms")
    } else {
        line.to_string()
    }
}

/// `the server used 0% of one CPU over 1.0 s, and was running or ready to
/// run in 1% of 98 looks`, a calm check's measurement of a passing server:
/// the figures are the machine's (a busy one sees the server ready to run
/// now and then), so a second run would differ; they are shown as `…`. A
/// failing server's line says more and is not of this shape.
fn mask_calm(line: &str) -> String {
    let Some((head, rest)) = line.split_once(": the server used ") else {
        return line.to_string();
    };
    let shape = rest
        .split_once("% of one CPU over ")
        .and_then(|(cpu, rest)| {
            let (wall, rest) = rest.split_once(" s, and was running or ready to run in ")?;
            let (ready, rest) = rest.split_once("% of ")?;
            let looks = rest.strip_suffix(" looks")?;
            let numbers =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
            (numbers(cpu) && numbers(wall) && numbers(ready) && numbers(looks)).then_some(())
        });
    if shape.is_none() {
        return line.to_string();
    }
    format!(
        "{head}: the server used …% of one CPU over … s, and was running or ready to run in …% of … looks"
    )
}

/// The harness CLI: the list of checks, a passing run, a failing one.
fn harness(bins: &Bins) -> Result<Vec<Generated>, String> {
    let runs: [(&str, Vec<String>, &str); 3] = [
        (
            "harness-list.txt",
            vec!["--list".into()],
            "cargo run -p harness -- --list",
        ),
        (
            "harness-check-step3.txt",
            vec![
                "check".into(),
                "echo".into(),
                "--".into(),
                bins.step("step3")?.display().to_string(),
            ],
            "cargo run -p harness -- check echo -- target/debug/step3",
        ),
        (
            "harness-check-step2-fails.txt",
            vec![
                "check".into(),
                "echo".into(),
                "--only".into(),
                "echoes_a_line".into(),
                "--".into(),
                bins.step("step2")?.display().to_string(),
            ],
            "cargo run -p harness -- check echo --only echoes_a_line -- target/debug/step2",
        ),
    ];
    let mut out = Vec::new();
    for (name, args, shown) in runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = Proc::spawn(&bins.harness, &args, Stdio::null(), None, &[])?;
        p.wait_exit()?;
        let mut lines = vec![format!("$ {shown}")];
        let mut log = p.log.clone();
        for (step, path) in &bins.steps {
            let path = path.display().to_string();
            let shown_path = format!("target/debug/{step}");
            for l in &mut log {
                *l = l.replace(&path, &shown_path);
            }
        }
        lines.extend(normalise_unknown_ports(&log).iter().map(|l| mask_calm(l)));
        out.push(file(name, &lines));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A measured time just over the timeout is shown as the timeout; one
    /// far off is kept, so a broken timeout shows in the diff.
    #[test]
    fn rounds_only_timings_close_to_the_timeout() {
        let l = "step1: kevent() with no changes, timeout 100 ms: 0 events after 101 ms";
        assert_eq!(
            round_timing(l),
            "step1: kevent() with no changes, timeout 100 ms: 0 events after 100 ms"
        );
        let far = "step1: kevent() with no changes, timeout 100 ms: 0 events after 900 ms";
        assert_eq!(round_timing(far), far);
    }

    /// A calm check's figures are hidden, and only in a line of its shape.
    #[test]
    fn hides_the_figures_of_a_calm_check_only() {
        let l = "      with 3 clients connected and silent: the server used 0% of one CPU over 1.0 s, and was running or ready to run in 1% of 98 looks";
        assert_eq!(
            mask_calm(l),
            "      with 3 clients connected and silent: the server used …% of one CPU over … s, and was running or ready to run in …% of … looks"
        );
        let failing =
            "with 3 clients: the server used 97% of one CPU over 1.0 s (spinning), and was running";
        assert_eq!(mask_calm(failing), failing);
    }

    /// A KQ_TRACE call's wait is hidden; other lines that say "waited" are
    /// kept.
    #[test]
    fn hides_only_the_waits_of_traced_calls() {
        assert_eq!(
            round_wait("kevent(4, 0 changes, 64 events, NULL) = 1, waited 613.726 ms"),
            "kevent(4, 0 changes, 64 events, NULL) = 1, waited … ms"
        );
        let log = "step7: user #0 waited 3 s, waited 12 ms";
        assert_eq!(round_wait(log), log);
    }

    /// A port is replaced only where it is the whole number.
    #[test]
    fn replaces_whole_ports_only() {
        assert_eq!(
            replace_port("a 127.0.0.1:5000 b 127.0.0.1:50001", "127.0.0.1:5000", "X"),
            "a X b 127.0.0.1:50001"
        );
    }

    /// Unknown client ports are numbered by first appearance.
    #[test]
    fn numbers_unknown_ports_by_first_appearance() {
        let lines = vec![
            "from 127.0.0.1:41234".to_string(),
            "from 127.0.0.1:39999 and 127.0.0.1:41234".to_string(),
        ];
        assert_eq!(
            normalise_unknown_ports(&lines),
            vec![
                "from 127.0.0.1:50001".to_string(),
                "from 127.0.0.1:50002 and 127.0.0.1:50001".to_string()
            ]
        );
    }
}
