//! Phase C: latency at a fixed rate (open loop, 20,000 msgs/s over 1000
//! connections), measured from the intended send time.

use std::time::Duration;

use crate::client::Pool;
use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::stats::pct;

pub fn run(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<(), String> {
    let (rate, conns, cycles, slice) = (20_000.0, 1000, 4, Duration::from_millis(500));
    let mut t = Table::new(
        &format!(
            "C. Latency at a fixed rate: open loop, 20,000 msgs/s over 1000 connections, measured from the intended send time; {cycles} cycles of one {:.1} s slice per server in turn",
            slice.as_secs_f64()
        ),
        &[
            "server", "sent", "answered", "skipped", "p50 us", "p90 us", "p99 us", "p99.9 us",
        ],
    );
    let mut live = Vec::new();
    for spec in echo {
        let server = ctx.place.start(spec, &[])?;
        let (pool, _) = Pool::connect(server.addr, conns, Duration::from_secs(20))
            .map_err(|e| format!("{}: {e}", spec.name))?;
        live.push((server, pool));
    }
    let mut sums: Vec<(u64, u64, u64, Vec<u32>)> =
        echo.iter().map(|_| Default::default()).collect();
    for _ in 0..cycles {
        for (i, (_, pool)) in live.iter_mut().enumerate() {
            let r = pool.open_loop(rate, slice);
            let s = &mut sums[i];
            s.0 += r.sent;
            s.1 += r.answered;
            s.2 += r.skipped;
            s.3.extend_from_slice(&r.lat_ns);
        }
    }
    for (spec, (sent, answered, skipped, mut lat)) in echo.iter().zip(sums) {
        rep.check(
            &format!("{}: every open-loop message answered", spec.name),
            sent > 0 && answered == sent,
            format!("{answered} of {sent} answered ({skipped} not sent: socket buffer full)"),
        );
        lat.sort_unstable();
        t.row(vec![
            Cell::text(&spec.name),
            Cell::num(sent as f64, 0),
            Cell::num(answered as f64, 0),
            Cell::num(skipped as f64, 0),
            Cell::num(pct(&lat, 0.5), 0),
            Cell::num(pct(&lat, 0.9), 0),
            Cell::num(pct(&lat, 0.99), 0),
            Cell::num(pct(&lat, 0.999), 0),
        ]);
    }
    for (spec, (server, _)) in echo.iter().zip(live.iter_mut()) {
        if server.exited() {
            return Err(format!("{} exited during the run", spec.name));
        }
    }
    rep.table(t);
    Ok(())
}
