//! The bench's phases, tables and targets (see the module docs in mod.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use super::client::{Pool, MSG};
use super::report::{Cell, Report, Table};
use super::sys::{self, Server, SyscallCount, KINDS};

/// Entry point; `args` are the arguments after `bench`.
pub fn main(args: &[String]) -> ExitCode {
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1..]);
    }
    let opts = match Opts::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("harness bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness bench: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: harness bench [--quick] [--json FILE] [--step3 PATH] [--step5 PATH] [--chat NAME=PATH]...
       harness bench serve epoll|tokio PORT   (reference servers; needs --features bench-refs)";

fn serve(args: &[String]) -> ExitCode {
    let (Some(kind), Some(port)) = (
        args.first(),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    #[cfg(feature = "bench-refs")]
    {
        match super::refs::serve(kind, port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("harness bench serve {kind}: {e}");
                ExitCode::FAILURE
            }
        }
    }
    #[cfg(not(feature = "bench-refs"))]
    {
        eprintln!("harness bench serve {kind} {port}: built without the reference servers; rebuild with --features bench-refs");
        ExitCode::FAILURE
    }
}

struct Opts {
    quick: bool,
    json: Option<PathBuf>,
    step3: Option<PathBuf>,
    step5: Option<PathBuf>,
    chat: Vec<(String, PathBuf)>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            quick: false,
            json: None,
            step3: None,
            step5: None,
            chat: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--quick" => o.quick = true,
                "--json" => o.json = Some(value()?.into()),
                "--step3" => o.step3 = Some(value()?.into()),
                "--step5" => o.step5 = Some(value()?.into()),
                "--chat" => {
                    let v = value()?;
                    let (name, path) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--chat wants NAME=PATH, got `{v}`"))?;
                    o.chat.push((name.into(), path.into()));
                }
                "-h" | "--help" => return Err("help".into()),
                _ => return Err(format!("unknown argument `{a}`")),
            }
        }
        Ok(o)
    }
}

/// How to start one kind of server.
#[derive(Clone)]
struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// Where servers and the load generator run.
struct Placement {
    pinned: bool,
}

impl Placement {
    /// Starts a server on CPU 0 (it inherits the affinity the parent has
    /// while spawning), then moves the parent back to CPU 1.
    fn start(&self, spec: &Spec, extra: &[String]) -> Result<Server, String> {
        if self.pinned {
            sys::pin_self(0);
        }
        let mut args = spec.args.clone();
        args.extend_from_slice(extra);
        let s = Server::start(&spec.name, &spec.program, &args);
        if self.pinned {
            sys::pin_self(1);
        }
        s.map_err(|e| e.to_string())
    }
}

fn run(opts: &Opts) -> Result<ExitCode, String> {
    let started = Instant::now();
    let (soft, hard) = sys::raise_nofile();
    let cpus = sys::cpus();
    let place = Placement { pinned: cpus >= 2 };
    let perf = sys::perf_available();
    let mut rep = Report::default();
    rep.fact("cores", format!("{cpus} ({})", sys::cpu_model()));
    rep.fact(
        "CPU placement",
        if place.pinned {
            "servers pinned to CPU 0, load generator to CPU 1".into()
        } else {
            "unpinned (fewer than 2 CPUs)".into()
        },
    );
    rep.fact(
        "fd limit (RLIMIT_NOFILE)",
        format!("soft {soft}, hard {hard}"),
    );
    rep.fact("kernel", sys::read_trim("/proc/sys/kernel/osrelease"));
    rep.fact(
        "ip_local_port_range",
        sys::read_trim("/proc/sys/net/ipv4/ip_local_port_range"),
    );
    rep.fact("somaxconn", sys::read_trim("/proc/sys/net/core/somaxconn"));
    rep.fact(
        "syscall counting",
        if perf {
            "perf stat -p PID, tracepoints raw_syscalls:sys_enter and syscalls:sys_enter_{read,write,epoll_wait,...}, in separate 0.4 s windows".into()
        } else {
            "unavailable: perf not installed (Debian package linux-perf)".into()
        },
    );
    rep.fact(
        "reference servers",
        if cfg!(feature = "bench-refs") {
            "epoll, tokio current-thread".into()
        } else {
            "not built (use --features bench-refs)".into()
        },
    );
    rep.fact("mode", if opts.quick { "--quick" } else { "full" }.into());
    if cfg!(debug_assertions) {
        rep.fact("warning", "debug build: run with --release".into());
    }
    rep.print_facts();

    let (step3, step5) = locate_steps(opts)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut echo = vec![Spec {
        name: "kq (step3)".into(),
        program: step3,
        // Without --quiet the step narrates every event on stderr: a
        // write(2) per message that the references do not make.
        args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
    }];
    if cfg!(feature = "bench-refs") {
        for kind in ["epoll", "tokio"] {
            echo.push(Spec {
                name: kind.into(),
                program: exe.clone(),
                args: ["bench", "serve", kind, "0"].map(String::from).to_vec(),
            });
        }
    }
    let mut chat = Vec::new();
    let mut chat_skipped = None;
    match step5 {
        Ok(program) => chat.push(Spec {
            name: "step5".into(),
            program,
            args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
        }),
        Err(e) => chat_skipped = Some(("step5".to_string(), e)),
    }
    for (name, path) in &opts.chat {
        chat.push(Spec {
            name: name.clone(),
            program: path.clone(),
            args: vec!["--port".into(), "0".into()],
        });
    }
    if place.pinned {
        sys::pin_self(1);
    }

    let ctx = Ctx {
        place,
        perf,
        quick: opts.quick,
        hard,
    };
    let mut busy = Vec::new();
    let l0 = sys::Load::now();
    let ratios = phase_ratios(&ctx, &echo, &mut rep)?;
    others(&mut rep, "A", l0, &mut busy);
    let mut scaling = None;
    if !opts.quick {
        let l0 = sys::Load::now();
        scaling = phase_scaling(&ctx, &echo, &mut rep)?;
        others(&mut rep, "B", l0, &mut busy);
        let l0 = sys::Load::now();
        phase_latency(&ctx, &echo, &mut rep)?;
        others(&mut rep, "C", l0, &mut busy);
    }
    let l0 = sys::Load::now();
    let holds = phase_hold(&ctx, &echo, &mut rep)?;
    others(&mut rep, "D", l0, &mut busy);
    if !opts.quick {
        let l0 = sys::Load::now();
        phase_chat(&ctx, &chat, chat_skipped, &mut rep)?;
        others(&mut rep, "E", l0, &mut busy);
    }
    // CI runs the script on its own; the full run shows the figure too.
    let translation = if opts.quick {
        Err("not run by --quick (see scripts/translation-cost.sh)".into())
    } else {
        phase_translation(&mut rep)
    };
    targets(&ratios, &holds, scaling, &translation, &mut rep);
    sys::unpin_self();
    rep.fact_late(
        "other load",
        if busy.is_empty() {
            format!("under {OTHERS_MAX:.0} % of a CPU in every phase")
        } else {
            format!(
                "phase{} {} ran beside other processes (> {OTHERS_MAX:.0} % of a CPU): their timing figures are disturbed; rerun on a quiet machine (the deterministic checks still hold)",
                if busy.len() == 1 { "" } else { "s" },
                busy.join(", ")
            )
        },
    );
    rep.fact_late(
        "bench wall time",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    rep.print_rest();
    if let Some(path) = &opts.json {
        std::fs::write(path, rep.json()).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(if rep.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Above this much CPU used by other processes during a phase (% of one
/// CPU), its timing figures are flagged: on two cores, a build next door
/// takes CPU from the server or the load generator.
const OTHERS_MAX: f64 = 10.0;

/// Notes how much CPU other processes used during the phase that began at
/// `l0`, and remembers the phase when that disturbs its timings.
fn others(rep: &mut Report, phase: &str, l0: sys::Load, busy: &mut Vec<String>) {
    let pct = l0.others_since();
    let flag = pct > OTHERS_MAX;
    rep.note(&format!(
        "other processes on this machine used {pct:.0} % of a CPU during phase {phase}{}",
        if flag { ": timings DISTURBED" } else { "" }
    ));
    if flag {
        busy.push(phase.to_string());
    }
}

/// Finds step3 and step5 (built next to this executable unless given).
/// step3 is required; without a working step5 only the chat phase is
/// skipped, with the reason.
fn locate_steps(opts: &Opts) -> Result<(PathBuf, Result<PathBuf, String>), String> {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cannot find the bench's own directory")?;
    let build = |name: &str| -> Result<(), String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        eprintln!("building {name} (release) ...");
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--release", "-p", name])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .map_err(|e| format!("{cargo}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo build --release -p {name}` failed ({status})"
            ))
        }
    };
    let pick = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf, String> {
        if given.is_none() {
            build(name)?;
        }
        let p = given.clone().unwrap_or_else(|| dir.join(name));
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{} not found", p.display()))
        }
    };
    Ok((pick(&opts.step3, "step3")?, pick(&opts.step5, "step5")))
}

struct Ctx {
    place: Placement,
    perf: bool,
    quick: bool,
    hard: u64,
}

/// Closed-loop figures for one server: the sum of its slices.
#[derive(Clone, Default)]
struct Round {
    connect_s: f64,
    msgs_s: f64,
    mb_s: f64,
    cpu_us: f64,
    /// Share of the measured time the server / the load generator was on
    /// a CPU, in %.
    srv_busy: f64,
    client_busy: f64,
    /// Syscalls per message (median of the perf windows): the total, then
    /// per kind (sys::KINDS).
    sys_msg: Option<f64>,
    sys_kinds: Option<[f64; KINDS.len()]>,
    p50_us: f64,
    p99_us: f64,
    unanswered: u64,
    corrupt: u64,
    dead: usize,
    answered: u64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// "q25-q75" of the finite values (nearest rank): how far the cycles
/// disagree, without letting one stalled slice dominate.
fn middle_half(v: &[f64], decimals: usize) -> Cell {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return Cell::Text(String::new());
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    Cell::Text(format!("{:.decimals$}-{:.decimals$}", q(0.25), q(0.75)))
}

/// Syscalls per message: perf counts a window in which the server is idle
/// at both ends and handles exactly the messages of one short closed loop.
fn syscalls_per_msg(ctx: &Ctx, server: &Server, pool: &mut Pool) -> Option<(f64, [f64; 5])> {
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
struct Sliced {
    live: Option<(Server, Pool)>,
    connect_s: Vec<f64>,
    msgs: u64,
    secs: f64,
    cpu_ns: u64,
    client_ns: u64,
    lat: Vec<u32>,
    /// Per slice: (msgs/s, server CPU us/msg), for paired ratios.
    slices: Vec<(f64, f64)>,
    total: u64,
    unanswered: u64,
    /// From connection sets already closed.
    corrupt: u64,
    dead: usize,
    sys: Vec<(f64, [f64; 5])>,
}

impl Sliced {
    fn start(ctx: &Ctx, spec: &Spec, conns: usize) -> Result<Sliced, String> {
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
    fn connect(&mut self, ctx: &Ctx, spec: &Spec, conns: usize) -> Result<(), String> {
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
    fn close(&mut self) {
        if let Some((server, pool)) = self.live.take() {
            self.corrupt += pool.corrupt;
            self.dead += pool.dead();
            drop(pool);
            drop(server);
        }
    }

    /// One slice: `warm` unmeasured, then `measure`, then a drain.
    fn slice(&mut self, name: &str, warm: Duration, measure: Duration) -> Result<(), String> {
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

    fn count_syscalls(&mut self, ctx: &Ctx) {
        if let Some((server, pool)) = self.live.as_mut() {
            if let Some(s) = syscalls_per_msg(ctx, server, pool) {
                self.sys.push(s);
            }
        }
    }

    fn figures(&mut self) -> Round {
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
fn paired(a: &Sliced, b: &Sliced, f: fn(&(f64, f64)) -> f64) -> (f64, Vec<f64>) {
    let v: Vec<f64> = a
        .slices
        .iter()
        .zip(&b.slices)
        .map(|(x, y)| f(x) / f(y))
        .collect();
    (median(v.clone()), v)
}

/// Figures per server, in the order of `echo`, and the paired ratios of
/// the first (kq) to each other one.
struct Ratios {
    names: Vec<String>,
    med: Vec<Round>,
    /// Per server i (0 = kq itself): median over slices of kq/i for
    /// msgs/s and for server CPU per message.
    msgs_ratio: Vec<f64>,
    cpu_ratio: Vec<f64>,
}

fn phase_ratios(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Ratios, String> {
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
        rep.check(
            &format!("{}: every echo answered, intact", spec.name),
            r.unanswered == 0 && r.corrupt == 0 && r.dead == 0 && r.answered > 0,
            format!(
                "{} answered, {} unanswered, {} corrupt replies, {} connections dropped",
                r.answered, r.unanswered, r.corrupt, r.dead
            ),
        );
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

/// kq's throughput and CPU per message at 10000 connections relative to
/// its own at 100 (paired slices in phase B).
#[derive(Clone, Copy)]
struct Scaling {
    msgs_ratio: f64,
    cpu_ratio: f64,
}

fn phase_scaling(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Option<Scaling>, String> {
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
            rep.check(
                &format!("{}: every echo answered at {n} connections", spec.name),
                m.unanswered == 0 && m.corrupt == 0 && m.dead == 0 && m.answered > 0,
                format!(
                    "{} answered, {} unanswered, {} corrupt replies, {} connections dropped",
                    m.answered, m.unanswered, m.corrupt, m.dead
                ),
            );
        }
    }
    for r in rows.into_iter().flatten() {
        t.row(r);
    }
    rep.table(t);
    Ok(kq)
}

fn phase_latency(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<(), String> {
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

/// Idle-hold figures per server (same order as `echo`).
struct Hold {
    name: String,
    n: usize,
    connect_s: f64,
    user_b: f64,
}

fn phase_hold(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Vec<Hold>, String> {
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

fn phase_chat(
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

/// Runs scripts/translation-cost.sh (callgrind; needs valgrind) and shows
/// its figures; returns kq's added instructions per returned event.
fn phase_translation(rep: &mut Report) -> Result<f64, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/translation-cost.sh");
    let mut t = Table::new(
        "F. Translation cost: user-space instructions per returned event (callgrind, scripts/translation-cost.sh, 64 ready sockets; deterministic)",
        &["loop", "instructions/event"],
    );
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let result = if !found {
        Err(
            "not measured: valgrind not installed (.ci/run installs it: apt-get install valgrind)"
                .to_string(),
        )
    } else {
        eprintln!("running {} ...", script.display());
        match Command::new(&script).output() {
            Err(e) => Err(format!("{}: {e}", script.display())),
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let grab = |label: &str| -> Option<f64> {
                    text.lines()
                        .find_map(|l| l.trim().strip_prefix(label))?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                };
                match (
                    grab("kq::kevent()"),
                    grab("raw epoll_wait"),
                    grab("added by kq"),
                ) {
                    (Some(kq), Some(ep), Some(added)) => {
                        t.row(vec![Cell::text("kq::kevent()"), Cell::num(kq, 1)]);
                        t.row(vec![Cell::text("raw epoll_wait"), Cell::num(ep, 1)]);
                        t.row(vec![Cell::text("added by kq"), Cell::num(added, 1)]);
                        Ok(added)
                    }
                    _ => Err(format!(
                        "failed: {} printed no figures ({}): {}",
                        script.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    )),
                }
            }
        }
    };
    if let Err(e) = &result {
        t.row(vec![Cell::text("kq::kevent()"), Cell::Text(e.clone())]);
    }
    rep.table(t);
    result
}

fn targets(
    ratios: &Ratios,
    holds: &[Hold],
    scaling: Option<Scaling>,
    translation: &Result<f64, String>,
    rep: &mut Report,
) {
    let k = &ratios.med[0];
    let by = |name: &str| ratios.names.iter().position(|n| n == name);
    let hold = |name: &str| holds.iter().find(|h| h.name == name);
    let epoll = by("epoll");
    let tokio = by("tokio");
    // Compared as shown (3 decimals), so float noise in exact counts (3.0
    // syscalls - 2.0) cannot turn "1.000" into a miss.
    let cmp = |v: Option<f64>, limit: f64, le: bool| -> Option<bool> {
        v.filter(|x| x.is_finite())
            .map(|x| (x * 1000.0).round() / 1000.0)
            .map(|x| if le { x <= limit } else { x >= limit })
    };
    let f = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |x| format!("{x:.d$}"));
    let mut row = |name: &str, want: &str, v: Option<f64>, met: Option<bool>, d: usize| {
        rep.target(name, want, f(v, d), met);
    };
    let r = epoll.map(|e| ratios.cpu_ratio[e]);
    row(
        "kq/epoll server CPU per message",
        "<= 1.05x",
        r,
        cmp(r, 1.05, true),
        3,
    );
    let r = epoll.map(|e| ratios.msgs_ratio[e]);
    row("kq/epoll throughput", ">= 0.95x", r, cmp(r, 0.95, false), 3);
    let r = epoll.and_then(|e| Some(k.sys_msg? - ratios.med[e].sys_msg?));
    row(
        "kq - epoll syscalls per message",
        "<= +1",
        r,
        cmp(r, 1.0, true),
        3,
    );
    // The deterministic part of that difference: all but the waits.
    let besides = |r: &Round| Some(r.sys_msg? - r.sys_kinds?[2]);
    let r = epoll.and_then(|e| Some(besides(k)? - besides(&ratios.med[e])?));
    row(
        "  the same, besides epoll_wait",
        "<= +1",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = tokio.map(|t| ratios.msgs_ratio[t]);
    row("kq/tokio throughput", ">= 1.0x", r, cmp(r, 1.0, false), 3);
    let kh = hold(&ratios.names[0]);
    let r = kh.and_then(|kh| Some(kh.user_b / hold("tokio")?.user_b));
    row(
        "kq/tokio user memory per idle connection",
        "<= 0.125x",
        r,
        cmp(r, 0.125, true),
        3,
    );
    let r = kh.filter(|h| h.n >= 10000).map(|h| h.connect_s);
    row(
        "10000 connections accepted (kq, phase D), s",
        "<= 1 s",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = kh.map(|h| h.user_b);
    row(
        "kq user memory per idle connection, B",
        "<= 256 B",
        r,
        cmp(r, 256.0, true),
        0,
    );
    let r = scaling.map(|s| s.msgs_ratio);
    row(
        "kq throughput at 10000 / at 100 connections",
        ">= 0.75x",
        r,
        cmp(r, 0.75, false),
        3,
    );
    let r = scaling.map(|s| s.cpu_ratio);
    row(
        "  (kq server CPU/msg at 10000 / at 100)",
        "context",
        r,
        None,
        3,
    );
    match translation {
        Ok(v) => row(
            "translation cost per returned event",
            "<= 150 instr",
            Some(*v),
            cmp(Some(*v), 150.0, true),
            1,
        ),
        Err(e) => rep.target(
            "translation cost per returned event",
            "<= 150 instr",
            e.clone(),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles are nearest-rank over the sorted samples, in microseconds.
    #[test]
    fn percentiles_are_nearest_rank_in_microseconds() {
        let ns: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        for (p, want) in [(0.5, 50.0), (0.99, 99.0), (0.999, 100.0), (0.0, 1.0)] {
            let got = pct(&ns, p);
            assert_eq!(got, want, "p{p} of 1..=100 us: expected {want}, got {got}");
        }
        assert!(
            pct(&[], 0.5).is_nan(),
            "no samples must give NaN (shown n/a)"
        );
    }

    /// The median ignores missing (NaN) rounds and averages the middle pair.
    #[test]
    fn median_skips_missing_rounds_and_averages_the_middle_pair() {
        let got = median(vec![4.0, f64::NAN, 1.0, 3.0, 2.0]);
        assert_eq!(
            got, 2.5,
            "median of [4, NaN, 1, 3, 2]: expected 2.5, got {got}"
        );
        let got = median(vec![5.0, 1.0, 3.0]);
        assert_eq!(got, 3.0, "median of [5, 1, 3]: expected 3, got {got}");
    }

    /// The spread shown under a ratio is its 25th-75th percentile
    /// (nearest rank), ignoring missing values; one value shows nothing.
    #[test]
    fn middle_half_is_the_quartiles_of_the_cycles() {
        let v = [1.4, 0.9, f64::NAN, 1.0, 1.1, 0.5, 1.2, 1.0, 3.0];
        let got = match middle_half(&v, 2) {
            Cell::Text(t) => t,
            _ => String::from("not text"),
        };
        assert_eq!(got, "0.90-1.20", "quartiles of {v:?}");
        let one = match middle_half(&[1.0], 2) {
            Cell::Text(t) => t,
            _ => String::from("not text"),
        };
        assert_eq!(one, "", "a single cycle has no spread to show");
    }

    /// Options parse as documented and unknown ones are refused by name.
    #[test]
    fn options_parse_and_unknown_ones_are_refused() {
        let args: Vec<String> = ["--quick", "--json", "out.json", "--chat", "beyond=/bin/x"]
            .map(String::from)
            .to_vec();
        let o = Opts::parse(&args).expect("valid options");
        assert!(o.quick, "--quick not recorded from {args:?}");
        assert_eq!(o.json.as_deref(), Some(Path::new("out.json")));
        assert_eq!(
            o.chat,
            vec![("beyond".to_string(), PathBuf::from("/bin/x"))]
        );
        let err = Opts::parse(&["--fast".to_string()]).err();
        assert_eq!(err.as_deref(), Some("unknown argument `--fast`"));
        let err = Opts::parse(&["--json".to_string()]).err();
        assert_eq!(err.as_deref(), Some("--json needs a value"));
    }
}
