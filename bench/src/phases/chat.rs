//! Phase E: chat fan-out, one sender and 100 or 1000 receivers (step5,
//! and any `--chat NAME=PATH`).

use std::time::Duration;

use crate::client::Pool;
use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::stats::pct;
use crate::sys::SyscallCount;

pub fn run(
    ctx: &Ctx,
    chat: &[Spec],
    skipped: Option<(String, String)>,
    rep: &mut Report,
) -> Result<(), String> {
    let mut t = Table::new(
        "E. Chat fan-out: one sender, every other user receives each 64 B line; closed loop per broadcast, 2 s",
        &[
            "server",
            "receivers",
            "deliveries/s",
            "fan-out p50 us",
            "fan-out p99 us",
            "srv CPU us/delivery",
            "syscalls/delivery",
            "writes/delivery",
            "reads/delivery",
            "lost",
        ],
    );
    if let Some((name, why)) = skipped {
        t.row(vec![
            Cell::Text(name),
            Cell::Text(format!("skipped: {why}")),
        ]);
    }
    for spec in chat {
        for receivers in [100usize, 1000] {
            let users = receivers + 1;
            let extra = ["--max-users".to_string(), (users + 8).to_string()];
            let row = (|| -> Result<Vec<Cell>, String> {
                let mut server = ctx.place.start(spec, &extra)?;
                let (mut pool, _) = Pool::connect(server.addr, users, Duration::from_secs(20))
                    .map_err(|e| e.to_string())?;
                pool.drain_quiet(Duration::from_secs(3));
                if pool.dead() > 0 {
                    return Err(format!(
                        "the server closed {} of {users} connections before the first line (is --max-users honoured?)",
                        pool.dead()
                    ));
                }
                let r = pool.chat(server.pid(), Duration::from_secs(2), u64::MAX);
                let sys = if ctx.perf && r.lost == 0 {
                    let sc = SyscallCount::start(server.pid(), Duration::from_millis(1000)).ok();
                    std::thread::sleep(Duration::from_millis(250));
                    let w = pool.chat(server.pid(), Duration::from_millis(400), u64::MAX);
                    sc.and_then(SyscallCount::finish)
                        .filter(|_| w.lost == 0 && w.deliveries > 0)
                        .map(|c| {
                            let per = |n: u64| n as f64 / w.deliveries as f64;
                            (per(c.total), per(c.kinds[1]), per(c.kinds[0]))
                        })
                } else {
                    None
                };
                if server.exited() {
                    return Err("the server exited".into());
                }
                let mut fan = r.fan_ns;
                fan.sort_unstable();
                Ok(vec![
                    Cell::num(r.deliveries as f64 / r.secs, 0),
                    Cell::num(pct(&fan, 0.5), 0),
                    Cell::num(pct(&fan, 0.99), 0),
                    Cell::num(r.cpu_ns as f64 / r.deliveries.max(1) as f64 / 1000.0, 2),
                    Cell::opt(sys.map(|s| s.0), 3),
                    Cell::opt(sys.map(|s| s.1), 3),
                    Cell::opt(sys.map(|s| s.2), 3),
                    Cell::num(r.lost as f64, 0),
                ])
            })();
            let mut cells = vec![Cell::text(&spec.name), Cell::num(receivers as f64, 0)];
            match row {
                Ok(c) => cells.extend(c),
                Err(e) => cells.push(Cell::Text(format!("failed: {e}"))),
            }
            t.row(cells);
        }
    }
    rep.table(t);
    Ok(())
}
