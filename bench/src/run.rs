//! The run: the machine's facts, the servers under test, and the phases in
//! turn (each in its module under `phases/`), then targets and checks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::phases;
use crate::report::Report;
use crate::sys::{self, Server};
use crate::Opts;

/// How to start one kind of server.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Where servers and the load generator run.
pub struct Placement {
    pub pinned: bool,
}

impl Placement {
    /// Starts a server on CPU 0 (it inherits the affinity the parent has
    /// while spawning), then moves the parent back to CPU 1.
    pub fn start(&self, spec: &Spec, extra: &[String]) -> Result<Server, String> {
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

pub fn run(opts: &Opts) -> Result<ExitCode, String> {
    let started = Instant::now();
    let (soft, hard) = sys::raise_nofile();
    let cpus = sys::cpus();
    let place = Placement { pinned: cpus >= 2 };
    let perf = sys::perf_available();
    let mut rep = Report::default();
    // Said before any pinning narrows what this process may use.
    let machine = format!(
        "{cpus} CPUs ({}), Linux {}",
        sys::cpu_model(),
        sys::read_trim("/proc/sys/kernel/osrelease")
    );
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
        if cfg!(feature = "refs") {
            "epoll, tokio current-thread".into()
        } else {
            "not built (use --features refs)".into()
        },
    );
    rep.fact(
        "mode",
        match (opts.quick, opts.idle) {
            (true, _) => "--quick",
            (_, true) => "--idle (phase G only)",
            _ => "full",
        }
        .into(),
    );
    if cfg!(debug_assertions) {
        rep.fact("warning", "debug build: run with --release".into());
    }
    rep.print_facts();

    if opts.idle {
        // Phase G alone needs no server: it times this process's own waits.
        if place.pinned {
            sys::pin_self(1);
        }
        let l0 = sys::Load::now();
        let mut busy = Vec::new();
        phases::idle::run(false, hard, &machine, &mut rep)?;
        others(&mut rep, "G", l0, &mut busy);
        return Ok(finish(opts, rep, &busy, started));
    }
    let (step3, step5) = locate_steps(opts)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut echo = vec![Spec {
        name: "kq (step3)".into(),
        program: step3,
        // Without --quiet the step narrates every event on stderr: a
        // write(2) per message that the references do not make.
        args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
    }];
    if cfg!(feature = "refs") {
        for kind in ["epoll", "tokio"] {
            echo.push(Spec {
                name: kind.into(),
                program: exe.clone(),
                args: ["serve", kind, "0"].map(String::from).to_vec(),
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
    let ratios = phases::ratios::run(&ctx, &echo, &mut rep)?;
    others(&mut rep, "A", l0, &mut busy);
    let mut scaling = None;
    if !opts.quick {
        let l0 = sys::Load::now();
        scaling = phases::scaling::run(&ctx, &echo, &mut rep)?;
        others(&mut rep, "B", l0, &mut busy);
        let l0 = sys::Load::now();
        phases::latency::run(&ctx, &echo, &mut rep)?;
        others(&mut rep, "C", l0, &mut busy);
    }
    let l0 = sys::Load::now();
    let holds = phases::hold::run(&ctx, &echo, &mut rep)?;
    others(&mut rep, "D", l0, &mut busy);
    if !opts.quick {
        let l0 = sys::Load::now();
        phases::chat::run(&ctx, &chat, chat_skipped, &mut rep)?;
        others(&mut rep, "E", l0, &mut busy);
    }
    // CI runs the script on its own; the full run shows the figure too.
    let translation = if opts.quick {
        Err("not run by --quick (see scripts/translation-cost.sh)".into())
    } else {
        phases::translation::run(&mut rep)
    };
    let l0 = sys::Load::now();
    phases::idle::run(opts.quick, hard, &machine, &mut rep)?;
    others(&mut rep, "G", l0, &mut busy);
    phases::targets::record(&ratios, &holds, scaling, &translation, &mut rep);
    Ok(finish(opts, rep, &busy, started))
}

/// The closing facts, targets and checks, the JSON file if asked for, and
/// the exit status (the deterministic checks decide it).
fn finish(opts: &Opts, mut rep: Report, busy: &[String], started: Instant) -> ExitCode {
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
        if let Err(e) = std::fs::write(path, rep.json()) {
            eprintln!("bench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if rep.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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

pub struct Ctx {
    pub place: Placement,
    pub perf: bool,
    pub quick: bool,
    pub hard: u64,
}
