//! The command-line contract every network step keeps, checked by running
//! the step's binary: bad arguments give the usage and status 2, `--help`
//! gives the usage and status 0, an address that cannot be listened on gives
//! one line naming it and status 1, and never a panic.
//!
//! Each step's `tests/cli.rs` calls these with its own binary, so the
//! contract is written once.

use std::io::{self, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::text::preview;
use crate::{Failure, Result};

/// A server with bad arguments or a taken port must exit at once.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// Arguments every network step must refuse, and what the message must say.
pub const BAD_ARGUMENTS: &[(&[&str], &str)] = &[
    (&["--bogus"], "unknown argument '--bogus'"),
    (&["8080"], "unknown argument '8080'"),
    (&["--port", "http"], "not 'http'"),
    (&["--port", "65536"], "from 0 to 65535"),
    (&["--port"], "--port needs a value"),
    (&["--host"], "--host needs a value"),
];

/// Runs `program args` to its exit, killing it at the deadline.
///
/// Stdout and stderr are read on threads while it runs: a program that
/// writes more than a pipe holds (64 KiB on Linux) before it exits would
/// otherwise block in write() until the deadline, and be reported as one
/// that never exits.
pub fn run_to_exit(program: &Path, args: &[&str]) -> Result<Output> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {shown}: {e}")))?;
    let start = Instant::now();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) if stdout.is_finished() && stderr.is_finished() => break status,
            Ok(_) if start.elapsed() < EXIT_DEADLINE => {
                std::thread::sleep(Duration::from_millis(10))
            }
            exited => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers are left to end on their own: whoever still
                // holds the pipes may keep them open.
                let why = match exited {
                    Ok(Some(status)) => format!(
                        "exited ({status}), but its stdout or stderr was still open after {} s \
                         (a process it started holds it?)",
                        EXIT_DEADLINE.as_secs()
                    ),
                    _ => format!(
                        "should exit at once, but was still running after {} s",
                        EXIT_DEADLINE.as_secs()
                    ),
                };
                return Err(Failure::new(format!("`{shown}` {why}")));
            }
        }
    };
    let collect = |reader: JoinHandle<io::Result<Vec<u8>>>, name: &str| {
        reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reader panicked")))
            .map_err(|e| Failure::new(format!("{shown}: reading its {name}: {e}")))
    };
    Ok(Output {
        status,
        stdout: collect(stdout, "stdout")?,
        stderr: collect(stderr, "stderr")?,
    })
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    })
}

/// Checks status, stdout and stderr of a finished run.
fn expect(
    out: &Output,
    shown: &str,
    code: i32,
    stdout_has: &[&str],
    stderr_has: &[&str],
) -> Result<()> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.code() != Some(code) {
        wrong.push(format!("exit status {code} expected, got {}", out.status));
    }
    for s in stdout_has {
        if !stdout.contains(s) {
            wrong.push(format!("stdout should contain {s:?}"));
        }
    }
    if stdout_has.is_empty() && !stdout.is_empty() {
        wrong.push("stdout should be empty".to_string());
    }
    for s in stderr_has {
        if !stderr.contains(s) {
            wrong.push(format!("stderr should contain {s:?}"));
        }
    }
    if stderr.contains("panicked") {
        wrong.push("it panicked: a learner should see a message, not a backtrace".to_string());
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Failure::new(format!(
        "ran `{shown}`\n{}\nstdout: {}\nstderr: {}",
        wrong.join("\n"),
        preview(&out.stdout),
        preview(&out.stderr)
    )))
}

/// Every entry of [`BAD_ARGUMENTS`]: what is wrong and the usage on stderr,
/// nothing on stdout, status 2.
pub fn refuses_bad_arguments(program: &Path, name: &str) -> Result<()> {
    for (args, why) in BAD_ARGUMENTS {
        refuses(program, name, args, why)?;
    }
    Ok(())
}

/// `name args` is refused: `why` and the usage on stderr, nothing on
/// stdout, status 2, no panic. For a step's own options as much as for
/// [`BAD_ARGUMENTS`].
pub fn refuses(program: &Path, name: &str, args: &[&str], why: &str) -> Result<()> {
    let out = run_to_exit(program, args)?;
    let usage = format!("usage: {name}");
    expect(
        &out,
        &format!("{name} {}", args.join(" ")),
        2,
        &[],
        &[why, &usage],
    )
}

/// `name --help` shows each of `wanted` on stdout (a step's own options
/// and their defaults), status 0.
pub fn documents(program: &Path, name: &str, wanted: &[&str]) -> Result<()> {
    let out = run_to_exit(program, &["--help"])?;
    expect(&out, &format!("{name} --help"), 0, wanted, &[])
}

/// `--help`: the usage on stdout, status 0.
pub fn prints_usage_on_help(program: &Path, name: &str) -> Result<()> {
    let out = run_to_exit(program, &["--help"])?;
    let usage = format!("usage: {name} [--host HOST] [--port PORT]");
    expect(&out, &format!("{name} --help"), 0, &[&usage], &[])
}

/// A port already in use: one line naming the address, status 1.
pub fn exits_1_when_the_port_is_in_use(program: &Path, name: &str) -> Result<()> {
    let taken = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::new(format!("cannot take a port for the test: {e}")))?;
    let port = taken
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(0)
        .to_string();
    let out = run_to_exit(program, &["--port", &port])?;
    let line = format!("{name}: cannot listen on 127.0.0.1:{port}:");
    expect(
        &out,
        &format!("{name} --port {port}"),
        1,
        &[],
        &[&line, "in use"],
    )
}

/// An address that is not this machine's (192.0.2.1 is reserved for
/// documentation): one line naming it, status 1.
pub fn exits_1_when_the_address_is_not_this_machines(program: &Path, name: &str) -> Result<()> {
    let args = ["--host", "192.0.2.1", "--port", "0"];
    let out = run_to_exit(program, &args)?;
    let line = format!("{name}: cannot listen on 192.0.2.1:0:");
    expect(
        &out,
        &format!("{name} {}", args.join(" ")),
        1,
        &[],
        &[&line],
    )
}

/// An option several steps take, as the course defines it: what a bad
/// value is told (`--max-users: takes a number from 1 to 65536, not '0'`),
/// values that must be refused, and what `--help` says of its default.
pub struct KnownOption {
    /// The identifier a step's `contract_tests!` names it by.
    pub id: &'static str,
    pub flag: &'static str,
    pub takes: &'static str,
    pub bad: &'static [&'static str],
    pub usage: &'static str,
    pub default: &'static str,
}

/// The options of the course's chat steps, each written once here and
/// checked in every step that takes it.
pub const OPTIONS: &[KnownOption] = &[
    KnownOption {
        id: "max_users",
        flag: "--max-users",
        takes: "takes a number from 1 to 65536",
        bad: &["0", "-3", "65537", "ten"],
        usage: "[--max-users N]",
        default: "default 10",
    },
    KnownOption {
        id: "max_queue",
        flag: "--max-queue",
        takes: "takes a number of bytes from 1 to 1073741824",
        bad: &["0", "-1", "1073741825", "4MiB", ""],
        usage: "[--max-queue BYTES]",
        default: "default 4194304, 4 MiB",
    },
    KnownOption {
        id: "idle_timeout",
        flag: "--idle-timeout",
        takes: "takes a number of seconds from 1 to 86400",
        bad: &["0", "-5", "1.5", "86401", "10s"],
        usage: "[--idle-timeout SECS]",
        default: "default: never",
    },
];

/// The known option `id`, or a failure naming the ones there are.
pub fn option(id: &str) -> Result<&'static KnownOption> {
    OPTIONS.iter().find(|o| o.id == id).ok_or_else(|| {
        let ids: Vec<&str> = OPTIONS.iter().map(|o| o.id).collect();
        Failure::new(format!(
            "contract_tests! names an option `{id}` the contract does not know; it knows: {}",
            ids.join(", ")
        ))
    })
}

/// Every bad value of the option is refused with the value, what the
/// option takes and the usage, status 2.
pub fn refuses_bad_values(program: &Path, name: &str, id: &str) -> Result<()> {
    let opt = option(id)?;
    for value in opt.bad {
        refuses(
            program,
            name,
            &[opt.flag, value, "--port", "0"],
            &format!("{}: {}, not '{value}'", opt.flag, opt.takes),
        )?;
    }
    Ok(())
}

/// `--help` shows the option and its default.
pub fn documents_option(program: &Path, name: &str, id: &str) -> Result<()> {
    let opt = option(id)?;
    documents(program, name, &[opt.usage, opt.default])
}

/// Writes the contract's tests into a step's `tests/cli.rs`, for the step
/// whose tests these are (its name and binary come from Cargo):
///
/// ```text
/// // steps/step8/tests/cli.rs
/// harness::contract_tests!(max_users, max_queue, idle_timeout);
/// ```
///
/// Each becomes a `#[test]` named after the behaviour it proves; each
/// option named (one of [`OPTIONS`]) gets a module with two more:
/// `max_users::refuses_bad_values` and `max_users::documents_its_default`.
#[macro_export]
macro_rules! contract_tests {
    ($($option:ident),* $(,)?) => {
        /// Bad arguments print what is wrong and the usage on stderr,
        /// nothing on stdout, and exit with status 2.
        #[test]
        fn refuses_bad_arguments_with_usage() -> $crate::Result {
            let step = $crate::this_step!();
            $crate::contract::refuses_bad_arguments(step.path(), step.name)
        }

        /// `--help` prints the usage on stdout and exits with status 0.
        #[test]
        fn prints_usage_on_help() -> $crate::Result {
            let step = $crate::this_step!();
            $crate::contract::prints_usage_on_help(step.path(), step.name)
        }

        /// A port already in use is one clear line naming the address, and
        /// exit status 1 (no panic, no backtrace).
        #[test]
        fn exits_1_naming_the_address_when_the_port_is_in_use() -> $crate::Result {
            let step = $crate::this_step!();
            $crate::contract::exits_1_when_the_port_is_in_use(step.path(), step.name)
        }

        /// An address that is not this machine's cannot be listened on: one
        /// line naming it, status 1.
        #[test]
        fn exits_1_when_the_address_is_not_this_machines() -> $crate::Result {
            let step = $crate::this_step!();
            $crate::contract::exits_1_when_the_address_is_not_this_machines(step.path(), step.name)
        }

        $(
            #[doc = concat!("The `", stringify!($option), "` option of the course's contract.")]
            mod $option {
                /// A bad value is refused with the value, what the option
                /// takes and the usage, status 2.
                #[test]
                fn refuses_bad_values() -> $crate::Result {
                    let step = $crate::this_step!();
                    $crate::contract::refuses_bad_values(step.path(), step.name, stringify!($option))
                }

                /// `--help` documents the option with its default.
                #[test]
                fn documents_its_default() -> $crate::Result {
                    let step = $crate::this_step!();
                    $crate::contract::documents_option(step.path(), step.name, stringify!($option))
                }
            }
        )*
    };
}
