//! The bench's phases, tables and targets (see the module docs in mod.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use super::client::{Pool, MSG};
use super::report::{Cell, Report, Table};
use super::sys::{self, Server, SyscallCount};

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
            "perf stat -e raw_syscalls:sys_enter -p PID".into()
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
    let mut chat = vec![Spec {
        name: "step5".into(),
        program: step5,
        args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
    }];
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
    let ratios = phase_ratios(&ctx, &echo, &mut rep)?;
    if !opts.quick {
        phase_scaling(&ctx, &echo, &ratios, &mut rep)?;
        phase_latency(&ctx, &echo, &mut rep)?;
    }
    let holds = phase_hold(&ctx, &echo, &mut rep)?;
    if !opts.quick {
        phase_chat(&ctx, &chat, &mut rep)?;
    }
    let scaling_kq = rep.scaling_kq;
    targets(&ratios, &holds, &scaling_kq, &mut rep);
    sys::unpin_self();
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

/// Builds step3 and step5 next to this executable unless given.
fn locate_steps(opts: &Opts) -> Result<(PathBuf, PathBuf), String> {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cannot find the bench's own directory")?;
    if opts.step3.is_none() || opts.step5.is_none() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        eprintln!("building step3 and step5 (release) ...");
        let status = Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "step3",
                "-p",
                "step5",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .map_err(|e| format!("{cargo}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "`{cargo} build --release -p step3 -p step5` failed ({status})"
            ));
        }
    }
    let pick = |given: &Option<PathBuf>, name: &str| {
        let p = given.clone().unwrap_or_else(|| dir.join(name));
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{} not found", p.display()))
        }
    };
    Ok((pick(&opts.step3, "step3")?, pick(&opts.step5, "step5")?))
}

struct Ctx {
    place: Placement,
    perf: bool,
    quick: bool,
    hard: u64,
}

/// One closed-loop round's figures.
#[derive(Clone, Default)]
struct Round {
    msgs_s: f64,
    mb_s: f64,
    cpu_us: f64,
    sys_msg: Option<f64>,
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

/// Syscalls per message: perf counts a window in which the server is idle
/// at both ends and handles exactly the messages of one short closed loop.
fn syscalls_per_msg(ctx: &Ctx, server: &Server, pool: &mut Pool) -> Option<f64> {
    if !ctx.perf {
        return None;
    }
    let attach = Duration::from_millis(250);
    let work = Duration::from_millis(400);
    let sc = SyscallCount::start(server.pid(), attach + work + Duration::from_millis(350)).ok()?;
    std::thread::sleep(attach);
    let r = pool.closed_loop(server.pid(), Duration::ZERO, work);
    let count = sc.finish()?;
    (r.total > 0 && r.unanswered == 0).then(|| count as f64 / r.total as f64)
}

fn echo_round(ctx: &Ctx, spec: &Spec, conns: usize, measure: Duration) -> Result<Round, String> {
    let mut server = ctx.place.start(spec, &[])?;
    let (mut pool, _) = Pool::connect(server.addr, conns, Duration::from_secs(20))
        .map_err(|e| format!("{}: {e}", spec.name))?;
    let r = pool.closed_loop(server.pid(), Duration::from_millis(300), measure);
    let sys_msg = syscalls_per_msg(ctx, &server, &mut pool);
    let mut lat = r.lat_ns;
    lat.sort_unstable();
    let msgs = r.msgs.max(1) as f64;
    let round = Round {
        msgs_s: r.msgs as f64 / r.secs,
        mb_s: r.msgs as f64 * MSG as f64 / r.secs / 1e6,
        cpu_us: r.cpu_ns as f64 / msgs / 1000.0,
        sys_msg,
        p50_us: pct(&lat, 0.50),
        p99_us: pct(&lat, 0.99),
        unanswered: r.unanswered,
        corrupt: pool.corrupt,
        dead: pool.dead(),
        answered: r.total,
    };
    if server.exited() {
        return Err(format!("{} exited during the run", spec.name));
    }
    Ok(round)
}

/// Medians per server, in the order of `echo`.
struct Ratios {
    names: Vec<String>,
    med: Vec<Round>,
}

fn phase_ratios(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<Ratios, String> {
    let rounds = if ctx.quick { 1 } else { 5 };
    let measure = Duration::from_millis(if ctx.quick { 1000 } else { 1200 });
    let mut all: Vec<Vec<Round>> = vec![Vec::new(); echo.len()];
    for _ in 0..rounds {
        for (i, spec) in echo.iter().enumerate() {
            all[i].push(echo_round(ctx, spec, 100, measure)?);
        }
    }
    let med: Vec<Round> = all
        .iter()
        .map(|rs| {
            let m = |f: fn(&Round) -> f64| median(rs.iter().map(f).collect());
            let s = median(rs.iter().filter_map(|r| r.sys_msg).collect());
            Round {
                msgs_s: m(|r| r.msgs_s),
                mb_s: m(|r| r.mb_s),
                cpu_us: m(|r| r.cpu_us),
                sys_msg: s.is_finite().then_some(s),
                p50_us: m(|r| r.p50_us),
                p99_us: m(|r| r.p99_us),
                unanswered: rs.iter().map(|r| r.unanswered).sum(),
                corrupt: rs.iter().map(|r| r.corrupt).sum(),
                dead: rs.iter().map(|r| r.dead).sum(),
                answered: rs.iter().map(|r| r.answered).sum(),
            }
        })
        .collect();
    let mut t = Table::new(
        &format!(
            "A. Ratios: 64 B echo, 100 connections, closed loop (median of {rounds} interleaved round{})",
            if rounds == 1 { "" } else { "s" }
        ),
        &[
            "server",
            "msgs/s",
            "MB/s",
            "srv CPU us/msg",
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
            Cell::opt(r.sys_msg, 2),
            Cell::num(r.p50_us, 0),
            Cell::num(r.p99_us, 0),
        ]);
    }
    for (i, spec) in echo.iter().enumerate().skip(1) {
        let (k, o) = (&med[0], &med[i]);
        t.row(vec![
            Cell::text(&format!("ratio kq/{}", spec.name)),
            Cell::num(k.msgs_s / o.msgs_s, 3),
            Cell::num(k.mb_s / o.mb_s, 3),
            Cell::num(k.cpu_us / o.cpu_us, 3),
            match (k.sys_msg, o.sys_msg) {
                (Some(a), Some(b)) => Cell::num(a / b, 3),
                _ => Cell::na(),
            },
            Cell::num(k.p50_us / o.p50_us, 3),
            Cell::num(k.p99_us / o.p99_us, 3),
        ]);
    }
    rep.table(t);
    for (spec, r) in echo.iter().zip(&med) {
        rep.check(
            &format!("{}: every echo answered, intact", spec.name),
            r.unanswered == 0 && r.corrupt == 0 && r.dead == 0 && r.answered > 0,
            format!(
                "{} answered, {} unanswered, {} corrupt replies, {} connections dropped",
                r.answered, r.unanswered, r.corrupt, r.dead
            ),
        );
        // Two syscalls (read + write) per message is the floor; epoll_wait
        // batching keeps the rest small. Each round is one exact count.
        let (lo, hi) = (1.9, 4.0);
        let rounds_sys: Vec<f64> = all[echo.iter().position(|s| s.name == spec.name).unwrap_or(0)]
            .iter()
            .filter_map(|r| r.sys_msg)
            .collect();
        rep.check(
            &format!("{}: syscalls per message in [{lo}, {hi}]", spec.name),
            !rounds_sys.is_empty()
                && rounds_sys.len() == rounds
                && rounds_sys.iter().all(|&s| (lo..=hi).contains(&s)),
            if ctx.perf {
                format!("per round: {rounds_sys:.2?}")
            } else {
                "perf not installed (Debian package linux-perf)".into()
            },
        );
    }
    Ok(Ratios {
        names: echo.iter().map(|s| s.name.clone()).collect(),
        med,
    })
}

fn phase_scaling(
    ctx: &Ctx,
    echo: &[Spec],
    ratios: &Ratios,
    rep: &mut Report,
) -> Result<(), String> {
    let mut t = Table::new(
        "B. Scaling: 64 B echo, closed loop, one 1.2 s round each (x N=100 = vs own median in A)",
        &[
            "server",
            "conns",
            "connect ms",
            "msgs/s",
            "x N=100",
            "srv CPU us/msg",
            "p50 us",
            "p99 us",
        ],
    );
    for n in [1usize, 1000, 10000] {
        let n = n.min(ctx.hard.saturating_sub(64) as usize);
        for (i, spec) in echo.iter().enumerate() {
            let mut server = ctx.place.start(spec, &[])?;
            let (mut pool, connect) = Pool::connect(server.addr, n, Duration::from_secs(20))
                .map_err(|e| format!("{}: {e}", spec.name))?;
            let r = pool.closed_loop(
                server.pid(),
                Duration::from_millis(300),
                Duration::from_millis(1200),
            );
            let mut lat = r.lat_ns;
            lat.sort_unstable();
            let msgs_s = r.msgs as f64 / r.secs;
            if i == 0 && n == 10000 {
                rep.scaling_kq = Some((msgs_s, connect.as_secs_f64()));
            }
            if server.exited() {
                return Err(format!("{} exited during the run", spec.name));
            }
            t.row(vec![
                Cell::text(&spec.name),
                Cell::num(n as f64, 0),
                Cell::num(connect.as_secs_f64() * 1000.0, 1),
                Cell::num(msgs_s, 0),
                Cell::num(msgs_s / ratios.med[i].msgs_s, 3),
                Cell::num(r.cpu_ns as f64 / r.msgs.max(1) as f64 / 1000.0, 2),
                Cell::num(pct(&lat, 0.5), 0),
                Cell::num(pct(&lat, 0.99), 0),
            ]);
        }
    }
    rep.table(t);
    Ok(())
}

fn phase_latency(ctx: &Ctx, echo: &[Spec], rep: &mut Report) -> Result<(), String> {
    let (rate, conns) = (20_000.0, 1000);
    let mut t = Table::new(
        "C. Latency at a fixed rate: open loop, 20,000 msgs/s over 1000 connections, 2 s, from the intended send time",
        &[
            "server", "sent", "answered", "skipped", "p50 us", "p90 us", "p99 us", "p99.9 us",
        ],
    );
    for spec in echo {
        let server = ctx.place.start(spec, &[])?;
        let (mut pool, _) = Pool::connect(server.addr, conns, Duration::from_secs(20))
            .map_err(|e| format!("{}: {e}", spec.name))?;
        let r = pool.open_loop(rate, Duration::from_secs(2));
        let mut lat = r.lat_ns;
        lat.sort_unstable();
        t.row(vec![
            Cell::text(&spec.name),
            Cell::num(r.sent as f64, 0),
            Cell::num(r.answered as f64, 0),
            Cell::num(r.skipped as f64, 0),
            Cell::num(pct(&lat, 0.5), 0),
            Cell::num(pct(&lat, 0.9), 0),
            Cell::num(pct(&lat, 0.99), 0),
            Cell::num(pct(&lat, 0.999), 0),
        ]);
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

fn phase_chat(ctx: &Ctx, chat: &[Spec], rep: &mut Report) -> Result<(), String> {
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
            "lost",
        ],
    );
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
                        .map(|c| c as f64 / w.deliveries as f64)
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
                    Cell::opt(sys, 2),
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

fn targets(ratios: &Ratios, holds: &[Hold], scaling_kq: &Option<(f64, f64)>, rep: &mut Report) {
    let k = &ratios.med[0];
    let by = |name: &str| {
        ratios
            .names
            .iter()
            .position(|n| n == name)
            .map(|i| &ratios.med[i])
    };
    let hold = |name: &str| holds.iter().find(|h| h.name == name);
    let epoll = by("epoll");
    let tokio = by("tokio");
    let cmp = |v: Option<f64>, limit: f64, le: bool| -> Option<bool> {
        v.filter(|x| x.is_finite())
            .map(|x| if le { x <= limit } else { x >= limit })
    };
    let f = |v: Option<f64>, d: usize| v.map_or("n/a".into(), |x| format!("{x:.d$}"));
    let mut row = |name: &str, want: &str, v: Option<f64>, met: Option<bool>, d: usize| {
        rep.target(name, want, f(v, d), met);
    };
    let r = epoll.map(|e| k.cpu_us / e.cpu_us);
    row(
        "kq/epoll server CPU per message",
        "<= 1.05x",
        r,
        cmp(r, 1.05, true),
        3,
    );
    let r = epoll.map(|e| k.msgs_s / e.msgs_s);
    row("kq/epoll throughput", ">= 0.95x", r, cmp(r, 0.95, false), 3);
    let r = epoll.and_then(|e| Some(k.sys_msg? - e.sys_msg?));
    row(
        "kq - epoll syscalls per message",
        "<= +1",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = tokio.map(|t| k.msgs_s / t.msgs_s);
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
        "10000 connections accepted (kq, C10K connect)",
        "<= 1 s",
        r,
        cmp(r, 1.0, true),
        3,
    );
    let r = kh.map(|h| h.user_b);
    row(
        "kq user memory per idle connection",
        "<= 256 B",
        r,
        cmp(r, 256.0, true),
        0,
    );
    let r = scaling_kq.map(|(m, _)| m / k.msgs_s);
    row(
        "kq throughput at 10000 / at 100 connections",
        ">= 0.75x",
        r,
        cmp(r, 0.75, false),
        3,
    );
    rep.target(
        "translation cost per returned event",
        "<= 150 instr",
        "run scripts/translation-cost.sh".into(),
        None,
    );
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
