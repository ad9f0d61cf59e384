//! The run: the machine's facts, the servers under test, and the phases in
//! turn (each in its module under `phases/`), then targets and checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::phases;
use crate::report::Report;
use crate::sys::{self, Server};
use crate::{Opts, PHASES};

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

/// A chat server of phase E, and what the bench knows of it.
pub struct ChatSpec {
    pub spec: Spec,
    /// It takes `--max-queue BYTES` (steps 6 to 8).
    pub max_queue: bool,
    /// It writes with blocking writes, as chatserv.c does (step 5): a user
    /// who never reads stops it. The bench shows the stall and checks
    /// nothing about that room; every other server must keep serving.
    pub blocks: bool,
    /// It is in phase E's plain fan-out table (step 5 and `--chat`
    /// servers; steps 6 to 8 are measured in the room with a user who
    /// never reads, beside the same room without).
    pub fanout: bool,
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
    // --quick: A, D, G and I short, and of E only step 6's room with a user
    // who never reads (its checks are deterministic; no timing is).
    let phases: String = match (&opts.only, opts.quick) {
        (Some(only), _) => only.clone(),
        (None, true) => "ADEGI".into(),
        (None, false) => PHASES.into(),
    };
    let runs = |p: char| phases.contains(p);
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
            "perf stat -p PID, tracepoints raw_syscalls:sys_enter and syscalls:sys_enter_{read,write,epoll_wait,...}, in separate windows that start and end with the server idle".into()
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
        match (&opts.only, opts.quick) {
            (Some(only), _) => format!("--only {only}"),
            (None, true) => {
                "--quick (phases A, D, E: step 6's room with a user who never reads, G)".into()
            }
            (None, false) => "full".into(),
        },
    );
    if cfg!(debug_assertions) {
        rep.fact("warning", "debug build: run with --release".into());
    }
    rep.print_facts();

    // The step binaries the chosen phases need, built unless given.
    let echo_phases = "ABCD".chars().any(runs);
    let mut need: Vec<&str> = Vec::new();
    if echo_phases {
        need.push("step3");
    }
    if runs('E') {
        if opts.quick {
            need.push("step6");
        } else {
            need.extend(["step5", "step6", "step7", "step8"]);
        }
    }
    if runs('H') {
        need.extend(["step7", "step8"]);
    }
    need.sort_unstable();
    need.dedup();
    let steps = locate_steps(opts, &need)?;
    let step = |name: &str| {
        steps
            .get(name)
            .cloned()
            .unwrap_or_else(|| Err(format!("{name} was not located")))
    };
    let mut echo = Vec::new();
    if echo_phases {
        // step3 is required by A-D: without it, stop here.
        let step3 = step("step3")?;
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        echo.push(Spec {
            name: "kq (step3)".into(),
            program: step3,
            // Without --quiet the step narrates every event on stderr: a
            // write(2) per message that the references do not make.
            args: ["--port", "0", "--quiet"].map(String::from).to_vec(),
        });
        if cfg!(feature = "refs") {
            for kind in ["epoll", "tokio"] {
                echo.push(Spec {
                    name: kind.into(),
                    program: exe.clone(),
                    args: ["serve", kind, "0"].map(String::from).to_vec(),
                });
            }
        }
    }
    let mut chat = Vec::new();
    let mut chat_skipped = Vec::new();
    if runs('E') {
        let names: &[&str] = if opts.quick {
            &["step6"]
        } else {
            &["step5", "step6", "step7", "step8"]
        };
        for &name in names {
            match step(name) {
                Ok(program) => {
                    let mut args = ["--port", "0", "--quiet"].map(String::from).to_vec();
                    let classic = name == "step5";
                    if !classic {
                        // Steps 6 to 8 drop a user for whom more than
                        // --max-queue bytes wait; phases::chat says why
                        // this value.
                        args.extend(["--max-queue".into(), phases::chat::MAX_QUEUE.to_string()]);
                    }
                    chat.push(ChatSpec {
                        spec: Spec {
                            name: name.into(),
                            program,
                            args,
                        },
                        max_queue: !classic,
                        blocks: classic,
                        fanout: classic,
                    });
                }
                Err(e) => chat_skipped.push((name.to_string(), e, name == "step5")),
            }
        }
        if !opts.quick {
            for (name, path) in &opts.chat {
                chat.push(ChatSpec {
                    spec: Spec {
                        name: name.clone(),
                        program: path.clone(),
                        args: vec!["--port".into(), "0".into()],
                    },
                    max_queue: false,
                    blocks: false,
                    fanout: true,
                });
            }
        }
    }
    let mut batching = if runs('H') {
        Some((step("step7"), step("step8")))
    } else {
        None
    };
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
    let mut ratios = None;
    let mut scaling = None;
    let mut holds = None;
    let mut translation = Err(if opts.quick {
        "not run by --quick (see scripts/translation-cost.sh)".into()
    } else {
        "not run (phase F not chosen)".into()
    });
    for phase in PHASES.chars().filter(|&p| runs(p)) {
        let l0 = sys::Load::now();
        match phase {
            'A' => ratios = Some(phases::ratios::run(&ctx, &echo, &mut rep)?),
            'B' => scaling = phases::scaling::run(&ctx, &echo, &mut rep)?,
            'C' => phases::latency::run(&ctx, &echo, &mut rep)?,
            'D' => holds = Some(phases::hold::run(&ctx, &echo, &mut rep)?),
            'E' => phases::chat::run(&ctx, &chat, &chat_skipped, &mut rep)?,
            // CI runs the script on its own; the full run shows the figure too.
            'F' if !opts.quick => translation = phases::translation::run(&mut rep),
            'G' => phases::idle::run(opts.quick, hard, &machine, &mut rep)?,
            'I' => phases::trace::run(opts.quick, &mut rep)?,
            'H' => {
                let (s7, s8) = batching.take().expect("located above");
                phases::batching::run(&ctx, s7, s8, &mut rep)?
            }
            _ => continue,
        }
        // F's callgrind run is not timed against anything.
        if phase != 'F' {
            others(&mut rep, &phase.to_string(), l0, &mut busy);
        }
    }
    match (&ratios, &holds) {
        (Some(r), Some(h)) => phases::targets::record(r, h, scaling, &translation, &mut rep),
        _ => rep.note("targets not recorded: they need phases A and D"),
    }
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

/// Finds the step binaries in `need`: those given with `--stepN PATH`,
/// and the others built with `cargo build --release`, at the path cargo
/// reports for them (not beside this executable: a debug bench would
/// otherwise run whatever debug build of the step was there last, a
/// learner's exercise build included). A step that cannot be had is an
/// error for it alone: the phases that need it say so (step3 ends the run,
/// a chat step skips its rows).
fn locate_steps(
    opts: &Opts,
    need: &[&str],
) -> Result<HashMap<String, Result<PathBuf, String>>, String> {
    let build = |name: &str| -> Result<PathBuf, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        eprintln!("building {name} (release) ...");
        let out = Command::new(&cargo)
            .args(["build", "--quiet", "--release", "-p", name])
            .args(["--message-format", "json-render-diagnostics"])
            .arg("--manifest-path")
            .arg(&manifest)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("{cargo}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build --release -p {name}` failed ({})",
                out.status
            ));
        }
        // The last artifact line naming the binary: `"executable":"PATH"`.
        let json = String::from_utf8_lossy(&out.stdout);
        let suffix = format!("/{name}");
        json.lines()
            .filter_map(|line| line.split("\"executable\":\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .rfind(|path| path.ends_with(&suffix))
            .map(PathBuf::from)
            .ok_or_else(|| format!("`cargo build --release -p {name}` named no executable {name}"))
    };
    let pick = |name: &str| -> Result<PathBuf, String> {
        let p = match opts.steps.iter().find(|(n, _)| n == name) {
            Some((_, given)) => given.clone(),
            None => build(name)?,
        };
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{} not found", p.display()))
        }
    };
    Ok(need.iter().map(|&n| (n.to_string(), pick(n))).collect())
}

pub struct Ctx {
    pub place: Placement,
    pub perf: bool,
    pub quick: bool,
    pub hard: u64,
}
