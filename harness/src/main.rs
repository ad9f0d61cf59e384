//! `harness`: run the step checks against any server.
//!
//! ```text
//! harness check <stage> [options] -- <command...>   start the server (a fresh one per check)
//! harness check <stage> [options] --addr HOST:PORT  check a server that is already running
//! harness check <stage> --trace [options] -- <command...>   the same, quoting the server's
//!                                                    last kevent() calls in a failure
//! harness --list                                    the stages and their checks
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use harness::checks::{self, Check, Need, Stage};
use harness::{Failure, Server, Target};

/// The usage, with the stages and the options they start servers with
/// taken from the stages themselves.
fn usage() -> String {
    let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    let mut added = Vec::new();
    for stage in Stage::ALL {
        if let Some(how) = started_with(stage) {
            added.push(format!("{} {how}", stage.name()));
        }
    }
    format!(
        "\
usage: harness check <stage> [options] -- <command...>
       harness check <stage> [options] --addr HOST:PORT
       harness --list

  <stage>              {} (see --list)
  -- <command...>      start the server with this command, adding --port 0, once per check;
                       it must print 'listening on HOST:PORT' on stdout when ready.
                       Some stages add what they need: {}
  --addr HOST:PORT     check a server that is already running (in any language)
  --only CHECK         run only this check
  --max-users N        the chat room size the server was started with (default 10)
  --max-queue BYTES    the server's --max-queue, the most bytes it queues for one user
                       (never-block, shutdown); with a command, passed on to it
  --idle-timeout SECS  the server's --idle-timeout (idle); with a command, passed on to it
  --pid PID            the server's process id, with --addr: to count descriptor leaks,
                       measure CPU use, send signals (shutdown) and pause it briefly
  --trace              with a command: start the server with KQ_TRACE set to a file, and
                       quote its last kevent() calls in a failure (servers that use kq,
                       or kq-c from C)",
        stages.join(", "),
        added.join("; ")
    )
}

/// "--max-queue 65536 and at most 32 descriptors": what the harness adds
/// when it starts the server for `stage`.
fn started_with(stage: Stage) -> Option<String> {
    let mut parts: Vec<String> = stage
        .server_options()
        .iter()
        .map(|(flag, value)| format!("{flag} {value}"))
        .collect();
    if let Some(n) = stage.fd_limit() {
        parts.push(format!("at most {n} descriptors"));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

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
            println!("{}", usage());
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
    eprintln!("harness: {msg}\n{}", usage());
    ExitCode::from(2)
}

/// The column the check descriptions start in.
const CHECK_WIDTH: usize = 58;
const STAGE_WIDTH: usize = 13;

fn print_list() {
    for stage in Stage::ALL {
        println!("{:<STAGE_WIDTH$}{}", stage.name(), stage.about());
        if let Some(how) = how_to_run(stage) {
            println!("{:<STAGE_WIDTH$}{how}", "");
        }
        for c in stage.checks() {
            println!("    {:<CHECK_WIDTH$} {}", c.name, c.about);
        }
    }
}

/// What a learner must know to run a stage, beyond `-- <command>` or
/// `--addr`: what the harness adds to the command, what --addr needs.
fn how_to_run(stage: Stage) -> Option<String> {
    let needs = |n: Need| stage.checks().iter().any(|c| c.needs(n));
    if stage.checks().iter().all(|c| c.needs(Need::Command)) {
        return Some(
            "(starts the server itself, on ports it picks: give the command, not --addr)".into(),
        );
    }
    let mut addr = Vec::new();
    if needs(Need::MaxQueue) {
        addr.push("--max-queue BYTES");
    }
    if needs(Need::IdleTimeout) {
        addr.push("--idle-timeout SECS");
    }
    if needs(Need::Pid) {
        addr.push("--pid PID");
    }
    if needs(Need::StopsServer) {
        addr.push("--only CHECK (each check stops the server)");
    }
    if stage.fd_limit().is_some() {
        addr.insert(0, "a server started with a low ulimit -n");
    }
    let mut parts = Vec::new();
    if let Some(how) = started_with(stage) {
        parts.push(format!("started with {how}"));
    }
    if !addr.is_empty() {
        parts.push(format!("with --addr: {}", addr.join(", ")));
    }
    let own: Vec<&str> = stage
        .checks()
        .iter()
        .filter(|c| c.needs(Need::Command))
        .map(|c| c.name)
        .collect();
    if !own.is_empty() {
        parts.push(format!(
            "with --addr, {} skipped: started by the harness itself",
            own.join(" and ")
        ));
    }
    (!parts.is_empty()).then(|| format!("({})", parts.join("; ")))
}

/// What `harness check` was asked to do.
struct CheckCommand {
    stage: Stage,
    only: Option<String>,
    max_users: Option<usize>,
    max_queue: Option<usize>,
    idle_timeout: Option<u64>,
    pid: Option<u32>,
    /// `--trace`: start the server with KQ_TRACE, quote it in failures.
    trace: bool,
    server: ServerSpec,
}

enum ServerSpec {
    Addr(std::net::SocketAddr),
    Command(Vec<OsString>),
}

/// The --max-queue values the CLI accepts: large enough for the checks'
/// lines, small enough that the never-block checks can fill a queue in
/// reasonable time.
const MAX_QUEUE_RANGE: std::ops::RangeInclusive<usize> = 4096..=16 << 20;
/// The --idle-timeout values the CLI accepts (the idle checks take about
/// three timeouts).
const IDLE_RANGE: std::ops::RangeInclusive<u64> = 1..=10;

/// Ok(None): `check --list`.
fn parse_check(args: &[OsString]) -> std::result::Result<Option<CheckCommand>, String> {
    let mut stage = None;
    let mut only = None;
    let mut max_users = None;
    let mut max_queue = None;
    let mut idle_timeout = None;
    let mut pid = None;
    let mut trace = false;
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
            "--trace" => trace = true,
            "--max-users" => {
                let v = value("a number")?;
                max_users = Some(v.parse().ok().filter(|&n| n >= 3).ok_or_else(|| {
                    format!("--max-users takes a number of at least 3, not '{v}'")
                })?);
            }
            "--max-queue" => {
                max_queue = Some(in_range(
                    &value("a number of bytes")?,
                    MAX_QUEUE_RANGE,
                    "--max-queue takes a number of bytes",
                )?);
            }
            "--idle-timeout" => {
                idle_timeout = Some(in_range(
                    &value("a number of seconds")?,
                    IDLE_RANGE,
                    "--idle-timeout takes whole seconds",
                )?);
            }
            "--pid" => {
                let v = value("a process id")?;
                pid = Some(
                    v.parse()
                        .ok()
                        .filter(|&p: &u32| p > 0)
                        .ok_or_else(|| format!("--pid: '{v}' is not a process id"))?,
                );
            }
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s if stage.is_none() => {
                stage =
                    Some(Stage::from_name(s).ok_or_else(|| {
                        format!("no stage named '{s}' (stages: {})", stage_names())
                    })?);
            }
            s => return Err(format!("unexpected argument '{s}'")),
        }
        i += 1;
    }
    let stage = stage.ok_or_else(|| format!("which stage? ({})", stage_names()))?;
    let server = server.ok_or("give the server: -- <command...> or --addr HOST:PORT")?;
    if let Some(name) = &only {
        if !stage.checks().iter().any(|c| c.name == name) {
            return Err(format!(
                "the {} stage has no check '{name}' (see harness --list)",
                stage.name()
            ));
        }
    }
    let cmd = CheckCommand {
        stage,
        only,
        max_users,
        max_queue,
        idle_timeout,
        pid,
        trace,
        server,
    };
    if cmd.trace && matches!(cmd.server, ServerSpec::Addr(_)) {
        return Err("--trace needs the server's command (-- <command...>): the harness sets KQ_TRACE when it starts it; a server already running can be started with KQ_TRACE=FILE by hand".into());
    }
    if matches!(cmd.server, ServerSpec::Addr(_)) {
        what_addr_lacks(&cmd)?;
    }
    Ok(Some(cmd))
}

/// `v` as a number in `range`, or "WHAT from A to B, not 'v'".
fn in_range<T>(
    v: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    v.parse().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        format!(
            "{what} from {} to {}, not '{v}'",
            range.start(),
            range.end()
        )
    })
}

fn stage_names() -> String {
    Stage::ALL.map(|s| s.name()).join(", ")
}

/// With --addr, the harness only has what it was told: refuses, before
/// running anything, checks that would need more.
fn what_addr_lacks(cmd: &CheckCommand) -> std::result::Result<(), String> {
    let checks = selected(cmd);
    let needs = |n: Need| checks.iter().any(|c| c.needs(n));
    let stage = cmd.stage.name();
    if needs(Need::Command) || checks.is_empty() {
        return Err(format!(
            "the {stage} checks start the server themselves, on ports they pick: give its command (-- <command...>), not --addr"
        ));
    }
    if needs(Need::Pid) && cmd.pid.is_none() {
        return Err(format!(
            "the {stage} checks need the server's process id ({}): pass --pid PID",
            if needs(Need::StopsServer) {
                "they send it signals"
            } else {
                "they watch its CPU use"
            }
        ));
    }
    if needs(Need::MaxQueue) && cmd.max_queue.is_none() {
        return Err(format!(
            "the {stage} checks need the --max-queue the server was started with: pass --max-queue BYTES"
        ));
    }
    if needs(Need::IdleTimeout) && cmd.idle_timeout.is_none() {
        return Err(format!(
            "the {stage} checks need the --idle-timeout the server was started with: pass --idle-timeout SECS"
        ));
    }
    let stopping: Vec<&str> = checks
        .iter()
        .filter(|c| c.needs(Need::StopsServer))
        .map(|c| c.name)
        .collect();
    if stopping.len() > 1 {
        return Err(format!(
            "each {stage} check stops the server, and with --addr there is only one: run them one at a time with --only CHECK ({})",
            stopping.join(", ")
        ));
    }
    Ok(())
}

/// The checks `cmd` runs.
fn selected(cmd: &CheckCommand) -> Vec<&'static Check> {
    cmd.stage
        .checks()
        .iter()
        .filter(|c| cmd.only.as_deref().is_none_or(|o| o == c.name))
        .filter(|c| !skipped_with_addr(cmd, c))
        .collect()
}

/// With --addr and no --only, a check that starts servers itself is
/// skipped (and said so), the rest of its stage runs.
fn skipped_with_addr(cmd: &CheckCommand, check: &Check) -> bool {
    matches!(cmd.server, ServerSpec::Addr(_)) && cmd.only.is_none() && check.needs(Need::Command)
}

/// What a check could not do without --pid, as a note on its line.
fn missing_pid_note(cmd: &CheckCommand, check: &Check) -> &'static str {
    if cmd.pid.is_some() || !matches!(cmd.server, ServerSpec::Addr(_)) {
        return "";
    }
    if check.needs(Need::FdCount) {
        "  (descriptors not counted: pass --pid)"
    } else if check.needs(Need::CpuTime) {
        "  (CPU use not measured: pass --pid)"
    } else if check.needs(Need::Pause) {
        "  (server not paused, so the order was left to chance: pass --pid)"
    } else {
        ""
    }
}

fn run_check_command(cmd: &CheckCommand) -> ExitCode {
    let checks = selected(cmd);
    match &cmd.server {
        ServerSpec::Addr(a) => println!(
            "harness: {} checks against the server at {a}",
            cmd.stage.name()
        ),
        ServerSpec::Command(_) => {
            let launch = launch_for(cmd);
            let limit = launch
                .fd_limit
                .map_or(String::new(), |n| format!(" with at most {n} descriptors"));
            let traced = if launch.trace {
                ", traced (KQ_TRACE)"
            } else {
                ""
            };
            println!(
                "harness: {} checks against `{}`{limit}{traced}, a fresh server for each check",
                cmd.stage.name(),
                launch.shown()
            )
        }
    }
    for check in cmd.stage.checks() {
        if skipped_with_addr(cmd, check) {
            println!(
                "skip  {}/{}  (it starts the server itself: give the command, not --addr)",
                cmd.stage.name(),
                check.name
            );
        }
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
        let note = missing_pid_note(cmd, check);
        match one_check(cmd, check) {
            Ok(notes) => {
                passed += 1;
                println!("ok    {}/{}{note}", cmd.stage.name(), check.name);
                for n in notes {
                    println!("      {n}");
                }
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

/// How the harness starts the server of a `-- <command...>` check.
fn launch_for(cmd: &CheckCommand) -> harness::Launch {
    let ServerSpec::Command(argv) = &cmd.server else {
        unreachable!("only commands are launched")
    };
    let program = &argv[0];
    let name = Path::new(program)
        .file_name()
        .map_or("server".into(), |n| n.to_string_lossy().into_owned());
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut values = Vec::new();
    if let Some(n) = cmd.max_queue {
        values.push(("--max-queue", n.to_string()));
    }
    if let Some(s) = cmd.idle_timeout {
        values.push(("--idle-timeout", s.to_string()));
    }
    if let Some(n) = cmd.max_users {
        values.push(("--max-users", n.to_string()));
    }
    let launch = cmd.stage.launch(&name, program, &args, &values);
    if cmd.trace {
        launch.traced(true)
    } else {
        launch
    }
}

/// Runs one check; its notes on success, or the failure and whether the
/// server had started.
fn one_check(
    cmd: &CheckCommand,
    check: &Check,
) -> std::result::Result<Vec<String>, (Failure, bool)> {
    let target = match &cmd.server {
        ServerSpec::Addr(addr) => {
            let mut target = Target::addr(*addr)
                .with_max_users(cmd.max_users.unwrap_or(harness::DEFAULT_MAX_USERS));
            if let Some(pid) = cmd.pid {
                target = target.with_pid(pid);
            }
            if let Some(n) = cmd.max_queue {
                target = target.with_max_queue(n);
            }
            if let Some(s) = cmd.idle_timeout {
                target = target.with_idle_timeout(std::time::Duration::from_secs(s));
            }
            checks::run_check(cmd.stage, check, &target).map_err(|f| (f, true))?;
            return Ok(target.notes());
        }
        ServerSpec::Command(_) => {
            let server = Server::start(&launch_for(cmd)).map_err(|f| {
                let f = match started_with(cmd.stage) {
                    Some(how) => f.context(format!(
                        "the {} checks start the server with {how}; a server without those options cannot pass them",
                        cmd.stage.name()
                    )),
                    None => f,
                };
                (f, false)
            })?;
            let mut target = server.target();
            if let Some(n) = cmd.max_users {
                target = target.with_max_users(n);
            }
            checks::run_check(cmd.stage, check, &target).map_err(|f| (f, true))?;
            target
        }
    };
    Ok(target.notes())
}
