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
//! Phases: A ratios (64 B, 100 connections, 5 interleaved rounds of 1.2 s),
//! B scaling (1, 1000, 10000 connections), C open-loop latency (20k msgs/s),
//! D idle hold (10000; C100K only where RLIMIT_NOFILE allows), E chat fan-out
//! (step5 with `--max-users`, plus every `--chat NAME=PATH`). `--quick` runs
//! A once and a 1000-connection hold, and checks that every echo and ping
//! came back intact and that syscalls per message stay in [1.9, 4].
//!
//! Syscalls are counted with `perf stat -e raw_syscalls:sys_enter -p PID`
//! (Debian package `linux-perf`): /proc has no syscall counter, and strace
//! slows the server several times over. The bench installs nothing; without
//! perf the syscall columns say so and `--quick` fails that check.

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
