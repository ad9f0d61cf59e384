//! Phase A: the echo servers side by side (64 B, 100 connections), and A2:
//! their system calls per message by kind.

use std::time::Duration;

use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::sliced::{paired, Round, Sliced};
use crate::stats::middle_half;

/// Figures per server, in the order of `echo`, and the paired ratios of
/// the first (kq) to each other one.
pub struct Ratios {
    pub names: Vec<String>,
    pub med: Vec<Round>,
    /// Per server i (0 = kq itself): median over slices of kq/i for
    /// msgs/s and for server CPU per message.
    pub msgs_ratio: Vec<f64>,
    pub cpu_ratio: Vec<f64>,
}

pub fn run(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Ratios, String> {
    // All servers run at once (the idle ones sleep in their wait); each
    // cycle gives every server one 0.2 s slice, in turn.
    let (cycles, windows) = if ctx.quick { (5, 1) } else { (25, 3) };
    let (warm, measure) = (Duration::from_millis(30), Duration::from_millis(200));
    let mut run: Vec<Sliced> = echo
        .iter()
        .map(|spec| Sliced::start(ctx, spec, 100))
        .collect::<Result<_, _>>()?;
    for _ in 0..cycles {
        for (spec, s) in echo.iter().zip(&mut run) {
            s.slice(&spec.name, warm, measure)?;
        }
    }
    for _ in 0..windows {
        for s in &mut run {
            s.count_syscalls(ctx);
        }
    }
    let med: Vec<Round> = run.iter_mut().map(Sliced::figures).collect();
    let mut t = Table::new(
        &format!(
            "A. Ratios: 64 B echo, 100 connections, closed loop; {cycles} cycles of one {:.1} s slice per server in turn ({:.0} s each); busy = share of the time on a CPU",
            measure.as_secs_f64(),
            cycles as f64 * measure.as_secs_f64()
        ),
        &[
            "server",
            "msgs/s",
            "MB/s",
            "srv CPU us/msg",
            "srv busy %",
            "load busy %",
            "syscalls/msg",
            "p50 us",
            "p99 us",
        ],
    );
    for (spec, r) in echo.iter().zip(&med) {
        t.row(vec![
            Cell::text(&spec.name),
            Cell::num(r.msgs_s, 0),
            Cell::num(r.mb_s, 2),
            Cell::num(r.cpu_us, 2),
            Cell::num(r.srv_busy, 0),
            Cell::num(r.client_busy, 0),
            Cell::opt(r.sys_msg, 2),
            Cell::num(r.p50_us, 0),
            Cell::num(r.p99_us, 0),
        ]);
    }
    let (mut msgs_ratio, mut cpu_ratio) = (vec![1.0], vec![1.0]);
    for (i, spec) in echo.iter().enumerate().skip(1) {
        let (msgs, msgs_v) = paired(&run[0], &run[i], |s| s.0);
        let (cpu, cpu_v) = paired(&run[0], &run[i], |s| s.1);
        let sys = match (med[0].sys_msg, med[i].sys_msg) {
            (Some(a), Some(b)) => Cell::num(a / b, 3),
            _ => Cell::na(),
        };
        let (k, o) = (&med[0], &med[i]);
        let blank = || Cell::Text(String::new());
        t.row(vec![
            Cell::text(&format!("ratio kq/{}", spec.name)),
            Cell::num(msgs, 3),
            Cell::num(msgs, 3),
            Cell::num(cpu, 3),
            blank(),
            blank(),
            sys,
            Cell::num(k.p50_us / o.p50_us, 3),
            Cell::num(k.p99_us / o.p99_us, 3),
        ]);
        if cycles > 1 {
            t.row(vec![
                Cell::text("  middle half"),
                middle_half(&msgs_v, 2),
                middle_half(&msgs_v, 2),
                middle_half(&cpu_v, 2),
                blank(),
                blank(),
                blank(),
                blank(),
                blank(),
            ]);
        }
        msgs_ratio.push(msgs);
        cpu_ratio.push(cpu);
    }
    rep.table(t);
    if echo.len() > 1 {
        rep.note(&format!(
        "ratio rows: median over the {cycles} cycles of kq's slice / the other's slice in the same cycle; middle half = their 25th-75th percentiles; syscalls/msg: {windows} separate 0.4 s perf window{} per server",
            if windows == 1 { "" } else { "s" }
        ));
    }

    // Which system calls: the difference between servers gets a name.
    let mut t = Table::new(
        &format!(
            "A2. System calls per message by kind (perf stat tracepoints on the server; median of {windows} 0.4 s window{} per server)",
            if windows == 1 { "" } else { "s" }
        ),
        &[
            "server",
            "total",
            "read",
            "write",
            "epoll_wait",
            "epoll_ctl",
            "ioctl",
            "other",
        ],
    );
    for (spec, r) in echo.iter().zip(&med) {
        let mut cells = vec![Cell::text(&spec.name), Cell::opt(r.sys_msg, 3)];
        match (r.sys_msg, r.sys_kinds) {
            (Some(total), Some(k)) => {
                cells.extend(k.iter().map(|&v| Cell::num(v, 3)));
                cells.push(Cell::num((total - k.iter().sum::<f64>()).max(0.0), 3));
            }
            _ => cells.push(Cell::Text(if ctx.perf {
                "not measured (a window lost messages)".into()
            } else {
                "not measured: perf not installed (Debian package linux-perf)".into()
            })),
        }
        t.row(cells);
    }
    rep.table(t);

    for (i, (spec, r)) in echo.iter().zip(&med).enumerate() {
        r.check_answered(rep, &spec.name, "every echo answered, intact");
        // read + write per message is the floor; how many events one
        // epoll_wait returns depends on timing, so the total only gets
        // loose bounds ...
        let (lo, hi) = (1.9, 4.0);
        let totals: Vec<f64> = run[i].sys.iter().map(|s| s.0).collect();
        let counted = totals.len() == windows;
        rep.check(
            &format!("{}: syscalls per message in [{lo}, {hi}]", spec.name),
            counted && totals.iter().all(|&s| (lo..=hi).contains(&s)),
            if ctx.perf {
                format!("per window: {totals:.2?}")
            } else {
                "perf not installed (Debian package linux-perf)".into()
            },
        );
        // ... while what a server does per message, apart from waiting, is
        // fixed: one read and one write (and for kq one FIONREAD). An extra
        // epoll_ctl or ioctl per event shows up here as +1.
        let floor = if i == 0 { 3.0 } else { 2.0 };
        let limit = floor + 0.1;
        let besides: Vec<f64> = run[i].sys.iter().map(|s| s.0 - s.1[2]).collect();
        rep.check(
            &format!(
                "{}: syscalls per message besides epoll_wait <= {limit:.1}",
                spec.name
            ),
            counted && besides.iter().all(|&s| s <= limit),
            if ctx.perf {
                format!("per window: {besides:.3?}")
            } else {
                "perf not installed (Debian package linux-perf)".into()
            },
        );
    }
    Ok(Ratios {
        names: echo.iter().map(|s| s.name.clone()).collect(),
        med,
        msgs_ratio,
        cpu_ratio,
    })
}
