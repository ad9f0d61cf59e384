//! Phase H: what batching the changes saves, step 7 against step 8:
//! kevent() calls and system calls per relayed message and per accepted
//! client. Counted, not timed, in perf windows on the server (the same
//! counting as every syscall figure of the bench, `sys::SyscallCount`),
//! with a uprobe on the step's `kq::safe::Kqueue::kevent`:
//!
//! - messages: two users; one sends N lines, each read by the other before
//!   the next is sent (one relay each, never two in one batch);
//! - clients: one user stays; N times a newcomer connects, sends a line,
//!   the user reads it, and the newcomer leaves (a join, one relay, a
//!   leave). Per client is this window less N messages.
//!
//! On macOS and the BSDs every kevent() call is a system call; on Linux
//! kevent() is kq's library call, and what reaches the kernel is counted
//! apart (an epoll_ctl per change, an epoll_wait per wait, a FIONREAD per
//! event).
//!
//! Both steps have a tick: their timer wakes them once a second, idle or
//! not. Each window counts the tick's firings too (reads of its timerfd,
//! the one read each firing makes) and subtracts them at what one firing
//! costs the idle server, counted first over a few idle seconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::client::MSG;
use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::stats::median;
use crate::sys::{self, Extra, SyscallCount, Syscalls, Uprobe};

/// Lines relayed, and clients accepted, per window.
const N: u64 = 2000;
/// Windows of each workload per step; the figures are their medians.
const WINDOWS: usize = 3;
/// The idle window that prices one tick.
const IDLE: Duration = Duration::from_millis(3500);
/// What perf needs to attach before a window's work starts, and the
/// server after it to finish what it was sent (then it is idle again).
const ATTACH: Duration = Duration::from_millis(300);
const SETTLE: Duration = Duration::from_millis(150);
/// The function probed: every kevent() call of a step goes through it.
const KEVENT: &str = "kq::safe::Kqueue::kevent";
/// The syscall kind (index in sys::KINDS) shown beside the totals.
const EPOLL_CTL: usize = 3;

/// What a step costs per message and per client.
struct Costs {
    kevent_msg: Option<f64>,
    sys_msg: f64,
    kevent_client: Option<f64>,
    sys_client: f64,
    ctl_client: f64,
    /// Tick firings subtracted over all windows, and what one costs
    /// (kevent() calls, system calls); None: no tick was found.
    ticks: u64,
    tick_cost: Option<(f64, f64)>,
    /// Why kevent() calls were not counted (the probe could not be added).
    no_probe: Option<String>,
}

pub fn run(
    ctx: &Ctx,
    step7: Result<PathBuf, String>,
    step8: Result<PathBuf, String>,
    rep: &mut Report,
) -> Result<(), String> {
    let mut t = Table::new(
        &format!(
            "H. What batching saves: kevent() calls and system calls per relayed message and per accepted client (perf on the server: a uprobe on {KEVENT}, raw_syscalls:sys_enter); {N} of each per window, median of {WINDOWS} windows, the tick subtracted"
        ),
        &[
            "server",
            "kevent()/message",
            "syscalls/message",
            "kevent()/client",
            "syscalls/client",
            "epoll_ctl/client",
            "ticks subtracted",
        ],
    );
    let mut costs = Vec::new();
    let mut no_probe = Vec::new();
    for (name, program) in [("step7", step7), ("step8", step8)] {
        let result = match program {
            Err(e) => Err(format!("skipped: {e}")),
            Ok(_) if !ctx.perf => {
                Err("not measured: perf not installed (Debian package linux-perf)".into())
            }
            Ok(program) => measure(ctx, name, program),
        };
        match result {
            Ok(c) => {
                t.row(vec![
                    Cell::text(name),
                    Cell::opt(c.kevent_msg, 2),
                    Cell::num(c.sys_msg, 2),
                    Cell::opt(c.kevent_client, 2),
                    Cell::num(c.sys_client, 2),
                    Cell::num(c.ctl_client, 2),
                    Cell::Text(match c.tick_cost {
                        Some((k, s)) => {
                            format!("{} (each {k:.0} kevent(), {s:.0} syscalls)", c.ticks)
                        }
                        None => "none: no tick found (no timerfd, or it never fired idle)".into(),
                    }),
                ]);
                if let Some(e) = &c.no_probe {
                    no_probe.push(format!("{name}: kevent() calls not counted: {e}"));
                }
                costs.push(c);
            }
            Err(e) => t.row(vec![Cell::text(name), Cell::Text(e)]),
        }
    }
    if let [s7, s8] = &costs[..] {
        let less = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        t.row(vec![
            Cell::text("step8 saves"),
            Cell::opt(less(s7.kevent_msg, s8.kevent_msg), 2),
            Cell::num(s7.sys_msg - s8.sys_msg, 2),
            Cell::opt(less(s7.kevent_client, s8.kevent_client), 2),
            Cell::num(s7.sys_client - s8.sys_client, 2),
            Cell::num(s7.ctl_client - s8.ctl_client, 2),
        ]);
        if let (Some(k7), Some(k8)) = (s7.kevent_client, s8.kevent_client) {
            // Step 8 submits a newcomer's EV_ADD with the next wait, and
            // deletes nothing (close() does): two calls fewer per client
            // whatever the timing, so one fewer is a safe floor.
            rep.check(
                "step8: batching saves at least one kevent() call per accepted client against step7 (phase H)",
                k7 - k8 >= 1.0,
                format!("step7 {k7:.2}, step8 {k8:.2} kevent() calls per client"),
            );
        }
    }
    rep.table(t);
    for n in no_probe {
        rep.note(&n);
    }
    rep.note(&format!(
        "per message: two users, {N} lines each read before the next is sent; per client: one user stays while {N} newcomers in turn connect, send a line and leave, less {N} messages; kevent() = calls of {KEVENT} (on macOS and the BSDs each is a system call; on Linux it is kq's library call, and its epoll_wait, epoll_ctl, FIONREAD are the system calls counted); ticks: the timer's firings inside the windows (reads of its timerfd), each subtracted at its cost in an idle window"
    ));
    Ok(())
}

/// One step's figures: an idle window for the tick, then the windows.
fn measure(ctx: &Ctx, name: &str, program: PathBuf) -> Result<Costs, String> {
    let spec = Spec {
        name: name.into(),
        program: program.clone(),
        args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
    };
    let probe = Uprobe::add(&program, KEVENT, "kevent");
    let mut server = ctx.place.start(&spec, &[])?;
    let pid = server.pid();
    let mut extra: Vec<Extra> = Vec::new();
    if let Ok(p) = &probe {
        extra.push(p.extra());
    }
    let kevent_at = probe.as_ref().ok().map(|_| 0);
    // The tick's timerfd: each firing reads it once. The steps register
    // their tick after printing `listening on`: wait for it (at most 2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut timers = sys::timerfds(pid);
    while timers.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        timers = sys::timerfds(pid);
    }
    let tick_at = match timers[..] {
        [fd] => {
            extra.push(Extra {
                event: "syscalls:sys_enter_read".into(),
                filter: Some(format!("fd == {fd}")),
            });
            Some(extra.len() - 1)
        }
        _ => None,
    };
    let fail = |what: &str| format!("{name}: perf counted nothing in the {what} window");
    let pick = |s: &Syscalls, at: Option<usize>| at.map_or(0, |i| s.extra[i]);

    // What a tick costs: the idle server does nothing else.
    let idle = SyscallCount::start_with(pid, Some(IDLE), &extra)
        .ok()
        .and_then(SyscallCount::finish)
        .ok_or_else(|| fail("idle"))?;
    let idle_ticks = pick(&idle, tick_at);
    let tick_cost = (idle_ticks > 0).then(|| {
        (
            pick(&idle, kevent_at) as f64 / idle_ticks as f64,
            idle.total as f64 / idle_ticks as f64,
        )
    });
    let (tick_k, tick_s) = tick_cost.unwrap_or((0.0, 0.0));
    let mut ticks = 0;
    // Counts less the ticks: (kevent() calls, syscalls, epoll_ctl).
    let mut window = |work: &mut dyn FnMut() -> Result<(), String>,
                      what: &str|
     -> Result<(f64, f64, f64), String> {
        let sc = SyscallCount::start_with(pid, None, &extra).map_err(|e| e.to_string())?;
        std::thread::sleep(ATTACH);
        let done = work();
        std::thread::sleep(SETTLE);
        let s = sc.stop().ok_or_else(|| fail(what))?;
        done?;
        let k = pick(&s, tick_at);
        ticks += k;
        Ok((
            pick(&s, kevent_at) as f64 - k as f64 * tick_k,
            s.total as f64 - k as f64 * tick_s,
            s.kinds[EPOLL_CTL] as f64,
        ))
    };
    let addr = server.addr;
    let mut msgs = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..WINDOWS {
        let (mut a, mut b) = (user(addr)?, user(addr)?);
        relay(&mut a, &mut b, 0)?; // both are in the room before counting
        msgs.push(window(
            &mut || (1..=N).try_for_each(|i| relay(&mut a, &mut b, i)),
            "messages",
        )?);
        drop((a, b));
        let mut stay = user(addr)?;
        clients.push(window(
            &mut || {
                (0..N).try_for_each(|i| {
                    let mut newcomer = user(addr)?;
                    relay(&mut newcomer, &mut stay, i)
                })
            },
            "clients",
        )?);
    }
    if server.exited() {
        return Err(format!("{name} exited during the run"));
    }
    let per = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        median(v.iter().map(f).collect()) / N as f64
    };
    let (k_msg, s_msg, c_msg) = (
        per(&msgs, |w| w.0),
        per(&msgs, |w| w.1),
        per(&msgs, |w| w.2),
    );
    Ok(Costs {
        kevent_msg: kevent_at.map(|_| k_msg),
        sys_msg: s_msg,
        kevent_client: kevent_at.map(|_| per(&clients, |w| w.0) - k_msg),
        sys_client: per(&clients, |w| w.1) - s_msg,
        ctl_client: per(&clients, |w| w.2) - c_msg,
        ticks,
        tick_cost,
        no_probe: probe.err(),
    })
}

/// A user of the room: a plain blocking connection with deadlines.
fn user(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// `from` sends line `i`; `to` must receive exactly it.
fn relay(from: &mut TcpStream, to: &mut TcpStream, i: u64) -> Result<(), String> {
    let mut line = [b'a' + (i % 26) as u8; MSG];
    line[MSG - 1] = b'\n';
    from.write_all(&line)
        .map_err(|e| format!("sending line {i}: {e}"))?;
    let mut got = [0u8; MSG];
    to.read_exact(&mut got)
        .map_err(|e| format!("line {i} was not relayed within 5 s: {e}"))?;
    if got != line {
        return Err(format!(
            "line {i} came back as {:?}, not {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&line)
        ));
    }
    Ok(())
}
