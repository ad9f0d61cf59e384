//! Phase D: C10K, holding 10000 idle connections (C100K where the
//! descriptor limit allows) and what each costs the server in memory.

use std::time::Duration;

use crate::client::Pool;
use crate::report::{Cell, Report, Table};
use crate::run::{Ctx, Spec};
use crate::sys;

/// Idle-hold figures per server (same order as `echo`).
pub struct Hold {
    pub name: String,
    pub n: usize,
    pub connect_s: f64,
    pub user_b: f64,
}

pub fn run(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Vec<Hold>, String> {
    let max = ctx.hard.saturating_sub(64) as usize;
    let n = if ctx.quick { 1000 } else { 10000.min(max) };
    let mut t = Table::new(
        &format!(
            "D. C10K: hold {n} idle connections, ping every one (user = server VmRSS growth / conn; kernel = Slab growth / socket, both ends)"
        ),
        &[
            "server",
            "conns",
            "connect ms",
            "ping all ms",
            "answered",
            "user B/conn",
            "kernel B/socket",
        ],
    );
    let mut holds = Vec::new();
    for spec in echo {
        holds.push(hold_one(ctx, spec, n, &mut t, rep)?);
    }
    if !ctx.quick {
        // Each side (this process, the server) needs 100,000 descriptors.
        let need = 100_000 + 64;
        if ctx.hard < need {
            t.row(vec![
                Cell::text("C100K"),
                Cell::num(100_000.0, 0),
                Cell::Text(format!(
                    "skipped: RLIMIT_NOFILE hard={} < {need} (raise it with prlimit --nofile or LimitNOFILE)",
                    ctx.hard
                )),
            ]);
        } else {
            hold_one(ctx, &echo[0], 100_000, &mut t, rep)?;
        }
    }
    rep.table(t);
    Ok(holds)
}

fn hold_one(
    ctx: &Ctx,
    spec: &Spec,
    n: usize,
    t: &mut Table,
    rep: &mut Report,
) -> Result<Hold, String> {
    let mut server = ctx.place.start(spec, &[])?;
    // Warm up the code paths and allocator first, so their first-touch
    // pages are not charged to the connections.
    {
        let (mut warm, _) = Pool::connect(server.addr, 16, Duration::from_secs(10))
            .map_err(|e| format!("{}: {e}", spec.name))?;
        warm.ping_all(Duration::from_secs(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let rss0 = sys::status_bytes(server.pid(), "VmRSS");
    let slab0 = sys::meminfo_bytes("Slab");
    let (mut pool, connect) = Pool::connect(server.addr, n, Duration::from_secs(60))
        .map_err(|e| format!("{}: {e}", spec.name))?;
    let (answered, ping) = pool.ping_all(Duration::from_secs(20));
    let rss1 = sys::status_bytes(server.pid(), "VmRSS");
    let slab1 = sys::meminfo_bytes("Slab");
    let user_b = rss1.saturating_sub(rss0) as f64 / n as f64;
    let kern_b = slab1.saturating_sub(slab0) as f64 / (2 * n) as f64;
    let alive = !server.exited();
    t.row(vec![
        Cell::text(&spec.name),
        Cell::num(n as f64, 0),
        Cell::num(connect.as_secs_f64() * 1000.0, 1),
        Cell::num(ping.as_secs_f64() * 1000.0, 1),
        Cell::num(answered as f64, 0),
        Cell::num(user_b, 0),
        Cell::num(kern_b, 0),
    ]);
    rep.check(
        &format!("{}: all {n} held connections answer a ping", spec.name),
        answered == n && alive && pool.corrupt == 0,
        format!(
            "{answered} of {n} answered, {} corrupt, server {}",
            pool.corrupt,
            if alive { "running" } else { "exited" }
        ),
    );
    Ok(Hold {
        name: spec.name.clone(),
        n,
        connect_s: connect.as_secs_f64(),
        user_b,
    })
}
