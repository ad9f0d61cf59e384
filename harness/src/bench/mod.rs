//! `harness bench [--quick] [--json FILE] [--step3 PATH] [--step5 PATH] [--chat NAME=PATH]`:
//! a load generator for the step servers and the reference servers.
//!
//! The parent process is the load generator (pinned to CPU 1); each server
//! under test is a child (pinned to CPU 0) started on a fresh port, tracked by
//! its pid and killed by it. The kq echo server (step3) is compared with the
//! same loop written on epoll and with a tokio current-thread server, both
//! the bench re-executing itself (`harness bench serve epoll|tokio PORT`,
//! only with `--features bench-refs`, so the teaching crates never depend on
//! tokio). Loopback TCP dominates every figure and runs ±15 % from run to
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
//! open-loop latency (20k msgs/s from the intended send time, servers taking
//! turns), D idle hold (10000; C100K only where RLIMIT_NOFILE allows), E chat
//! fan-out (step5 with `--max-users`, plus every `--chat NAME=PATH`), F
//! translation cost (scripts/translation-cost.sh, callgrind, when valgrind
//! is installed). After each phase the bench says how much CPU other
//! processes used meanwhile (/proc/stat minus its own getrusage) and flags
//! the phase's timings when that exceeds 10 % of a CPU.
//! `--quick` runs A with 5 cycles and a 1000-connection hold, and checks
//! that every echo and ping came back intact and that syscalls per message
//! stay in [1.9, 4] and, apart from `epoll_wait` (whose batching depends on
//! timing), at read + write (+ kq's FIONREAD) + 0.1.
//!
//! Syscalls are counted with `perf stat -p PID` on tracepoints
//! (`raw_syscalls:sys_enter` and `syscalls:sys_enter_*` per kind; Debian
//! package `linux-perf`) in separate 0.4 s windows that start and end with
//! the server idle, so the count per message is exact: /proc has no syscall
//! counter, and strace slows the server several times over. The bench
//! installs nothing (.ci/run does); without perf the syscall columns say so
//! and `--quick` fails those checks.

// The bench measures the Linux translation against epoll, so it is Linux
// only; elsewhere `harness bench` says so (and the workspace still checks
// for macOS and the BSDs).
#[cfg(target_os = "linux")]
mod client;
#[cfg(all(target_os = "linux", feature = "bench-refs"))]
mod refs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod sys;

/// Entry point of `harness bench ...`; `args` are the arguments after `bench`.
#[cfg(target_os = "linux")]
pub fn main(args: &[String]) -> std::process::ExitCode {
    run::main(args)
}

/// Entry point of `harness bench ...` on an OS without the epoll translation.
#[cfg(not(target_os = "linux"))]
pub fn main(_args: &[String]) -> std::process::ExitCode {
    eprintln!(
        "harness bench: Linux only (it measures kq's epoll translation against epoll and tokio)"
    );
    std::process::ExitCode::FAILURE
}
