//! Phase I: what `KQ_TRACE` costs, traced and not. Its promise is that a
//! program that does not set it pays one relaxed atomic load per call, so
//! the untraced `Kqueue::kevent` must time as the call it wraps.
//!
//! Three contenders make the same call, `kevent(0 changes, 1 event,
//! timeout 0)` on a kqueue watching one pipe that holds one unread byte
//! (level-triggered, so every call returns that one event: on Linux one
//! `epoll_wait` and one `FIONREAD`):
//!
//! - **before**: `kq::kevent()`, the C layer, which is what
//!   `Kqueue::kevent` called before the trace existed and still calls;
//! - **untraced**: `Kqueue::kevent`, `KQ_TRACE` unset (its one load and
//!   branch added);
//! - **traced**: `Kqueue::kevent` with `KQ_TRACE` naming a file.
//!
//! The variable is read once per process, so each setting is a child
//! process (`bench calls MODE ROUNDS`, the bench re-executing itself):
//! the untraced child times *before* and *untraced* in alternating rounds,
//! the traced child times *before* and *traced* the same way, and each
//! ratio is the median of per-round ratios within one child (the VM's fast
//! and slow spells hit both sides of a round alike). The check is
//! deterministic: the traced child's file holds one block per traced call,
//! and the untraced child wrote none.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD};

use crate::report::{Cell, Report, Table};
use crate::stats::{median, quantile, sorted_finite};
use crate::sys::cvt;

/// Calls per round, untraced (about 7 ms here) and traced (a block is
/// formatted and written per call: some 4 times slower).
const CALLS_UNTRACED: u64 = 20_000;
const CALLS_TRACED: u64 = 2_000;

/// One child's figures: per round, ns per call of `before` and of the
/// `Kqueue::kevent` contender.
struct Rounds {
    before: Vec<f64>,
    safe: Vec<f64>,
}

pub fn run(quick: bool, rep: &mut Report) -> Result<(), String> {
    let rounds = if quick { 5 } else { 41 };
    let trace = std::env::temp_dir().join(format!("bench-kq-trace-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&trace);
    let untraced = child(None, rounds)?;
    let traced = child(Some(&trace), rounds);
    let blocks = std::fs::read_to_string(&trace)
        .map(|t| t.lines().filter(|l| l.starts_with("kevent(")).count() as u64);
    let _ = std::fs::remove_file(&trace);
    let traced = traced?;

    let mut t = Table::new(
        &format!(
            "I. What KQ_TRACE costs: ns per kevent() call (0 changes, 1 event ready, timeout 0, one pipe); median of {rounds} rounds, each child alternating the C layer (before) with Kqueue::kevent (middle half)"
        ),
        &["call", "ns/call", "(q25-q75)", "calls/s", "x before", "(q25-q75)"],
    );
    let row = |t: &mut Table, name: &str, ns: &[f64], vs: Option<&[f64]>| {
        let s = sorted_finite(ns);
        let m = median(ns.to_vec());
        let mut cells = vec![
            Cell::text(name),
            Cell::num(m, 0),
            Cell::Text(format!(
                "{:.0}-{:.0}",
                quantile(&s, 0.25),
                quantile(&s, 0.75)
            )),
            Cell::num(1e9 / m, 0),
        ];
        match vs {
            Some(before) => {
                let ratios: Vec<f64> = ns.iter().zip(before).map(|(a, b)| a / b).collect();
                let r = sorted_finite(&ratios);
                cells.push(Cell::num(median(ratios), 3));
                cells.push(Cell::Text(format!(
                    "{:.3}-{:.3}",
                    quantile(&r, 0.25),
                    quantile(&r, 0.75)
                )));
            }
            None => cells.extend([Cell::num(1.0, 3), Cell::text("")]),
        }
        t.row(cells);
    };
    row(
        &mut t,
        "before: kq::kevent() (C layer)",
        &untraced.before,
        None,
    );
    row(
        &mut t,
        "Kqueue::kevent, KQ_TRACE unset",
        &untraced.safe,
        Some(&untraced.before),
    );
    row(
        &mut t,
        "Kqueue::kevent, KQ_TRACE=file",
        &traced.safe,
        Some(&traced.before),
    );
    rep.table(t);
    // The registration, then every timed call of Kqueue::kevent.
    let want = 1 + rounds as u64 * CALLS_TRACED;
    match blocks {
        Ok(n) => rep.check(
            "I: the traced child wrote one block per traced call",
            n == want,
            format!("{n} blocks for {want} calls"),
        ),
        Err(e) => rep.check(
            "I: the traced child wrote one block per traced call",
            false,
            format!("{}: {e}", trace.display()),
        ),
    }
    Ok(())
}

/// Runs `bench calls untraced|traced ROUNDS`, with `KQ_TRACE` set to
/// `trace` or removed, and reads its rounds.
fn child(trace: Option<&Path>, rounds: usize) -> Result<Rounds, String> {
    let me = std::env::current_exe().map_err(|e| format!("phase I: {e}"))?;
    let mut cmd = Command::new(me);
    let mode = if trace.is_some() {
        "traced"
    } else {
        "untraced"
    };
    cmd.args(["calls", mode, &rounds.to_string()]);
    match trace {
        Some(path) => cmd.env("KQ_TRACE", path),
        None => cmd.env_remove("KQ_TRACE"),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("phase I: bench calls: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "phase I: bench calls {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut r = Rounds {
        before: Vec::new(),
        safe: Vec::new(),
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = line.split_whitespace();
        if let (Some(b), Some(s)) = (w.next(), w.next()) {
            r.before
                .push(b.parse().map_err(|_| format!("phase I: read '{line}'"))?);
            r.safe
                .push(s.parse().map_err(|_| format!("phase I: read '{line}'"))?);
        }
    }
    if r.before.len() != rounds {
        return Err(format!(
            "phase I: bench calls {mode} gave {} rounds",
            r.before.len()
        ));
    }
    Ok(r)
}

/// `bench calls untraced|traced ROUNDS`: the child. Prints, per round, the
/// ns per call of the C layer and of `Kqueue::kevent`, alternating which
/// goes first.
pub fn calls(args: &[String]) -> ExitCode {
    let (Some(mode), Some(rounds)) = (
        args.first(),
        args.get(1).and_then(|r| r.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: bench calls untraced|traced ROUNDS");
        return ExitCode::from(2);
    };
    let traced = mode == "traced";
    if kq::trace::enabled() != traced {
        eprintln!("bench calls {mode}: KQ_TRACE says otherwise");
        return ExitCode::FAILURE;
    }
    let per_round = if traced { CALLS_TRACED } else { CALLS_UNTRACED };
    match time_rounds(rounds, per_round) {
        Ok(lines) => {
            for (b, s) in lines {
                println!("{b:.1} {s:.1}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench calls {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn time_rounds(rounds: usize, per_round: u64) -> io::Result<Vec<(f64, f64)>> {
    let (rd, wr) = pipe()?;
    write_one(&wr)?;
    let kq = Kqueue::new()?;
    let mut ch = kevent_zeroed();
    ev_set(
        &mut ch,
        rd.as_raw_fd() as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        std::ptr::null_mut(),
    );
    kq.kevent(&[ch], &mut [], None)?;
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (b, s) = if round % 2 == 0 {
            let b = time_before(&kq, per_round)?;
            (b, time_safe(&kq, per_round)?)
        } else {
            let s = time_safe(&kq, per_round)?;
            (time_before(&kq, per_round)?, s)
        };
        out.push((b, s));
    }
    Ok(out)
}

/// ns per call of the C layer's `kevent()`, the untraced system call.
fn time_before(kq: &Kqueue, calls: u64) -> io::Result<f64> {
    let mut ev = [kevent_zeroed(); 1];
    let zero = kq::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: an empty changelist, one writable event, a live timespec.
        let n = cvt(unsafe {
            kq::kevent(
                kq.as_raw_fd(),
                std::ptr::null(),
                0,
                ev.as_mut_ptr(),
                1,
                &zero,
            )
        })?;
        expect_one(n as usize)?;
    }
    Ok(per_call(start.elapsed(), calls))
}

/// ns per call of `Kqueue::kevent`, traced or not as the process says.
fn time_safe(kq: &Kqueue, calls: u64) -> io::Result<f64> {
    let mut ev = [kevent_zeroed(); 1];
    let start = Instant::now();
    for _ in 0..calls {
        expect_one(kq.kevent(&[], &mut ev, Some(Duration::ZERO))?)?;
    }
    Ok(per_call(start.elapsed(), calls))
}

fn expect_one(n: usize) -> io::Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kevent() returned {n} events, not the pipe's 1"
        )))
    }
}

fn per_call(d: Duration, calls: u64) -> f64 {
    d.as_nanos() as f64 / calls as f64
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2() writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just returned by pipe2() and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_one(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: one byte from a live buffer.
    cvt(unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) })?;
    Ok(())
}
