//! Running a step's tests against the learner's file
//! (`cargo test -p stepN --features exercise`), with a deadline, stoppable
//! with Ctrl-C, and reading what libtest printed into one outcome: passed,
//! failed (with the first failing test and its key lines), or does not
//! compile.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Set by the SIGINT handler (Ctrl-C).
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C sets [`INTERRUPTED`] instead of killing `cargo learn` at once,
/// so that it can stop the tests it started (they run in a process group
/// of their own, which the terminal's Ctrl-C does not reach).
pub fn catch_ctrl_c() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; the function pointer lives for the program.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// What one run of a step's tests came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed {
        tests: usize,
    },
    Failed {
        passed: usize,
        failed: usize,
        first: Failure,
    },
    /// The learner's file does not compile: the compiler's first errors.
    DoesNotCompile {
        errors: Vec<String>,
    },
    /// The run went over its deadline and was stopped.
    TimedOut(Duration),
    /// Ctrl-C.
    Interrupted,
    /// cargo could not be started, or said something this does not read.
    Trouble(String),
}

/// One failing test, as the learner should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `passes_echo_check::case_6_echoes_the_rest_after_half_close`.
    pub name: String,
    /// The key lines of its output: what was sent, expected, arrived.
    pub lines: Vec<String>,
    /// The first of them that says what went wrong, for a one-line
    /// summary (`progress`): not what was checked, nor the server's log.
    pub reason: Option<String>,
    /// The `todo!()` the program stopped at, if it did.
    pub todo: Option<Todo>,
}

/// A `todo!()` that panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    /// `steps/step3/src/exercise.rs:117` (as the panic said it).
    pub at: String,
    /// The lesson's name, the word before the first `:` of the message.
    pub lesson: String,
    /// The message, `echo: read at most ...`.
    pub message: String,
}

/// The most lines of a failure shown, and how many of them from its start
/// (the rest from its end).
const MAX_LINES: usize = 16;
const HEAD_LINES: usize = 6;

/// Runs `cargo test -p STEP --features exercise` in `root` and reads the
/// outcome; `order` is the step's tests in the order a failure is picked.
/// `trace`: with `HARNESS_TRACE=1`, so the harness starts the servers with
/// `KQ_TRACE` and a failure quotes their last kevent() calls.
pub fn check(
    root: &Path,
    cargo: &str,
    step: &str,
    order: &[String],
    trace: bool,
    deadline: Duration,
) -> Outcome {
    let mut cmd = Command::new(cargo);
    if trace {
        cmd.env("HARNESS_TRACE", "1");
    }
    cmd.args(["test", "-q", "-p", step, "--features", "exercise"])
        .args(["--no-fail-fast", "--color", "never"])
        .current_dir(root)
        // A todo!()'s panic is one line then, not a backtrace.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: on a deadline or Ctrl-C the whole of it
        // (cargo, the test binaries, the servers they started) is stopped.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Trouble(format!("cannot run {cargo}: {e}")),
    };
    let collect = |mut from: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let stop = |child: &mut std::process::Child| {
        let pgid = child.id() as libc::pid_t;
        // SAFETY: kill() with a negative pid signals that process group,
        // which is the child's own (process_group(0) above).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = child.wait();
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Outcome::Trouble(format!("waiting for cargo: {e}")),
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            stop(&mut child);
            return Outcome::Interrupted;
        }
        if started.elapsed() > deadline {
            stop(&mut child);
            return Outcome::TimedOut(deadline);
        }
        thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    read_outcome(status.success(), &out, &err, order)
}

/// Reads cargo's and libtest's output into an outcome.
pub fn read_outcome(success: bool, stdout: &str, stderr: &str, order: &[String]) -> Outcome {
    let (mut passed, mut failed, mut results) = (0, 0, 0);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            results += 1;
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    if success {
        return Outcome::Passed { tests: passed };
    }
    let failures = failures(stdout);
    if let Some(first) = failures
        .into_iter()
        .min_by_key(|f| (f.todo.is_none(), rank(&f.name, order), f.name.clone()))
    {
        return Outcome::Failed {
            passed,
            failed: failed.max(1),
            first,
        };
    }
    if results == 0 || stderr.contains("error: could not compile") {
        let errors = compiler_errors(stderr);
        if !errors.is_empty() {
            return Outcome::DoesNotCompile { errors };
        }
    }
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Outcome::Trouble(format!(
        "the tests failed, but their output names no failing test; cargo said:\n{}",
        tail.join("\n")
    ))
}

/// `1 passed; 26 failed; ...` -> the number before `what`.
fn count(summary: &str, what: &str) -> usize {
    summary
        .split(';')
        .find_map(|part| {
            let before = part.trim().strip_suffix(what.trim())?;
            before.split_whitespace().last()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Where a test comes in the step's order (rstest cases by their test).
fn rank(name: &str, order: &[String]) -> usize {
    let function = name.split("::").next().unwrap_or(name);
    order
        .iter()
        .position(|t| t == function)
        .unwrap_or(usize::MAX)
}

/// Every `---- NAME stdout ----` block of libtest's output.
fn failures(stdout: &str) -> Vec<Failure> {
    let mut found = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in stdout.lines() {
        let header = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"));
        if header.is_some() || line == "failures:" {
            if let Some((name, lines)) = current.take() {
                found.push(failure(name, &lines));
            }
        }
        if let Some(name) = header {
            current = Some((name.to_string(), Vec::new()));
        } else if let Some((_, lines)) = &mut current {
            lines.push(line.to_string());
        }
    }
    if let Some((name, lines)) = current {
        found.push(failure(name, &lines));
    }
    found
}

/// A failure's key lines, and the `todo!()` it stopped at.
fn failure(name: String, output: &[String]) -> Failure {
    let mut todo = None;
    for (i, line) in output.iter().enumerate() {
        if let Some(at) = line.find("not yet implemented: ") {
            let message = line[at + "not yet implemented: ".len()..]
                .trim()
                .to_string();
            let place = output[..i]
                .iter()
                .rev()
                .find_map(|l| {
                    let rest = &l[l.find("panicked at ")? + "panicked at ".len()..];
                    let rest = rest.trim().trim_end_matches(':');
                    // path:line:column -> path:line
                    Some(rest.rsplit_once(':').map_or(rest, |(p, _)| p).to_string())
                })
                .unwrap_or_default();
            let lesson = message
                .split_once(':')
                .map(|(n, _)| n)
                .filter(|n| book::hints::is_name(n))
                .unwrap_or_default()
                .to_string();
            todo = Some(Todo {
                at: place,
                lesson,
                message,
            });
            break;
        }
    }
    let noise = |l: &str| {
        let t = l.trim();
        // A tagged line with nothing after the tag: `[step3] `.
        let bare_tag = t.starts_with('[') && t.ends_with(']') && !t.contains(' ');
        t.is_empty()
            || bare_tag
            || t == "Error:"
            || t.starts_with("note: run with `RUST_BACKTRACE")
            || t.ends_with(
                "] note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            )
    };
    // A test that runs a whole stage of checks reports each failed check
    // in a section of its own, every line prefixed once more with
    // `[harness] `, sections apart by a bare `[harness]` line. Show the
    // first failed check (most often the others failed the same way).
    let nested = output.iter().any(|l| l.starts_with("[harness] ["));
    let mut shown: Vec<&str> = Vec::new();
    let mut more_checks = 0;
    for line in output {
        if nested && line.trim() == "[harness]" {
            more_checks += 1;
            continue;
        }
        if more_checks > 0 {
            continue;
        }
        let line = match line.strip_prefix("[harness] ") {
            Some(rest) if nested && rest.starts_with('[') => rest,
            _ => line.as_str(),
        };
        shown.push(line);
    }
    let mut lines: Vec<String> = shown
        .into_iter()
        .filter(|l| !noise(l))
        .map(|l| l.trim_end().to_string())
        .collect();
    // The server's last kevent() calls (`--trace`) are shown whole: the
    // learner asked for them. The harness keeps them short.
    let trace = lines
        .iter()
        .position(|l| l.contains("the server's last kevent() calls"))
        .map_or(Vec::new(), |at| lines.split_off(at));
    if lines.len() > MAX_LINES {
        // The first lines say what was checked and expected, the last ones
        // what the server said (its stderr tail): keep both ends.
        let cut = lines.len() - MAX_LINES;
        let tail = lines.split_off(lines.len() - (MAX_LINES - HEAD_LINES));
        lines.truncate(HEAD_LINES);
        lines.push(format!("... ({cut} lines more)"));
        lines.extend(tail);
    }
    lines.extend(trace);
    if more_checks > 0 {
        let s = if more_checks == 1 { "" } else { "s" };
        lines.push(format!(
            "... (and {more_checks} more failed check{s} of the same test)"
        ));
    }
    let reason = first_reason(&lines);
    Failure {
        name,
        lines,
        todo,
        reason,
    }
}

/// The most characters of a reason `progress` shows.
const MAX_REASON: usize = 110;

/// The first line of a failure's key lines that says what went wrong:
/// past the harness's headers (how many checks failed, which check and
/// what it checks), the lines left out (`...`), a panic's `thread ...
/// panicked at` (its message is the next line) and the server's log (its
/// own tag, `[step3]`). Without the `[harness]` tag; cut to a line.
fn first_reason(lines: &[String]) -> Option<String> {
    let is_check_header = |l: &str| {
        l.split_once(": ").is_some_and(|(check, _)| {
            check.split('/').count() == 2
                && check.split('/').all(|part| {
                    !part.is_empty()
                        && part.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                        })
                })
        })
    };
    let reason = lines.iter().find_map(|line| {
        let line = line.trim();
        let (harness, text) = match line.strip_prefix("[harness] ") {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let skip = text.is_empty()
            || text.starts_with("...")
            || (!harness && text.starts_with('['))
            || (harness && is_check_header(text))
            || (harness && text.ends_with("checks failed:"))
            || (harness && text.ends_with("check failed:"))
            || (harness && text.contains("'s stderr ("))
            || (text.starts_with("thread '") && text.contains("' panicked at "));
        (!skip).then(|| text.to_string())
    })?;
    if reason.chars().count() <= MAX_REASON {
        return Some(reason);
    }
    let cut: String = reason.chars().take(MAX_REASON - 3).collect();
    Some(format!("{}...", cut.trim_end()))
}

/// The compiler's first errors, from `error` to the blank line after each.
fn compiler_errors(stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_error = false;
    for line in stderr.lines() {
        if line.starts_with("error") {
            if line.starts_with("error: could not compile") {
                break;
            }
            in_error = true;
        } else if line.starts_with("warning") {
            in_error = false;
        }
        if in_error {
            out.push(line.to_string());
            if out.len() >= 30 {
                out.push("...".to_string());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: &str = "
running 4 tests
....
test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.08s


running 3 tests
F.F
failures:

---- passes_echo_check::case_2_lines stdout ----
Error: 
[harness] client sent \"x\\n\"
[harness] the server exited with status 101
[step3] step3: accepted fd 6 from 127.0.0.1:39158
[step3] 
[step3] thread 'main' (2049) panicked at steps/step3/src/exercise.rs:117:21:
[step3] not yet implemented: register_client: put the new client on the queue
[step3] note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


---- runs_every_check stdout ----

thread 'runs_every_check' panicked at tests/echo.rs:9:5:
plain assertion


failures:
    passes_echo_check::case_2_lines
    runs_every_check

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 5.52s

";

    /// The counts add up over the test binaries, and the failure shown is
    /// the one that stopped at a todo!(), with where and which.
    #[test]
    fn reads_counts_the_first_failure_and_its_todo() {
        let order = [
            "runs_every_check".to_string(),
            "passes_echo_check".to_string(),
        ];
        let Outcome::Failed {
            passed,
            failed,
            first,
        } = read_outcome(false, FAILED, "", &order)
        else {
            panic!("not read as a failure");
        };
        assert_eq!((passed, failed), (5, 2));
        assert_eq!(first.name, "passes_echo_check::case_2_lines");
        let todo = first.todo.expect("a todo");
        assert_eq!(todo.at, "steps/step3/src/exercise.rs:117");
        assert_eq!(todo.lesson, "register_client");
        assert_eq!(
            todo.message,
            "register_client: put the new client on the queue"
        );
        assert_eq!(first.lines[0], "[harness] client sent \"x\\n\"");
        assert!(!first.lines.iter().any(|l| l.contains("RUST_BACKTRACE")));
    }

    /// A failure's reason is the line that says what went wrong: past the
    /// check's header and description, and past a panic's `panicked at`
    /// line; never a line of the server's log.
    #[test]
    fn reads_the_first_reason_of_a_failure() {
        let lines = |ls: &[&str]| ls.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let stage = lines(&[
            "[harness] 2 of 3 chat checks failed:",
            "[harness] chat/relays_each_message_to_every_other_user: with 3 users, each message reaches the other two",
            "[harness] user 2 sent its first line \"hi\\n\"; user 1 expected it, but it did not arrive within 5 s",
            "[harness] expected: \"hi\\n\"",
            "[step5] step5: accepted fd 6",
        ]);
        assert_eq!(
            first_reason(&stage).as_deref(),
            Some("user 2 sent its first line \"hi\\n\"; user 1 expected it, but it did not arrive within 5 s")
        );
        let panic = lines(&[
            "thread 'deletes_then_closes' panicked at tests/lifecycle.rs:40:5:",
            "EV_DELETE after close(): expected EBADF, got Ok(0)",
        ]);
        assert_eq!(
            first_reason(&panic).as_deref(),
            Some("EV_DELETE after close(): expected EBADF, got Ok(0)")
        );
        let only_log = lines(&[
            "[harness] echo/echoes_a_line: x",
            "[harness] ...",
            "[step3] log",
        ]);
        assert_eq!(first_reason(&only_log), None);
        let long = lines(&[&"x".repeat(300)]);
        let cut = first_reason(&long).expect("a reason");
        assert!(
            cut.ends_with("...") && cut.chars().count() == MAX_REASON,
            "{cut}"
        );
    }

    /// Without a todo!(), the first failure in the step's order is shown.
    #[test]
    fn picks_the_first_failure_in_the_steps_order() {
        let out = FAILED.replace("not yet implemented: ", "gave up: ");
        let order = [
            "runs_every_check".to_string(),
            "passes_echo_check".to_string(),
        ];
        let Outcome::Failed { first, .. } = read_outcome(false, &out, "", &order) else {
            panic!("not read as a failure");
        };
        assert_eq!(first.name, "runs_every_check");
        assert_eq!(
            first.lines,
            [
                "thread 'runs_every_check' panicked at tests/echo.rs:9:5:",
                "plain assertion"
            ]
        );
    }

    /// A test that ran a whole stage shows its first failed check, without
    /// the doubled `[harness]` prefix, and says how many more there were.
    #[test]
    fn shows_the_first_check_of_a_stage_that_failed() {
        let out = "running 1 test\nF\nfailures:\n\n---- passes_the_echo_checks::mode_1 stdout ----\nError: \n\
            [harness] 2 of 2 listen checks failed:\n\
            [harness] [harness] listen/a: one\n\
            [harness] [step4] not yet implemented: new_batch: forget\n\
            [harness] \n\
            [harness] [harness] listen/b: two\n\
            [harness] [step4] not yet implemented: new_batch: forget\n\n\nfailures:\n    x\n\n\
            test result: FAILED. 0 passed; 1 failed;\n";
        let Outcome::Failed { first, .. } = read_outcome(false, out, "", &[]) else {
            panic!("not read as a failure");
        };
        assert_eq!(
            first.lines,
            [
                "[harness] 2 of 2 listen checks failed:",
                "[harness] listen/a: one",
                "[step4] not yet implemented: new_batch: forget",
                "... (and 1 more failed check of the same test)"
            ]
        );
        assert_eq!(first.todo.expect("a todo").lesson, "new_batch");
    }

    /// A success is a pass with the tests counted; a compile error is
    /// shown as the compiler's errors.
    #[test]
    fn reads_a_pass_and_a_compile_error() {
        let ok = "running 2 tests\n..\ntest result: ok. 2 passed; 0 failed; 0 ignored\n";
        assert_eq!(
            read_outcome(true, ok, "", &[]),
            Outcome::Passed { tests: 2 }
        );
        let stderr = "warning: unused\n  --> a.rs\n\nerror[E0425]: cannot find value `kq`\n  --> steps/step1/src/exercise.rs:60:5\n   |\n\nerror: could not compile `step1` (bin \"step1\") due to 1 previous error\n";
        let Outcome::DoesNotCompile { errors } = read_outcome(false, "", stderr, &[]) else {
            panic!("not read as a compile error");
        };
        assert_eq!(errors[0], "error[E0425]: cannot find value `kq`");
        assert!(errors.iter().all(|l| !l.contains("could not compile")));
        assert!(!errors.iter().any(|l| l.starts_with("warning")));
    }
}
