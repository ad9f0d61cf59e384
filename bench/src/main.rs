//! `bench [--quick | --only PHASES | --idle] [--json FILE] [--stepN PATH]... [--chat NAME=PATH]...`:
//! a load generator for the step servers and the reference servers, and a
//! timing of the wait calls themselves with many idle descriptors.
//!
//! `cargo run --release -p bench --features refs` (about 2 min; BENCHMARKS.md
//! has the figures and how to read them).
//!
//! The parent process is the load generator (pinned to CPU 1); each server
//! under test is a child (pinned to CPU 0) started on a fresh port, tracked by
//! its pid and killed by it. The kq echo server (step3) is compared with the
//! same loop written on epoll and with a tokio current-thread server, both
//! the bench re-executing itself (`bench serve epoll|tokio PORT`, only
//! with `--features refs`, so no teaching crate ever depends on tokio). Loopback TCP dominates every figure and runs ±15 % from run to
//! run here, so ratios come from medians of interleaved rounds, and the
//! deterministic figures (syscalls per message, bytes per connection) carry
//! the targets. Only deterministic things are checked; no timing is.
//!
//! This VM also flips between fast and slow spells that last seconds (the
//! same server measures 135k or 200k msgs/s), so contenders are not run one
//! after the other: all of them run at once (the idle ones asleep in their
//! wait) and take turns in 0.2-0.5 s slices, and a ratio is the median of
//! per-cycle ratios, shown with its middle half.
//!
//! Phases: A ratios (64 B, 100 connections, 25 cycles of a 0.2 s slice per
//! server), A2 syscalls per message by kind, B scaling (1, 100, 1000, 10000
//! connections: one server process per server and size, taking turns), C
//! open-loop latency (20k msgs/s from the intended send time, 20 cycles of
//! a 0.25 s slice per server in an order that rotates; pooled percentiles,
//! and the median of per-slice ones, which one stalled slice cannot move),
//! D idle hold (10000; C100K only where RLIMIT_NOFILE allows), E chat
//! fan-out (step5 with `--max-users`, plus every `--chat NAME=PATH`), E2
//! the same room with one more user who never reads (steps 5 to 8 and every
//! `--chat`: step 5 stalls; steps 6 to 8 against the same room without that
//! user, in paired slices), F translation cost (scripts/translation-cost.sh,
//! callgrind, when valgrind is installed), G idle descriptors (select, poll,
//! epoll and kq finding one active descriptor among N idle ones, N = 10 ..
//! 10,000, after Lemon's kqueue paper; its data goes to
//! `book/generated/bench/`, from which the book's plot is drawn), H what
//! batching saves (kevent() calls, with a uprobe, and system calls per
//! relayed message and per accepted client, step 7 against step 8), I what
//! `KQ_TRACE` costs (ns per `kevent()` call: the C layer, `Kqueue::kevent`
//! untraced and traced to a file, each setting a child `bench calls`,
//! alternating with the C layer in rounds). After
//! each phase the bench says how much CPU other processes used meanwhile
//! (/proc/stat minus its own getrusage) and flags the phase's timings when
//! that exceeds 10 % of a CPU. `--only C,E` runs those phases alone;
//! `--idle` is `--only G`, which writes the book's data.
//! `--quick` runs A with 5 cycles, a 1000-connection hold, E2 for step 6
//! alone with one short slice, a small G (N = 10, 100, 1000, writing
//! nothing) and 5 rounds of I, and checks that every echo and ping came back intact, that
//! syscalls per message stay in [1.9, 4] and, apart from `epoll_wait`
//! (whose batching depends on timing), at read + write (+ kq's FIONREAD) +
//! 0.1, that step 6's readers got every line intact beside a user who never
//! reads and that user every line once it reads, and that every wait call
//! of G returned exactly the active descriptor.
//!
//! Syscalls are counted in one place, `sys::SyscallCount`: `perf stat -p
//! PID` on tracepoints (`raw_syscalls:sys_enter` and `syscalls:sys_enter_*`
//! per kind; Debian package `linux-perf`), plus uprobes where a function's
//! calls are counted (H), in separate windows that start and end with the
//! server idle, so the count per message is exact: /proc has no syscall
//! counter, and strace slows the server several times over. The bench
//! installs nothing (.ci/run does); without perf the syscall columns say so
//! and `--quick` fails those checks.

// The bench measures the Linux translation against epoll, so it is Linux
// only; elsewhere it says so (and the workspace still checks for macOS and
// the BSDs).
#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod phases;
#[cfg(all(target_os = "linux", feature = "refs"))]
mod refs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod sliced;
#[cfg(target_os = "linux")]
mod stats;
#[cfg(target_os = "linux")]
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: bench [--quick | --only PHASES | --idle] [--json FILE] [--stepN PATH]... [--chat NAME=PATH]...
       bench serve epoll|tokio PORT   (the reference servers; needs --features refs)
       bench calls untraced|traced ROUNDS   (phase I's child: kevent() calls timed)

  --quick          what CI runs: short phases A, D, E (step 6's room with a user who
                   never reads), G and I, deterministic checks only
  --only PHASES    only these phases, full size: letters from ABCDEFGHI, e.g. `--only C`
                   or `--only E,H` (targets need A and D)
  --idle           the same as `--only G`: idle descriptors; writes its data for the book
  --json FILE      also write every figure as JSON
  --stepN PATH     use PATH as step N instead of building it (--release): step3 is the kq
                   echo server (A-D), step5-step8 the chat servers (E), step7 and step8
                   are compared in H
  --chat NAME=PATH another chat server for phase E (any language; --port 0 --max-users N)";

/// The phases, by letter, in the order they run (the crate docs say what
/// each measures).
pub const PHASES: &str = "ABCDEFGHI";

/// The steps the bench runs: the echo server, and the chat servers.
pub const STEPS: [&str; 5] = ["step3", "step5", "step6", "step7", "step8"];

fn main() -> ExitCode {
    restore_sigpipe();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("calls") {
        return calls(&args[1..]);
    }
    let opts = match Opts::parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    run(&opts)
}

#[cfg(target_os = "linux")]
fn run(opts: &Opts) -> ExitCode {
    match run::run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_opts: &Opts) -> ExitCode {
    eprintln!("bench: Linux only (it measures kq's epoll translation against epoll and tokio)");
    ExitCode::FAILURE
}

/// Rust ignores SIGPIPE, so `bench ... | head` would panic on the closed
/// pipe; a command-line tool should just stop, as `ls | head` does.
fn restore_sigpipe() {
    // SAFETY: resetting a signal to its default action before any thread
    // starts has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `bench calls untraced|traced ROUNDS`: phase I's child.
#[cfg(target_os = "linux")]
fn calls(args: &[String]) -> ExitCode {
    phases::trace::calls(args)
}

#[cfg(not(target_os = "linux"))]
fn calls(_args: &[String]) -> ExitCode {
    eprintln!("bench: Linux only");
    ExitCode::FAILURE
}

/// `bench serve epoll|tokio PORT`: a reference server (the bench starts
/// them by re-executing itself).
fn serve(args: &[String]) -> ExitCode {
    let (Some(kind), Some(port)) = (
        args.first(),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    #[cfg(all(target_os = "linux", feature = "refs"))]
    {
        match refs::serve(kind, port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench serve {kind}: {e}");
                ExitCode::FAILURE
            }
        }
    }
    #[cfg(not(all(target_os = "linux", feature = "refs")))]
    {
        eprintln!(
            "bench serve {kind} {port}: built without the reference servers; rebuild with --features refs (Linux)"
        );
        ExitCode::FAILURE
    }
}

/// What the command line asked for.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Opts {
    quick: bool,
    /// Only these phases (letters of [`PHASES`]), full size.
    only: Option<String>,
    json: Option<PathBuf>,
    /// Step binaries given (`--step5 PATH`): name and path.
    steps: Vec<(String, PathBuf)>,
    chat: Vec<(String, PathBuf)>,
}

impl Opts {
    /// `Ok(None)`: `--help`.
    fn parse(args: &[String]) -> Result<Option<Opts>, String> {
        let mut o = Opts {
            quick: false,
            only: None,
            json: None,
            steps: Vec::new(),
            chat: Vec::new(),
        };
        let set_only = |o: &mut Opts, v: &str| -> Result<(), String> {
            if o.only.is_some() {
                return Err("--only (or --idle) given twice".into());
            }
            o.only = Some(parse_phases(v)?);
            Ok(())
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--quick" => o.quick = true,
                "--idle" => set_only(&mut o, "G")?,
                "--only" => {
                    let v = value()?;
                    set_only(&mut o, &v)?
                }
                "--json" => o.json = Some(value()?.into()),
                s if s.starts_with("--step") => {
                    let name = &s[2..];
                    if !STEPS.contains(&name) {
                        return Err(format!(
                            "unknown argument `{a}` (the bench runs {})",
                            STEPS.join(", ")
                        ));
                    }
                    let path = value()?;
                    o.steps.retain(|(n, _)| n != name);
                    o.steps.push((name.to_string(), path.into()));
                }
                "--chat" => {
                    let v = value()?;
                    let (name, path) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--chat wants NAME=PATH, got `{v}`"))?;
                    o.chat.push((name.into(), path.into()));
                }
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument `{a}`")),
            }
        }
        if o.quick && o.only.is_some() {
            return Err("--quick runs its own phases: not with --only or --idle".into());
        }
        Ok(Some(o))
    }
}

/// `C` or `E,H` or `eh`: phase letters, in the order given, each once.
fn parse_phases(v: &str) -> Result<String, String> {
    let mut letters = String::new();
    for c in v.chars().filter(|c| *c != ',' && !c.is_whitespace()) {
        let c = c.to_ascii_uppercase();
        if !PHASES.contains(c) {
            return Err(format!(
                "--only: no phase `{c}` (the phases are the letters {PHASES})"
            ));
        }
        if !letters.contains(c) {
            letters.push(c);
        }
    }
    if letters.is_empty() {
        return Err("--only wants phase letters, e.g. `--only C` or `--only E,H`".into());
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(args: &[&str]) -> Result<Option<Opts>, String> {
        Opts::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Options parse as documented and unknown ones are refused by name.
    #[test]
    fn options_parse_and_unknown_ones_are_refused() {
        let args = ["--quick", "--json", "out.json", "--chat", "beyond=/bin/x"];
        let o = parse(&args).expect("valid options").expect("not --help");
        assert!(o.quick, "--quick not recorded from {args:?}");
        assert_eq!(o.json.as_deref(), Some(Path::new("out.json")));
        assert_eq!(
            o.chat,
            vec![("beyond".to_string(), PathBuf::from("/bin/x"))]
        );
        let err = parse(&["--fast"]).err();
        assert_eq!(err.as_deref(), Some("unknown argument `--fast`"));
        let err = parse(&["--json"]).err();
        assert_eq!(err.as_deref(), Some("--json needs a value"));
        let err = parse(&["--quick", "--idle"]).err();
        assert_eq!(
            err.as_deref(),
            Some("--quick runs its own phases: not with --only or --idle")
        );
        assert!(parse(&["--help"]).expect("help").is_none(), "--help");
    }

    /// `--only` takes phase letters in any case, with or without commas,
    /// `--idle` is `--only G`, and a phase that does not exist is named.
    #[test]
    fn only_takes_phase_letters() {
        let o = parse(&["--only", "e, h"])
            .expect("valid")
            .expect("not --help");
        assert_eq!(o.only.as_deref(), Some("EH"), "--only e, h");
        let o = parse(&["--idle"]).expect("valid").expect("not --help");
        assert_eq!(o.only.as_deref(), Some("G"), "--idle");
        let err = parse(&["--only", "CZ"]).err();
        assert_eq!(
            err,
            Some(format!(
                "--only: no phase `Z` (the phases are the letters {PHASES})"
            ))
        );
        let err = parse(&["--only", ","]).err();
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("--only wants phase letters")),
            "--only with no letter: {err:?}"
        );
        let err = parse(&["--only", "C", "--idle"]).err();
        assert_eq!(err.as_deref(), Some("--only (or --idle) given twice"));
    }

    /// `--stepN PATH` is taken for the steps the bench runs (the last one
    /// given wins), and refused, with the list, for any other.
    #[test]
    fn step_paths_are_taken_for_the_steps_the_bench_runs() {
        let args = ["--step7", "/a", "--step3", "/b", "--step7", "/c"];
        let o = parse(&args).expect("valid").expect("not --help");
        assert_eq!(
            o.steps,
            vec![
                ("step3".to_string(), PathBuf::from("/b")),
                ("step7".to_string(), PathBuf::from("/c"))
            ],
            "from {args:?}"
        );
        let err = parse(&["--step4", "/x"]).err();
        assert_eq!(
            err.as_deref(),
            Some("unknown argument `--step4` (the bench runs step3, step5, step6, step7, step8)")
        );
        let err = parse(&["--step8"]).err();
        assert_eq!(err.as_deref(), Some("--step8 needs a value"));
    }
}
