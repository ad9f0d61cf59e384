//! Transcripts for the chapters' "Run it" sections and the instructors'
//! page: each step server is started on `--port 0`, driven by a small
//! scripted client, and what a person would see in each terminal is
//! written down.
//!
//! Deterministic on purpose, so the freshness check does not flap: every
//! client action waits for the server to log that it was handled before
//! the next one starts; the server's stdout and stderr share one pipe, as
//! they share a terminal; and what changes from run to run is normalised:
//! the server's port becomes 8080 (the default a reader types), each
//! client's port becomes 50001, 50002, ... in the order the clients
//! connect, binary paths become `target/debug/NAME`, and measured times
//! are rounded to the timeout they measure.
//!
//! Descriptor numbers are kept, since watching them be reused is part of
//! the lesson. They are the Linux ones: there `kq` keeps one more
//! descriptor per queue (an eventfd), so on macOS and the BSDs every client
//! number is one lower. The chapters say so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::generated::{Generated, DIR};

/// The longest any single wait may take before the run fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// The port the transcripts show for the server: the steps' default.
const SHOWN_PORT: u16 = 8080;

/// The binaries the transcripts run.
pub struct Bins {
    /// `step1` .. `step5`, by name.
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
    fn spawn(bin: &Path, args: &[&str], stdin: Stdio) -> Result<Proc, String> {
        let mut child = Command::new("sh")
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

    /// The address from `listening on HOST:PORT`.
    fn listening(&mut self) -> Result<SocketAddr, String> {
        self.wait_for("listening on ", 1)?;
        let line = self
            .log
            .iter()
            .find_map(|l| l.strip_prefix("listening on "))
            .unwrap_or_default();
        line.trim()
            .parse()
            .map_err(|e| format!("{}: bad address in 'listening on {line}': {e}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted `nc`: what it sends is "typed", what it receives is printed,
/// and both go into its terminal's transcript.
struct Client {
    stream: TcpStream,
    terminal: Vec<String>,
}

impl Client {
    fn connect(addr: SocketAddr, terminal: &mut Vec<String>) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(DEADLINE))
            .and_then(|()| stream.set_write_timeout(Some(DEADLINE)))
            .map_err(|e| format!("socket timeouts: {e}"))?;
        terminal.push(format!("$ nc 127.0.0.1 {SHOWN_PORT}"));
        Ok(Client {
            stream,
            terminal: Vec::new(),
        })
    }

    fn port(&self) -> u16 {
        self.stream.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Types one line (the terminal shows it, as a tty echoes typing).
    fn type_line(&mut self, line: &str) -> Result<(), String> {
        self.terminal.push(line.to_string());
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("sending {line:?}: {e}"))
    }

    /// Reads exactly `want` (plus its newline) and shows it.
    fn expect_line(&mut self, want: &str) -> Result<(), String> {
        let mut buf = vec![0u8; want.len() + 1];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| format!("waiting for {want:?}: {e}"))?;
        let got = String::from_utf8_lossy(&buf).into_owned();
        if got != format!("{want}\n") {
            return Err(format!("expected {want:?} and a newline, got {got:?}"));
        }
        self.terminal.push(want.to_string());
        Ok(())
    }

    /// Reads one line, whatever it is, and shows it.
    fn read_line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            match self.stream.read(&mut byte) {
                Ok(0) => return Err(format!("EOF after {line:?}, before a newline")),
                Ok(_) => line.push(byte[0]),
                Err(e) => return Err(format!("reading a line: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        self.terminal.push(text.clone());
        Ok(text)
    }

    /// Waits for the server to close the connection.
    fn expect_eof(&mut self) -> Result<(), String> {
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .map_err(|e| format!("waiting for EOF: {e}"))?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "expected EOF, got {:?}",
                String::from_utf8_lossy(&rest)
            ))
        }
    }

    /// Ctrl-C in nc: the connection is closed.
    fn leave(mut self, terminal: &mut Vec<String>) {
        self.terminal.push("^C".to_string());
        let _ = self.stream.shutdown(Shutdown::Both);
        terminal.append(&mut self.terminal);
    }

    /// The server closed the connection. macOS's nc exits then, but
    /// OpenBSD netcat (Debian's and Ubuntu's `nc`) waits for its own input
    /// to end too, so the transcript shows the Ctrl-C a Linux reader has to
    /// type (harmless at a macOS prompt). The chapters say both.
    fn closed_by_server(mut self, terminal: &mut Vec<String>) {
        self.terminal.push("^C".to_string());
        terminal.append(&mut self.terminal);
    }
}

/// Replaces ports and paths that change from run to run.
struct Normaliser {
    replacements: Vec<(String, String)>,
    next_client_port: u16,
}

impl Normaliser {
    fn new(server: SocketAddr) -> Normaliser {
        Normaliser {
            replacements: vec![(
                format!("{}:{}", server.ip(), server.port()),
                format!("{}:{SHOWN_PORT}", server.ip()),
            )],
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

/// Every transcript.
pub fn all(bins: &Bins) -> Result<Vec<Generated>, String> {
    let mut out = Vec::new();
    out.extend(step1(bins)?);
    out.extend(step2(bins)?);
    out.extend(step3(bins)?);
    out.extend(step4(bins)?);
    out.extend(step5(bins)?);
    out.extend(harness(bins)?);
    Ok(out)
}

/// Step 1: two lines arrive on a pipe a moment apart, then the pipe closes
/// a moment later: stdin is dropped only after `kqueue` was read, which is
/// the shown command's last `sleep 1` (without it, the data and `EV_EOF`
/// can come as one event, and the transcript would flap).
fn step1(bins: &Bins) -> Result<Vec<Generated>, String> {
    let mut p = Proc::spawn(bins.step("step1")?, &[], Stdio::piped())?;
    let mut stdin = p.child.stdin.take().expect("stdin is piped");
    p.wait_for("registered EVFILT_READ", 1)?;
    for (i, line) in ["hello", "kqueue"].iter().enumerate() {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("step1 stdin: {e}"))?;
        p.wait_for("readable: data=", i + 1)?;
        p.wait_for(line, 1)?;
    }
    drop(stdin);
    p.wait_exit()?;
    let mut lines = vec![
        "$ (printf 'hello\\n'; sleep 1; printf 'kqueue\\n'; sleep 1) | cargo run -p step1"
            .to_string(),
    ];
    lines.extend(p.log.iter().map(|l| round_timing(l)));
    Ok(vec![file("step1.txt", &lines)])
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

/// A network step's server, its normaliser and the first terminal.
fn start(bins: &Bins, step: &str, args: &[&str]) -> Result<(Proc, SocketAddr, Normaliser), String> {
    let mut all_args = vec!["--port", "0"];
    all_args.extend_from_slice(args);
    let mut p = Proc::spawn(bins.step(step)?, &all_args, Stdio::null())?;
    let addr = p.listening()?;
    Ok((p, addr, Normaliser::new(addr)))
}

/// The server's terminal: the command, what it printed, and Ctrl-C.
fn server_terminal(p: &Proc, command: &str, norm: &Normaliser) -> Vec<String> {
    let mut lines = vec![format!("$ {command}")];
    lines.extend(p.log.iter().map(|l| norm.apply(l)));
    lines.push("^C".to_string());
    lines
}

/// Step 2: two clients one after another, each greeted and closed.
fn step2(bins: &Bins) -> Result<Vec<Generated>, String> {
    let (mut p, addr, mut norm) = start(bins, "step2", &[])?;
    let mut term = Vec::new();
    for i in 1..=2 {
        let mut c = Client::connect(addr, &mut term)?;
        norm.client(c.port());
        let greeting = c.read_line()?;
        if !greeting.starts_with("hello from step2") {
            return Err(format!("step2 greeted with {greeting:?}"));
        }
        c.expect_eof()?;
        c.closed_by_server(&mut term);
        p.wait_for("greeted, close(", i)?;
    }
    Ok(vec![
        file(
            "step2-server.txt",
            &server_terminal(&p, "cargo run -p step2", &norm),
        ),
        file("step2-client.txt", &term),
    ])
}

/// Step 3: one client types two lines and leaves; a second one comes.
fn step3(bins: &Bins) -> Result<Vec<Generated>, String> {
    let (mut p, addr, mut norm) = start(bins, "step3", &[])?;
    let mut term = Vec::new();
    let mut c = Client::connect(addr, &mut term)?;
    norm.client(c.port());
    p.wait_for("accepted fd", 1)?;
    for (i, line) in ["hello", "kqueue"].iter().enumerate() {
        c.type_line(line)?;
        c.expect_line(line)?;
        p.wait_for("echoed", i + 1)?;
    }
    c.leave(&mut term);
    p.wait_for("EOF, close(", 1)?;
    let mut c = Client::connect(addr, &mut term)?;
    norm.client(c.port());
    p.wait_for("accepted fd", 2)?;
    c.type_line("same number, new client")?;
    c.expect_line("same number, new client")?;
    p.wait_for("echoed", 3)?;
    c.leave(&mut term);
    p.wait_for("EOF, close(", 2)?;
    Ok(vec![
        file(
            "step3-server.txt",
            &server_terminal(&p, "cargo run -p step3", &norm),
        ),
        file("step3-client.txt", &term),
    ])
}

/// Step 4: the right order (the default), then the wrong one.
fn step4(bins: &Bins) -> Result<Vec<Generated>, String> {
    let mut out = Vec::new();
    for (mode, shown, name, removed) in [
        (
            "delete",
            "cargo run -p step4",
            "step4-delete-server.txt",
            "EV_DELETE ok",
        ),
        (
            "close-then-delete",
            "cargo run -p step4 -- --remove close-then-delete",
            "step4-close-then-delete-server.txt",
            "then EV_DELETE",
        ),
    ] {
        let (mut p, addr, mut norm) = start(bins, "step4", &["--remove", mode])?;
        let mut term = Vec::new();
        for i in 1..=2 {
            let mut c = Client::connect(addr, &mut term)?;
            norm.client(c.port());
            p.wait_for("accepted fd", i)?;
            c.type_line("hello")?;
            c.expect_line("hello")?;
            p.wait_for("echoed", i)?;
            c.leave(&mut term);
            p.wait_for(removed, i)?;
        }
        out.push(file(name, &server_terminal(&p, shown, &norm)));
        if mode == "delete" {
            out.push(file("step4-client.txt", &term));
        }
    }
    Ok(out)
}

/// Step 5: a room of two; a third client is turned away, then gets the
/// slot a leaving user freed.
fn step5(bins: &Bins) -> Result<Vec<Generated>, String> {
    let (mut p, addr, mut norm) = start(bins, "step5", &["--max-users", "2"])?;
    let (mut t2, mut t3, mut t4) = (Vec::new(), Vec::new(), Vec::new());
    let mut a = Client::connect(addr, &mut t2)?;
    norm.client(a.port());
    p.wait_for("joined", 1)?;
    let mut b = Client::connect(addr, &mut t3)?;
    norm.client(b.port());
    p.wait_for("joined", 2)?;

    a.type_line("hi, this is terminal 2")?;
    b.expect_line("hi, this is terminal 2")?;
    p.wait_for("relayed", 1)?;

    let mut c = Client::connect(addr, &mut t4)?;
    norm.client(c.port());
    c.expect_line("server is full, try again later")?;
    c.expect_eof()?;
    c.closed_by_server(&mut t4);
    p.wait_for("refused", 1)?;

    b.type_line("terminal 3 here, leaving now")?;
    a.expect_line("terminal 3 here, leaving now")?;
    p.wait_for("relayed", 2)?;
    b.leave(&mut t3);
    p.wait_for("is free", 1)?;

    let mut c = Client::connect(addr, &mut t4)?;
    norm.client(c.port());
    p.wait_for("joined", 3)?;
    c.type_line("terminal 4, second try: in")?;
    a.expect_line("terminal 4, second try: in")?;
    p.wait_for("relayed", 3)?;

    c.leave(&mut t4);
    p.wait_for("is free", 2)?;
    a.leave(&mut t2);
    p.wait_for("is free", 3)?;
    Ok(vec![
        file(
            "step5-server.txt",
            &server_terminal(&p, "cargo run -p step5 -- --max-users 2", &norm),
        ),
        file("step5-terminal2.txt", &t2),
        file("step5-terminal3.txt", &t3),
        file("step5-terminal4.txt", &t4),
    ])
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
        let mut p = Proc::spawn(&bins.harness, &args, Stdio::null())?;
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
        lines.extend(normalise_unknown_ports(&log));
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
