//! Phase B: each echo server at 1, 100, 1000 and 10000 connections,
//! relative to its own figures at 100.

use std::time::Duration;

use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::sliced::{paired, Sliced};

/// kq's throughput and CPU per message at 10000 connections relative to
/// its own at 100 (paired slices in phase B).
#[derive(Clone, Copy)]
pub struct Scaling {
    pub msgs_ratio: f64,
    pub cpu_ratio: f64,
}

pub fn run(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Option<Scaling>, String> {
    let max = ctx.hard.saturating_sub(64) as usize;
    let small = [1usize, 100, 1000];
    // The client holds every server's small pools plus one big one.
    let big = 10000.min(max.saturating_sub(echo.len() * 1101));
    let sizes = [small[0], small[1], small[2], big];
    let cycles = 4;
    let warm = Duration::from_millis(100);
    let mut t = Table::new(
        &format!(
            "B. Scaling: 64 B echo, closed loop; one server process per server and size, {cycles} cycles in which each server in turn runs a slice at every size (0.3 s; 0.5 s at {big}, reconnected each cycle); x N=100 = median of per-cycle ratios to its own N=100"
        ),
        &[
            "server",
            "conns",
            "connect ms",
            "msgs/s",
            "x N=100",
            "srv CPU us/msg",
            "CPU x N=100",
            "load busy %",
            "p50 us",
            "p99 us",
        ],
    );
    // run[server][size]: the small sizes stay connected throughout; the
    // big one is started afresh in each server's turn (the descriptor
    // limit does not allow three at once), its figures accumulating.
    let mut run: Vec<Vec<Sliced>> = Vec::new();
    for spec in echo {
        run.push(
            small
                .iter()
                .map(|&n| Sliced::start(ctx, spec, n))
                .collect::<Result<_, _>>()?,
        );
    }
    // The big one: one server at a time, reconnected in each turn.
    let mut bigs: Vec<Option<Sliced>> = echo.iter().map(|_| None).collect();
    for _ in 0..cycles {
        for (i, spec) in echo.iter().enumerate() {
            for s in run[i].iter_mut() {
                s.slice(&spec.name, warm, Duration::from_millis(300))?;
            }
            let b = match bigs[i].as_mut() {
                Some(b) => {
                    b.connect(ctx, spec, big)?;
                    b
                }
                None => bigs[i].insert(Sliced::start(ctx, spec, big)?),
            };
            b.slice(&spec.name, warm, Duration::from_millis(500))?;
            // Only one set of `big` connections fits under the fd limit.
            b.close();
        }
    }
    let mut rows: Vec<Vec<Vec<Cell>>> = sizes.iter().map(|_| Vec::new()).collect();
    let mut kq = None;
    for (i, spec) in echo.iter().enumerate() {
        let mut all: Vec<Sliced> = std::mem::take(&mut run[i]);
        all.extend(bigs[i].take());
        for (z, &n) in sizes.iter().enumerate() {
            let (x_msgs, _) = paired(&all[z], &all[1], |s| s.0);
            let (x_cpu, _) = paired(&all[z], &all[1], |s| s.1);
            let m = all[z].figures();
            if i == 0 && n == 10000 {
                kq = Some(Scaling {
                    msgs_ratio: x_msgs,
                    cpu_ratio: x_cpu,
                });
            }
            rows[z].push(vec![
                Cell::text(&spec.name),
                Cell::num(n as f64, 0),
                Cell::num(m.connect_s * 1000.0, 1),
                Cell::num(m.msgs_s, 0),
                Cell::num(x_msgs, 3),
                Cell::num(m.cpu_us, 2),
                Cell::num(x_cpu, 3),
                Cell::num(m.client_busy, 0),
                Cell::num(m.p50_us, 0),
                Cell::num(m.p99_us, 0),
            ]);
            m.check_answered(
                rep,
                &spec.name,
                &format!("every echo answered at {n} connections"),
            );
        }
    }
    for r in rows.into_iter().flatten() {
        t.row(r);
    }
    rep.table(t);
    Ok(kq)
}
