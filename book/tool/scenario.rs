//! Transcript scenarios: what each step's "Run it" section shows, written
//! as a small script in the step's own folder, `steps/stepN/transcripts.txt`,
//! and played by one runner ([`crate::transcripts`]).
//!
//! A scenario is what a reader does in their terminals: start the server,
//! open `nc` in a second terminal, type a line, see it come back, press
//! Ctrl-C. The runner does exactly that against the real binary and writes
//! down what each terminal shows. So that a second run writes the same
//! bytes, every client action is followed by an `await` of the server's log
//! of it, and ports, paths and timings are normalised (see the runner).
//!
//! # Format
//!
//! One command per line; lines starting with `#` are comments; blank lines
//! are ignored. `T` names a client terminal (any word: `A`, `t2`); a LINE
//! or TEXT is the rest of the line, as written.
//!
//! | command | what happens |
//! |---|---|
//! | `ulimit N` | (before a `start`) the next run's program may open descriptors numbered below N only (RLIMIT_NOFILE, as `ulimit -n N` in a shell); its terminal shows `$ ulimit -n N` first |
//! | `env NAME=VALUE` | (before a `start`, like `ulimit`) the next run's program has NAME set to VALUE in its environment; its terminal shows `$ NAME=VALUE cargo run -p stepN` (for `KQ_TRACE=1`: the trace's waits, which vary, are shown as `waited … ms`) |
//! | `start [ARGS...]` | a new run: the step's binary is started as a server with ARGS and `--port 0`, and the run waits for its `listening on` line; its terminal shows `$ cargo run -p stepN` (plus ` -- ARGS`) |
//! | `start-stdin [ARGS...]` | a new run of a program that reads standard input (a pipe) instead of listening |
//! | `show COMMAND` | the program's terminal shows `$ COMMAND` instead (say what a reader would type) |
//! | `hide TEXT` | the program's lines containing TEXT are left out of its terminal, and its command is shown piped through `grep -v 'TEXT'` (for lines whose number varies from run to run, such as one per `read()` of a flood) |
//! | `only TEXT` | only the program's lines containing TEXT (or the TEXT of another `only`) are kept in its terminal, and its command is shown piped through `grep -e 'TEXT'` (for a trace of a flood: the few lines of the lesson among thousands whose number varies) |
//! | `stdin LINE` | LINE and a newline go into the program's standard input |
//! | `close-stdin` | its standard input ends |
//! | `exit` | wait for the program to exit by itself |
//! | `await TEXT` | wait until the program has printed one more line containing TEXT: the n-th `await` of a TEXT waits for its n-th line |
//! | `interrupt` | Ctrl-C in the program's terminal: it is sent SIGINT, and its terminal shows `^C` there (then `exit` waits for it to end) |
//! | `freeze` | (Linux) once the program waits in `kevent()`, it is stopped (SIGSTOP; not shown: a reader would need a second shell): what the clients do next waits in the kernel |
//! | `thaw` | (Linux) wait until the kernel holds what the clients did since `freeze` (each connection in the listener's accept queue, each line typed unread in its socket), then SIGCONT: the program's next `kevent()` returns all of it in one batch, in the order it happened (to show a stale event, step 4); on Linux the stopped wait itself returns `-1 EINTR` first |
//! | `connect T` | terminal T runs `nc 127.0.0.1 8080` and connects |
//! | `type T LINE` | T types LINE (shown) and it is sent with a newline |
//! | `expect T LINE` | T receives exactly LINE and a newline (shown) |
//! | `expect-many T N LINE` | T receives LINE and a newline N times over; shown once, then `[... N-1 more lines like it]` |
//! | `flood T N LINE` | terminal T runs `yes 'LINE' \| head -n N \| nc 127.0.0.1 8080 > /dev/null`: it connects, sends LINE N times, and reads (and drops) whatever it receives until it leaves |
//! | `suspend T` | T presses Ctrl-Z: `nc` is stopped and reads nothing more (shown as `^Z` and the shell's `Stopped` line) |
//! | `resume T` | T types `fg`: `nc` runs and reads again |
//! | `closed T` | the server closes T's connection: T reads EOF; the reader presses Ctrl-C (Linux's `nc` waits for it) |
//! | `leave T` | T presses Ctrl-C: `nc` exits and the connection closes |
//! | `save server FILE` | write the program's terminal (the command, everything it printed so far, and `^C` unless it exited) to `book/generated/transcripts/FILE` |
//! | `save T FILE` | write terminal T's session there |
//!
//! Every client terminal reads what arrives as soon as it arrives, as `nc`
//! does (into a buffer that `expect` takes from), except while suspended.
//!
//! A FILE starts with the step's name (`step3-server.txt`), so every
//! transcript says whose it is. A run ends at the next `start` or at the
//! end of the file; its program is then stopped.
//!
//! ```text
//! # steps/step3/transcripts.txt (part): one client types a line and leaves.
//! start
//! connect A
//! await accepted fd
//! type A hello
//! expect A hello
//! await echoed
//! leave A
//! await EOF, close(
//! save server step3-server.txt
//! save A step3-client.txt
//! ```

/// One command of a scenario, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: usize,
    pub action: Action,
}

/// What a scenario line asks for (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The descriptor limit of the next `start`.
    Ulimit(u64),
    /// A variable in the environment of the next `start`.
    Env(String, String),
    Start {
        args: Vec<String>,
        stdin: bool,
    },
    Show(String),
    Hide(String),
    Only(String),
    Interrupt,
    Freeze,
    Thaw,
    Stdin(String),
    CloseStdin,
    Exit,
    Await(String),
    Connect(String),
    Type(String, String),
    Expect(String, String),
    ExpectMany(String, usize, String),
    Flood(String, usize, String),
    Suspend(String),
    Resume(String),
    Closed(String),
    Leave(String),
    /// `None`: the program's own terminal.
    Save(Option<String>, String),
}

/// The scenario file of a step, relative to the step's folder.
pub const FILE: &str = "transcripts.txt";

/// Parses a scenario; `step` is the step it belongs to (files it saves
/// must carry its name). Errors name the line.
pub fn parse(step: &str, text: &str) -> Result<Vec<Command>, String> {
    let mut out = Vec::new();
    let mut started = false;
    // A `ulimit` waiting for its `start`.
    let mut limit_pending = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (word, rest) = trimmed
            .split_once(char::is_whitespace)
            .map_or((trimmed, ""), |(w, r)| (w, r.trim()));
        let err = |msg: String| format!("{FILE}:{line}: {msg}");
        let need_rest = |what: &str| -> Result<String, String> {
            if rest.is_empty() {
                Err(err(format!("`{word}` needs {what}")))
            } else {
                Ok(rest.to_string())
            }
        };
        // `T LINE`: a terminal name, then the rest as written.
        let terminal_and = |what: &str| -> Result<(String, String), String> {
            let (t, text) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| err(format!("`{word}` needs a terminal and {what}")))?;
            Ok((t.to_string(), text.trim().to_string()))
        };
        let terminal = || -> Result<String, String> {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                Err(err(format!("`{word}` needs one terminal name")))
            } else {
                Ok(rest.to_string())
            }
        };
        // `T N LINE`: a terminal, a count of at least 1, then the rest.
        let terminal_count_and = |what: &str| -> Result<(String, usize, String), String> {
            let (t, rest) = terminal_and(what)?;
            let (n, text) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| err(format!("`{word}` needs a terminal, a count and {what}")))?;
            let n = n.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                err(format!(
                    "`{word}`: the count must be a number of at least 1, not `{n}`"
                ))
            })?;
            Ok((t, n, text.trim().to_string()))
        };
        let action = match word {
            "ulimit" => {
                let n = rest
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n >= 4)
                    .ok_or_else(|| {
                        err(format!(
                            "`ulimit` needs a descriptor limit of at least 4, not `{rest}`"
                        ))
                    })?;
                limit_pending = true;
                Action::Ulimit(n)
            }
            "env" => {
                let (name, value) = rest
                    .split_once('=')
                    .filter(|(n, _)| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .ok_or_else(|| err(format!("`env` needs NAME=VALUE, not `{rest}`")))?;
                limit_pending = true;
                Action::Env(name.to_string(), value.to_string())
            }
            "start" | "start-stdin" => {
                started = true;
                limit_pending = false;
                Action::Start {
                    args: rest.split_whitespace().map(str::to_string).collect(),
                    stdin: word == "start-stdin",
                }
            }
            _ if !started && !limit_pending => {
                return Err(err(format!(
                    "`{word}` before any `start`: a scenario begins by starting the step"
                )))
            }
            _ if limit_pending => {
                return Err(err(format!(
                    "`{word}` after `ulimit` or `env`: they are for the `start` that follows them"
                )))
            }
            "show" => Action::Show(need_rest("the command to show")?),
            "hide" => Action::Hide(need_rest("the text of the lines to leave out")?),
            "only" => Action::Only(need_rest("the text of the lines to keep")?),
            "interrupt" => Action::Interrupt,
            "freeze" => Action::Freeze,
            "thaw" => Action::Thaw,
            "stdin" => Action::Stdin(need_rest("a line")?),
            "close-stdin" => Action::CloseStdin,
            "exit" => Action::Exit,
            "await" => Action::Await(need_rest("the text to wait for")?),
            "connect" => Action::Connect(terminal()?),
            "type" => {
                let (t, l) = terminal_and("a line")?;
                Action::Type(t, l)
            }
            "expect" => {
                let (t, l) = terminal_and("a line")?;
                Action::Expect(t, l)
            }
            "expect-many" => {
                let (t, n, l) = terminal_count_and("a line")?;
                Action::ExpectMany(t, n, l)
            }
            "flood" => {
                let (t, n, l) = terminal_count_and("a line")?;
                Action::Flood(t, n, l)
            }
            "suspend" => Action::Suspend(terminal()?),
            "resume" => Action::Resume(terminal()?),
            "closed" => Action::Closed(terminal()?),
            "leave" => Action::Leave(terminal()?),
            "save" => {
                let (who, file) = terminal_and("a file name")?;
                let name_ok = file.starts_with(step)
                    && file.ends_with(".txt")
                    && !file.contains('/')
                    && file[step.len()..].starts_with(['-', '.']);
                if !name_ok {
                    return Err(err(format!(
                        "`save {who} {file}`: the file must be named {step}.txt or {step}-SOMETHING.txt"
                    )));
                }
                Action::Save((who != "server").then_some(who), file)
            }
            other => {
                return Err(err(format!(
                    "unknown command `{other}` (see book/tool/scenario.rs)"
                )))
            }
        };
        out.push(Command { line, action });
    }
    if limit_pending {
        return Err(format!(
            "{FILE}: the last `ulimit` or `env` has no `start` after it"
        ));
    }
    if out.is_empty() {
        return Err(format!(
            "{FILE}: no commands; a scenario starts the step and saves what its terminals show"
        ));
    }
    if !out.iter().any(|c| matches!(c.action, Action::Save(..))) {
        return Err(format!(
            "{FILE}: nothing is saved (add `save server {step}-server.txt`)"
        ));
    }
    Ok(out)
}

/// The transcript files a scenario writes, in order.
pub fn saved_files(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match &c.action {
            Action::Save(_, file) => Some(file.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command of the format parses, comments and blank lines are
    /// skipped, and a LINE keeps its spaces and punctuation.
    #[test]
    fn parses_every_command() {
        let text = "\
# a comment
start --max-users 2
show cargo run -p step5 -- --max-users 2

connect t2
type t2 hi, this is  terminal 2
expect t3 hi, this is  terminal 2
await EOF, close(
closed t4
leave t2
save server step5-server.txt
save t2 step5-terminal2.txt
start-stdin
stdin hello
close-stdin
exit
ulimit 14
start
hide relayed
flood t5 1000 all work and no play
expect-many t2 1000 all work and no play
suspend t4
resume t4
interrupt
";
        let actions: Vec<Action> = parse("step5", text)
            .expect("valid scenario")
            .into_iter()
            .map(|c| c.action)
            .collect();
        assert_eq!(
            actions,
            vec![
                Action::Start {
                    args: vec!["--max-users".into(), "2".into()],
                    stdin: false
                },
                Action::Show("cargo run -p step5 -- --max-users 2".into()),
                Action::Connect("t2".into()),
                Action::Type("t2".into(), "hi, this is  terminal 2".into()),
                Action::Expect("t3".into(), "hi, this is  terminal 2".into()),
                Action::Await("EOF, close(".into()),
                Action::Closed("t4".into()),
                Action::Leave("t2".into()),
                Action::Save(None, "step5-server.txt".into()),
                Action::Save(Some("t2".into()), "step5-terminal2.txt".into()),
                Action::Start {
                    args: vec![],
                    stdin: true
                },
                Action::Stdin("hello".into()),
                Action::CloseStdin,
                Action::Exit,
                Action::Ulimit(14),
                Action::Start {
                    args: vec![],
                    stdin: false
                },
                Action::Hide("relayed".into()),
                Action::Flood("t5".into(), 1000, "all work and no play".into()),
                Action::ExpectMany("t2".into(), 1000, "all work and no play".into()),
                Action::Suspend("t4".into()),
                Action::Resume("t4".into()),
                Action::Interrupt,
            ]
        );
    }

    /// Mistakes are reported with the line and what is wrong.
    #[test]
    fn reports_mistakes_with_their_line() {
        for (text, want) in [
            ("connect A\n", "txt:1: `connect` before any `start`"),
            ("start\nbogus x\n", "txt:2: unknown command `bogus`"),
            (
                "start\ntype A\n",
                "txt:2: `type` needs a terminal and a line",
            ),
            (
                "start\nawait\n",
                "txt:2: `await` needs the text to wait for",
            ),
            (
                "start\nconnect A B\n",
                "txt:2: `connect` needs one terminal name",
            ),
            (
                "start\nsave server other.txt\n",
                "must be named step3.txt or step3-SOMETHING.txt",
            ),
            ("start\nsave server step30.txt\n", "must be named"),
            ("start\nconnect A\n", "nothing is saved"),
            ("# only a comment\n", "no commands"),
            (
                "ulimit x\nstart\n",
                "txt:1: `ulimit` needs a descriptor limit",
            ),
            ("ulimit 14\nconnect A\n", "txt:2: `connect` after `ulimit`"),
            (
                "start\nsave server step3.txt\nulimit 14\n",
                "the last `ulimit` or `env` has no `start`",
            ),
            ("env KQ_TRACE\nstart\n", "txt:1: `env` needs NAME=VALUE"),
            (
                "env KQ_TRACE=1\nconnect A\n",
                "txt:2: `connect` after `ulimit` or `env`",
            ),
            (
                "start\nflood A 0 x\n",
                "txt:2: `flood`: the count must be a number of at least 1",
            ),
            (
                "start\nexpect-many A 3\n",
                "`expect-many` needs a terminal, a count and a line",
            ),
        ] {
            let e = parse("step3", text).expect_err(text);
            assert!(e.contains(want), "{text:?}: expected {want:?} in {e:?}");
        }
    }
}
