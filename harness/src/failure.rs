//! A failure written for a learner: what the harness did, what it expected,
//! what arrived, and what the server said on stderr.

use std::fmt;

use crate::server::Shared;

/// How many lines of the server's stderr a failure shows.
const TAIL_LINES: usize = 12;
/// How many of a traced server's last `kevent()` calls a failure shows.
const TRACE_CALLS: usize = 4;
/// At most this many lines of them (a call may return 64 events).
const TRACE_LINES: usize = 24;

/// A check or client operation that did not go as expected.
///
/// `Display` and `Debug` both print the whole message, so a test written as
/// `fn t() -> harness::Result` shows it verbatim when it returns `Err`.
/// Lines from the harness are tagged `[harness]`; the server's stderr lines
/// are tagged with its name, e.g. `[step3]`.
pub struct Failure {
    lines: Vec<String>,
    /// Boxed: a `Result` that is `Ok` should stay small.
    server: Option<Box<ServerReport>>,
}

/// The server's side of the story, captured when the failure happened.
struct ServerReport {
    name: String,
    status: Option<String>,
    stderr_tail: Vec<String>,
    stderr_lines: usize,
    /// A traced server's last `kevent()` calls and how many it made, or
    /// `None` when it was not started with the trace.
    trace: Option<(Vec<String>, usize)>,
    /// Its stderr is a pipe the harness never reads
    /// ([`crate::Launch::stderr_unread`]): there is nothing to quote.
    stderr_unread: bool,
}

/// What every harness call returns.
pub type Result<T = ()> = std::result::Result<T, Failure>;

impl Failure {
    /// A failure with one or more lines of explanation.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            lines: message.into().lines().map(str::to_owned).collect(),
            server: None,
        }
    }

    /// Adds a line (or several) of context before the message (what was
    /// being checked).
    pub fn context(mut self, line: impl Into<String>) -> Failure {
        let line = line.into();
        let lines: Vec<String> = line.lines().map(str::to_owned).collect();
        self.lines.splice(0..0, lines);
        self
    }

    /// The lines written by the harness (without tags), for tests.
    pub fn message(&self) -> String {
        self.lines.join("\n")
    }

    pub(crate) fn with_server(mut self, shared: Option<&Shared>) -> Failure {
        if self.server.is_some() {
            return self;
        }
        if let Some(s) = shared {
            s.settle();
            let status = s.exit_status();
            let mut stderr = s.stderr_text();
            if status.is_none() && !stderr.ends_with('\n') {
                // A running server may be in the middle of a line: show
                // whole lines only.
                stderr.truncate(stderr.rfind('\n').map_or(0, |i| i + 1));
            }
            let all: Vec<&str> = stderr.lines().collect();
            let told = without_backtraces(&all);
            let from = told.len().saturating_sub(TAIL_LINES);
            self.server = Some(Box::new(ServerReport {
                name: s.name.clone(),
                status: status.map(|st| describe_status(&st)),
                stderr_tail: told[from..].to_vec(),
                stderr_lines: all.len(),
                trace: s
                    .trace
                    .as_ref()
                    .map(|path| last_calls(&std::fs::read_to_string(path).unwrap_or_default())),
                stderr_unread: s.stderr_unread(),
            }));
        }
        self
    }
}

/// The last [`TRACE_CALLS`] blocks of a kq trace (each starts with a line
/// at the margin: `kevent(...)`, or the note of calls it dropped), at most
/// [`TRACE_LINES`] lines of them, and how many calls the trace holds.
fn last_calls(trace: &str) -> (Vec<String>, usize) {
    let lines: Vec<&str> = trace.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("kevent("))
        .collect();
    let from = if starts.len() > TRACE_CALLS {
        starts[starts.len() - TRACE_CALLS]
    } else {
        0
    };
    let from = from.max(lines.len().saturating_sub(TRACE_LINES));
    let shown = lines[from..].iter().map(|l| l.to_string()).collect();
    (shown, starts.len())
}

/// The server's stderr with each Rust panic's backtrace (printed when
/// `RUST_BACKTRACE` is set) cut down to one line: a tail of frames would
/// push the panic's message, the line that says what happened, out of view.
fn without_backtraces(lines: &[&str]) -> Vec<String> {
    let frame = |l: &str| {
        let t = l.trim_start();
        let numbered = t
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        numbered || t.starts_with("at ") || t.starts_with("note: Some details are omitted")
    };
    let mut kept = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "stack backtrace:" {
            let start = i;
            i += 1;
            while i < lines.len() && frame(lines[i]) {
                i += 1;
            }
            kept.push(format!("(a backtrace of {} lines, left out)", i - start));
            continue;
        }
        kept.push(lines[i].to_string());
        i += 1;
    }
    kept
}

/// "exited with status 1", "was killed by signal 9".
pub(crate) fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "exited".to_string(),
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "[harness] {line}")?;
        }
        if let Some(s) = &self.server {
            if let Some(status) = &s.status {
                // Said once: a message may already tell it ("the server
                // exited with status 1 while being checked").
                let told = format!("the server {status}");
                if !self.lines.iter().any(|l| l.contains(&told)) {
                    writeln!(f, "[harness] {told}")?;
                }
            }
            if s.stderr_unread {
                writeln!(
                    f,
                    "[harness] {}'s stderr is a pipe the harness does not read: nothing of it to show",
                    s.name
                )?;
            } else if s.stderr_tail.is_empty() {
                writeln!(f, "[harness] {} wrote nothing on stderr", s.name)?;
            } else {
                let shown = s.stderr_tail.len();
                let of = if shown < s.stderr_lines {
                    format!("last {shown} of {} lines", s.stderr_lines)
                } else if shown == 1 {
                    "1 line".to_string()
                } else {
                    format!("{shown} lines")
                };
                writeln!(f, "[harness] {}'s stderr ({of}):", s.name)?;
                for line in &s.stderr_tail {
                    writeln!(f, "[{}] {line}", s.name)?;
                }
            }
            match &s.trace {
                None => {}
                Some((_, 0)) => writeln!(
                    f,
                    "[harness] the server made no kevent() call that KQ_TRACE saw (only servers that use kq, or kq-c from C, are traced)"
                )?,
                Some((lines, calls)) => {
                    let shown = lines.iter().filter(|l| l.starts_with("kevent(")).count();
                    let of = if shown < *calls {
                        format!(" ({shown} of {calls})")
                    } else {
                        String::new()
                    };
                    writeln!(f, "[harness] the server's last kevent() calls{of}:")?;
                    for line in lines {
                        writeln!(f, "[kq] {line}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `fn test() -> Result` prints the error with {:?}: give the learner
        // the same readable text, starting on a fresh line.
        writeln!(f)?;
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic's backtrace is one line, and the panic's message stays.
    #[test]
    fn cuts_a_backtrace_down_to_one_line() {
        let stderr = [
            "step3: accepted fd 6",
            "",
            "thread 'main' (7) panicked at steps/step3/src/exercise.rs:117:21:",
            "not yet implemented: register_client: put the new client on the queue",
            "stack backtrace:",
            "   0: __rustc::rust_begin_unwind",
            "             at /rustc/x/library/std/src/panicking.rs:689:5",
            "  12: step3::main",
            "             at ./src/exercise.rs:117:21",
            "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.",
            "step3: still here",
        ];
        assert_eq!(
            without_backtraces(&stderr),
            [
                "step3: accepted fd 6",
                "",
                "thread 'main' (7) panicked at steps/step3/src/exercise.rs:117:21:",
                "not yet implemented: register_client: put the new client on the queue",
                "(a backtrace of 6 lines, left out)",
                "step3: still here",
            ]
        );
    }
}
