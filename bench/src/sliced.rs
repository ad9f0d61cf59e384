//! Closed-loop measurement in slices: a server and its connections,
//! measured in short slices that take turns with other servers' (phases A
//! and B), and what the slices add up to.

use std::time::Duration;

use crate::client::{Pool, MSG};
use crate::report::Report;
use crate::run::{Ctx, Spec};
use crate::stats::{median, pct};
use crate::sys::{Server, SyscallCount, KINDS};

/// Closed-loop figures for one server: the sum of its slices.
#[derive(Clone, Default)]
pub struct Round {
    pub connect_s: f64,
    pub msgs_s: f64,
    pub mb_s: f64,
    pub cpu_us: f64,
    /// Share of the measured time the server / the load generator was on
    /// a CPU, in %.
    pub srv_busy: f64,
    pub client_busy: f64,
    /// Syscalls per message (median of the perf windows): the total, then
    /// per kind (sys::KINDS).
    pub sys_msg: Option<f64>,
    pub sys_kinds: Option<[f64; KINDS.len()]>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub unanswered: u64,
    pub corrupt: u64,
    pub dead: usize,
    pub answered: u64,
}

impl Round {
    /// Checks that every echo of these slices came back intact: `what`
    /// names them in the check, e.g. `every echo answered, intact`.
    pub fn check_answered(&self, rep: &mut Report, server: &str, what: &str) {
        rep.check(
            &format!("{server}: {what}"),
            self.unanswered == 0 && self.corrupt == 0 && self.dead == 0 && self.answered > 0,
            format!(
                "{} answered, {} unanswered, {} corrupt replies, {} connections dropped",
                self.answered, self.unanswered, self.corrupt, self.dead
            ),
        );
    }
}

/// Syscalls per message: perf counts a window in which the server is idle
/// at both ends and handles exactly the messages of one short closed loop.
pub fn syscalls_per_msg(ctx: &Ctx, server: &Server, pool: &mut Pool) -> Option<(f64, [f64; 5])> {
    if !ctx.perf {
        return None;
    }
    let attach = Duration::from_millis(250);
    let work = Duration::from_millis(400);
    let sc = SyscallCount::start(server.pid(), attach + work + Duration::from_millis(350)).ok()?;
    std::thread::sleep(attach);
    let r = pool.closed_loop(server.pid(), Duration::ZERO, work);
    let count = sc.finish()?;
    if r.total == 0 || r.unanswered != 0 {
        return None;
    }
    let per = |c: u64| c as f64 / r.total as f64;
    Some((per(count.total), count.kinds.map(per)))
}

/// A running server with its connections, measured in short closed-loop
/// slices that alternate with other servers' (or other sizes') slices, so
/// the machine's slow and fast spells (this VM flips between them) fall on
/// every contender alike. The server and its connections can be replaced
/// (`connect` again) while the figures keep accumulating.
pub struct Sliced {
    pub live: Option<(Server, Pool)>,
    pub connect_s: Vec<f64>,
    pub msgs: u64,
    pub secs: f64,
    pub cpu_ns: u64,
    pub client_ns: u64,
    pub lat: Vec<u32>,
    /// Per slice: (msgs/s, server CPU us/msg), for paired ratios.
    pub slices: Vec<(f64, f64)>,
    pub total: u64,
    pub unanswered: u64,
    /// From connection sets already closed.
    pub corrupt: u64,
    pub dead: usize,
    pub sys: Vec<(f64, [f64; 5])>,
}

impl Sliced {
    pub fn start(ctx: &Ctx, spec: &Spec, conns: usize) -> Result<Sliced, String> {
        let mut s = Sliced {
            live: None,
            connect_s: Vec::new(),
            msgs: 0,
            secs: 0.0,
            cpu_ns: 0,
            client_ns: 0,
            lat: Vec::new(),
            slices: Vec::new(),
            total: 0,
            unanswered: 0,
            corrupt: 0,
            dead: 0,
            sys: Vec::new(),
        };
        s.connect(ctx, spec, conns)?;
        Ok(s)
    }

    /// Closes the current server and connections (if any), then starts a
    /// fresh server and connects `conns` to it.
    pub fn connect(&mut self, ctx: &Ctx, spec: &Spec, conns: usize) -> Result<(), String> {
        self.close();
        let server = ctx.place.start(spec, &[])?;
        let (pool, connect) = Pool::connect(server.addr, conns, Duration::from_secs(20))
            .map_err(|e| format!("{}: {e}", spec.name))?;
        self.connect_s.push(connect.as_secs_f64());
        self.live = Some((server, pool));
        Ok(())
    }

    /// Closes the connections (with a reset) and stops the server,
    /// keeping their figures.
    pub fn close(&mut self) {
        if let Some((server, pool)) = self.live.take() {
            self.corrupt += pool.corrupt;
            self.dead += pool.dead();
            drop(pool);
            drop(server);
        }
    }

    /// One slice: `warm` unmeasured, then `measure`, then a drain.
    pub fn slice(&mut self, name: &str, warm: Duration, measure: Duration) -> Result<(), String> {
        let (server, pool) = self.live.as_mut().ok_or("no server running")?;
        let r = pool.closed_loop(server.pid(), warm, measure);
        if server.exited() {
            return Err(format!("{name} exited during the run"));
        }
        self.msgs += r.msgs;
        self.secs += r.secs;
        self.cpu_ns += r.cpu_ns;
        self.client_ns += r.client_cpu_ns;
        self.lat.extend_from_slice(&r.lat_ns);
        self.slices.push((
            r.msgs as f64 / r.secs,
            r.cpu_ns as f64 / r.msgs.max(1) as f64 / 1000.0,
        ));
        self.total += r.total;
        self.unanswered += r.unanswered;
        Ok(())
    }

    pub fn count_syscalls(&mut self, ctx: &Ctx) {
        if let Some((server, pool)) = self.live.as_mut() {
            if let Some(s) = syscalls_per_msg(ctx, server, pool) {
                self.sys.push(s);
            }
        }
    }

    pub fn figures(&mut self) -> Round {
        self.lat.sort_unstable();
        let msgs = self.msgs.max(1) as f64;
        let s = median(self.sys.iter().map(|s| s.0).collect());
        let sys_kinds = (!self.sys.is_empty())
            .then(|| std::array::from_fn(|k| median(self.sys.iter().map(|v| v.1[k]).collect())));
        let (corrupt, dead) = self
            .live
            .as_ref()
            .map_or((0, 0), |(_, p)| (p.corrupt, p.dead()));
        Round {
            connect_s: median(self.connect_s.clone()),
            msgs_s: self.msgs as f64 / self.secs,
            mb_s: self.msgs as f64 * MSG as f64 / self.secs / 1e6,
            cpu_us: self.cpu_ns as f64 / msgs / 1000.0,
            srv_busy: self.cpu_ns as f64 / self.secs / 1e7,
            client_busy: self.client_ns as f64 / self.secs / 1e7,
            sys_msg: s.is_finite().then_some(s),
            sys_kinds,
            p50_us: pct(&self.lat, 0.50),
            p99_us: pct(&self.lat, 0.99),
            unanswered: self.unanswered,
            corrupt: self.corrupt + corrupt,
            dead: self.dead + dead,
            answered: self.total,
        }
    }
}

/// Per-slice ratios a_i / b_i of one figure (0 = msgs/s, 1 = CPU/msg),
/// and their median.
pub fn paired(a: &Sliced, b: &Sliced, f: fn(&(f64, f64)) -> f64) -> (f64, Vec<f64>) {
    let v: Vec<f64> = a
        .slices
        .iter()
        .zip(&b.slices)
        .map(|(x, y)| f(x) / f(y))
        .collect();
    (median(v.clone()), v)
}
