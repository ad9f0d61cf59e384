//! `harness`: run the step checks against any server.
//!
//! ```text
//! harness check <stage> [options] -- <command...>   start the server (a fresh one per check)
//! harness check <stage> [options] --addr HOST:PORT  check a server that is already running
//! harness --list                                    the stages and their checks
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use harness::checks::{self, Check, Stage};
use harness::{Failure, Server, Target};

const USAGE: &str = "\
usage: harness check <stage> [--only CHECK] [--max-users N] [--pid PID] -- <command...>
       harness check <stage> [--only CHECK] [--max-users N] [--pid PID] --addr HOST:PORT
       harness --list

  <stage>          listen, greet, echo or chat (see --list)
  -- <command...>  start the server with this command, adding --port 0, once per check;
                   it must print 'listening on HOST:PORT' on stdout when ready
  --addr HOST:PORT check a server that is already running (in any language)
  --only CHECK     run only this check
  --max-users N    the chat room size the server was started with (default 10)
  --pid PID        the server's process id, so descriptor leaks can be counted (--addr)";

fn main() -> ExitCode {
    restore_sigpipe();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str());
    match first {
        Some("--list") | Some("list") => {
            print_list();
            ExitCode::SUCCESS
        }
        Some("check") => match parse_check(&args[1..]) {
            Ok(Some(cmd)) => run_check_command(&cmd),
            Ok(None) => {
                print_list();
                ExitCode::SUCCESS
            }
            Err(msg) => usage_error(&msg),
        },
        Some("--help") | Some("-h") | Some("help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command '{other}'")),
        None => usage_error("what should I do?"),
    }
}

/// Rust ignores SIGPIPE, so `harness ... | head` would panic on the closed
/// pipe; a command-line tool should just stop, as `ls | head` does.
fn restore_sigpipe() {
    // SAFETY: resetting a signal to its default action before any thread
    // starts has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("harness: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn print_list() {
    for stage in Stage::ALL {
        println!("{:<7} {}", stage.name(), stage.about());
        for c in stage.checks() {
            println!("    {:<58} {}", c.name, c.about);
        }
    }
}

/// What `harness check` was asked to do.
struct CheckCommand {
    stage: Stage,
    only: Option<String>,
    max_users: usize,
    pid: Option<u32>,
    server: ServerSpec,
}

enum ServerSpec {
    Addr(std::net::SocketAddr),
    Command(Vec<OsString>),
}

/// Ok(None): `check --list`.
fn parse_check(args: &[OsString]) -> std::result::Result<Option<CheckCommand>, String> {
    let mut stage = None;
    let mut only = None;
    let mut max_users = harness::DEFAULT_MAX_USERS;
    let mut pid = None;
    let mut server = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy().into_owned();
        let mut value = |what: &str| -> std::result::Result<String, String> {
            i += 1;
            args.get(i)
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{arg} needs {what}"))
        };
        match arg.as_str() {
            "--list" => return Ok(None),
            "--" => {
                let cmd = args[i + 1..].to_vec();
                if cmd.is_empty() {
                    return Err(
                        "'--' must be followed by the command that starts the server".into(),
                    );
                }
                server = Some(ServerSpec::Command(cmd));
                break;
            }
            "--addr" => {
                let v = value("HOST:PORT")?;
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&v)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("--addr: cannot read '{v}' as HOST:PORT"))?;
                server = Some(ServerSpec::Addr(addr));
            }
            "--only" => only = Some(value("a check name")?),
            "--max-users" => {
                let v = value("a number")?;
                max_users = v.parse().ok().filter(|&n| n >= 3).ok_or_else(|| {
                    format!("--max-users takes a number of at least 3, not '{v}'")
                })?;
            }
            "--pid" => {
                let v = value("a process id")?;
                pid = Some(
                    v.parse()
                        .map_err(|_| format!("--pid: '{v}' is not a process id"))?,
                );
            }
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s if stage.is_none() => {
                stage = Some(Stage::from_name(s).ok_or_else(|| {
                    format!("no stage named '{s}' (stages: listen, greet, echo, chat)")
                })?);
            }
            s => return Err(format!("unexpected argument '{s}'")),
        }
        i += 1;
    }
    let stage = stage.ok_or("which stage? (listen, greet, echo or chat)")?;
    let server = server.ok_or("give the server: -- <command...> or --addr HOST:PORT")?;
    if let Some(name) = &only {
        if !stage.checks().iter().any(|c| c.name == name) {
            return Err(format!(
                "the {} stage has no check '{name}' (see harness --list)",
                stage.name()
            ));
        }
    }
    Ok(Some(CheckCommand {
        stage,
        only,
        max_users,
        pid,
        server,
    }))
}

fn run_check_command(cmd: &CheckCommand) -> ExitCode {
    let checks: Vec<&Check> = cmd
        .stage
        .checks()
        .iter()
        .filter(|c| cmd.only.as_deref().is_none_or(|o| o == c.name))
        .collect();
    match &cmd.server {
        ServerSpec::Addr(a) => println!(
            "harness: {} checks against the server at {a}",
            cmd.stage.name()
        ),
        ServerSpec::Command(c) => println!(
            "harness: {} checks against `{}`, a fresh server for each check",
            cmd.stage.name(),
            c.iter()
                .map(|s| s.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
    let (mut passed, mut failed) = (0, 0);
    let mut not_started = false;
    for check in checks {
        if not_started {
            failed += 1;
            println!(
                "FAIL  {}/{}  (not run: the server did not start)",
                cmd.stage.name(),
                check.name
            );
            continue;
        }
        let counted =
            !(check.counts_fds && cmd.pid.is_none() && matches!(cmd.server, ServerSpec::Addr(_)));
        let note = if counted {
            ""
        } else {
            "  (descriptors not counted: pass --pid)"
        };
        match one_check(cmd, check) {
            Ok(()) => {
                passed += 1;
                println!("ok    {}/{}{note}", cmd.stage.name(), check.name);
            }
            Err((f, started)) => {
                failed += 1;
                not_started = !started;
                println!("FAIL  {}/{}", cmd.stage.name(), check.name);
                for line in f.to_string().lines() {
                    println!("      {line}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one check; a failure says whether the server had started.
fn one_check(cmd: &CheckCommand, check: &Check) -> std::result::Result<(), (Failure, bool)> {
    match &cmd.server {
        ServerSpec::Addr(addr) => {
            let mut target = Target::addr(*addr).with_max_users(cmd.max_users);
            if let Some(pid) = cmd.pid {
                target = target.with_pid(pid);
            }
            checks::run_check(cmd.stage, check, &target).map_err(|f| (f, true))
        }
        ServerSpec::Command(argv) => {
            let program = &argv[0];
            let name = Path::new(program)
                .file_name()
                .map_or("server".into(), |n| n.to_string_lossy().into_owned());
            let args: Vec<String> = argv[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let server = Server::spawn(&name, program, &args).map_err(|f| (f, false))?;
            let target = server.target().with_max_users(cmd.max_users);
            checks::run_check(cmd.stage, check, &target).map_err(|f| (f, true))
        }
    }
}
