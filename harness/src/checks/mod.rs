//! The check suites, one per stage. A stage is what a server can do; a
//! later step re-runs the stages it still satisfies. The harness names no
//! step: which steps' tests run which stage is read from the steps' tests
//! and shown in the book (`book/generated/stages.md`).
//!
//! Every check takes a [`Target`], so the same code drives a step spawned by
//! a test and a learner's own server, in any language, through the CLI.

use std::time::Duration;

use crate::{Launch, Result, Server, Step, Target};

/// Declares a stage's checks once, in the stage's module:
///
/// ```text
/// super::declare! { $ CHECKS for Listen, tests listen:
///     accepts_a_connection: "a client can connect to the announced address", [];
///     stays_idle = chat_stays_idle: "...", [CpuTime];
/// }
/// ```
///
/// gives the module's `CHECKS` list (what the CLI, [`run`] and the book
/// read) and a hidden exported macro, `harness::listen!`, that writes one
/// `#[test]` per check into a step's tests ([`stage_tests!`](crate::stage_tests)).
/// A check added here is thereby tested in every step that runs its stage,
/// and no step lists the checks. The `$` is passed in because a macro that
/// writes a macro cannot write `$` itself.
macro_rules! declare {
    ($d:tt $list:ident for $stage:ident, tests $tests:ident:
        $( $name:ident $(= $run:path)? : $about:literal, [$($need:ident),*]; )*
    ) => {
        pub const $list: &[$crate::checks::Check] = &[
            $(
                $crate::checks::Check {
                    name: stringify!($name),
                    about: $about,
                    run: $crate::checks::check_fn!($name $(, $run)?),
                    needs: &[$($crate::checks::Need::$need),*],
                },
            )*
        ];

        #[doc(hidden)]
        #[macro_export]
        macro_rules! $tests {
            ($d step:expr) => {
                $(
                    #[doc = $about]
                    #[test]
                    fn $name() -> $crate::Result {
                        $crate::checks::run_for_step(
                            $crate::checks::Stage::$stage,
                            stringify!($name),
                            &$d step,
                        )
                    }
                )*
            };
        }
    };
}
pub(crate) use declare;

/// The function a check runs: its own name, unless it names another.
macro_rules! check_fn {
    ($name:ident) => {
        $name
    };
    ($name:ident, $run:path) => {
        $run
    };
}
pub(crate) use check_fn;

pub mod chat;
pub mod echo;
mod flow;
pub mod greet;
pub mod idle;
pub mod limits;
pub mod listen;
pub mod narration;
pub mod never_block;
pub mod port;
pub mod shutdown;
pub mod urgent;

/// One named check.
pub struct Check {
    /// A behaviour, e.g. `echoes_a_line`.
    pub name: &'static str,
    /// One sentence on what it proves.
    pub about: &'static str,
    pub run: fn(&Target) -> Result<()>,
    /// What it needs beyond an address to connect to.
    pub needs: &'static [Need],
}

/// What a check needs beyond the server's address. A server the harness
/// starts (a step's test, or `harness check -- <command>`) provides all of
/// it; for a running server (`--addr`), the CLI asks for what is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Compares the server's open descriptors before and after, when its
    /// pid is known; without it, that comparison is skipped.
    FdCount,
    /// Measures the server's CPU use when its pid is known; without it,
    /// that measurement is skipped.
    CpuTime,
    /// Pauses the server (SIGSTOP) for a moment when its pid is known, to
    /// make an ordering certain; without it, the ordering is left to chance.
    Pause,
    /// Cannot run without the server's pid (it signals the server, or its
    /// point is the server's CPU use).
    Pid,
    /// Stops the server: only one such check can run per server.
    StopsServer,
    /// The server's `--max-queue`.
    MaxQueue,
    /// The server's `--idle-timeout`.
    IdleTimeout,
    /// The command that starts the server: the check starts servers itself.
    Command,
}

impl Check {
    pub fn needs(&self, need: Need) -> bool {
        self.needs.contains(&need)
    }
}

/// What a server under test is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Accepts TCP connections on the address it announced.
    Listen,
    /// Listens on the port it is given; `--port 0` gets a free one.
    Port,
    /// Greets each client with one line, then closes it.
    Greet,
    /// Echoes what each client sends.
    Echo,
    /// An urgent (MSG_OOB) byte neither stops the echo nor spins the server.
    UrgentEcho,
    /// Relays what each user sends to every other user.
    Chat,
    /// An urgent (MSG_OOB) byte neither stops the relay nor spins the server.
    UrgentChat,
    /// The course's chat room: `--max-users`, the lowest free slot, and
    /// the narration of each join and leave.
    Room,
    /// `--quiet` silences the narration.
    Quiet,
    /// A user who never reads stalls nobody and is dropped once
    /// `--max-queue` bytes wait for it; refusals are polite; a log that
    /// nobody reads blocks nothing.
    NeverBlock,
    /// A user silent for `--idle-timeout` is told why and disconnected.
    Idle,
    /// SIGTERM and SIGINT: goodbye, flush, exit 0.
    Shutdown,
    /// Out of descriptors: no spinning, and waiting clients are served once
    /// one frees.
    Limits,
}

impl Stage {
    pub const ALL: [Stage; 13] = [
        Stage::Listen,
        Stage::Port,
        Stage::Greet,
        Stage::Echo,
        Stage::UrgentEcho,
        Stage::Chat,
        Stage::UrgentChat,
        Stage::Room,
        Stage::Quiet,
        Stage::NeverBlock,
        Stage::Idle,
        Stage::Shutdown,
        Stage::Limits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Listen => "listen",
            Stage::Port => "port",
            Stage::Greet => "greet",
            Stage::Echo => "echo",
            Stage::UrgentEcho => "urgent-echo",
            Stage::Chat => "chat",
            Stage::UrgentChat => "urgent-chat",
            Stage::Room => "room",
            Stage::Quiet => "quiet",
            Stage::NeverBlock => "never-block",
            Stage::Idle => "idle",
            Stage::Shutdown => "shutdown",
            Stage::Limits => "limits",
        }
    }

    pub fn from_name(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == s)
    }

    /// One line on what the stage expects of a server.
    pub fn about(self) -> &'static str {
        match self {
            Stage::Listen => "accepts TCP connections on the announced address",
            Stage::Port => "listens on the port given with --port; --port 0 gets a free one",
            Stage::Greet => "greets each client with one line, then closes it",
            Stage::Echo => "echoes whatever each client sends",
            Stage::UrgentEcho => {
                "an urgent (MSG_OOB) byte neither stops the echo nor spins the server"
            }
            Stage::Chat => "relays what each user sends to every other user",
            Stage::UrgentChat => {
                "an urgent (MSG_OOB) byte neither stops the relay nor spins the server"
            }
            Stage::Room => {
                "the course's chat room: --max-users N is its size, a newcomer takes the lowest free slot, \
                 and stderr narrates each join (slot, peer, fd), leave and freed slot"
            }
            Stage::Quiet => "with --quiet, narrates nothing on stderr",
            Stage::NeverBlock => {
                "a user who never reads stalls nobody and is dropped once --max-queue bytes wait for it; \
                 a refused client is closed politely; a log nobody reads blocks nothing"
            }
            Stage::Idle => {
                "a user silent for --idle-timeout gets a line saying why and is disconnected; \
                 talkers stay"
            }
            Stage::Shutdown => {
                "on SIGTERM or SIGINT every user gets a goodbye line, queued output is flushed, \
                 and the server exits with status 0"
            }
            Stage::Limits => {
                "out of descriptors the server waits without spinning, and serves the clients \
                 who waited once a descriptor frees"
            }
        }
    }

    pub fn checks(self) -> &'static [Check] {
        match self {
            Stage::Listen => listen::CHECKS,
            Stage::Port => port::CHECKS,
            Stage::Greet => greet::CHECKS,
            Stage::Echo => echo::CHECKS,
            Stage::UrgentEcho => urgent::ECHO_CHECKS,
            Stage::Chat => chat::CHECKS,
            Stage::UrgentChat => urgent::CHAT_CHECKS,
            Stage::Room => narration::ROOM_CHECKS,
            Stage::Quiet => narration::QUIET_CHECKS,
            Stage::NeverBlock => never_block::CHECKS,
            Stage::Idle => idle::CHECKS,
            Stage::Shutdown => shutdown::CHECKS,
            Stage::Limits => limits::CHECKS,
        }
    }

    /// The options (flag, value) the harness starts the server with for
    /// this stage, unless the command gives them itself: the never-block
    /// checks need a known queue limit, the idle checks a short timeout
    /// (3 s: a server that sweeps once a second kicks within 1.5 x of it).
    ///
    /// The never-block limit, 1 MiB, is several times what the kernel
    /// buffers for one reader (some 100 KiB), so the checks can keep more
    /// than that on its way to a reader (its socket fills, the server's
    /// writes come up short) and still stay under half the limit; and a
    /// flood passes it in a moment.
    pub fn server_options(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Stage::NeverBlock => &[("--max-queue", "1048576")],
            Stage::Idle => &[("--idle-timeout", "3")],
            Stage::Shutdown => &[("--max-queue", "1048576")],
            // A room larger than the descriptors allow: the descriptors run
            // out first.
            Stage::Limits => &[("--max-users", "64")],
            _ => &[],
        }
    }

    /// The descriptor limit (RLIMIT_NOFILE) the harness starts the server
    /// with for this stage.
    pub fn fd_limit(self) -> Option<u64> {
        match self {
            Stage::Limits => Some(limits::FD_LIMIT),
            _ => None,
        }
    }

    /// How the harness starts `program args` for this stage: the stage's
    /// server options appended where `args` lacks them (`values` overrides
    /// a default, e.g. `("--max-queue", "100000")`), and its descriptor
    /// limit.
    pub fn launch(
        self,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        values: &[(&str, String)],
    ) -> Launch {
        let mut launch = Launch::new(name, program, args);
        for (flag, default) in self.server_options() {
            if launch.arg(flag).is_none() {
                let value = values
                    .iter()
                    .find(|(f, _)| f == flag)
                    .map_or(default.to_string(), |(_, v)| v.clone());
                launch.args.extend([flag.to_string(), value]);
            }
        }
        if let Some(n) = self.fd_limit() {
            launch = launch.fd_limit(n);
        }
        launch
    }

    /// Starts `program args` the way this stage's checks need it (see
    /// [`Stage::launch`]), e.g. in step6's tests:
    /// `Stage::NeverBlock.spawn("step6", env!("CARGO_BIN_EXE_step6"), &[])`
    /// runs `step6 --max-queue 1048576 --port 0`.
    pub fn spawn(
        self,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
    ) -> Result<Server> {
        Server::start(&self.launch(name, program, args, &[]))
    }
}

/// Runs one check of a stage against a server of `step` started the way
/// the stage needs it: the test [`stage_tests!`](crate::stage_tests) writes
/// for each check.
pub fn run_for_step(stage: Stage, name: &str, step: &Step) -> Result<()> {
    let server = step.spawn_for(stage, &[])?;
    run(stage, name, &server.target())
}

/// Runs one check of a stage by name.
pub fn run(stage: Stage, name: &str, target: &Target) -> Result<()> {
    let Some(check) = stage.checks().iter().find(|c| c.name == name) else {
        let names: Vec<&str> = stage.checks().iter().map(|c| c.name).collect();
        return Err(crate::Failure::new(format!(
            "the {} stage has no check named {name:?}; it has: {}",
            stage.name(),
            names.join(", ")
        )));
    };
    run_check(stage, check, target)
}

/// Runs a check and tags its failure with the check's name.
pub fn run_check(stage: Stage, check: &Check, target: &Target) -> Result<()> {
    (check.run)(target)
        .and_then(|()| {
            // A check that stops the server made sure it stopped the right way.
            if check.needs(Need::StopsServer) {
                Ok(())
            } else {
                target.assert_running()
            }
        })
        .map_err(|f| f.context(format!("{}/{}: {}", stage.name(), check.name, check.about)))
}

/// Runs every check of a stage against one server; the failure lists every
/// check that failed.
pub fn run_stage(stage: Stage, target: &Target) -> Result<()> {
    let mut failed = Vec::new();
    for check in stage.checks() {
        if let Err(f) = run_check(stage, check, target) {
            failed.push(f.to_string());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::Failure::new(format!(
            "{} of {} {} checks failed:\n{}",
            failed.len(),
            stage.checks().len(),
            stage.name(),
            failed.join("\n")
        )))
    }
}

/// Deterministic bytes of every value, NUL included (a tiny xorshift, so a
/// failing payload is the same on every run).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Above this share of one CPU, a server waiting for clients is spinning:
/// an idle event loop uses next to nothing, a spinning one all of a core.
pub const BUSY_CPU_SHARE: f64 = 0.25;

/// Above this share of looks at its state, a server waiting for clients is
/// spinning: it is always running or ready to run. This holds on a busy
/// machine too, where a spinning server may get little CPU.
pub const BUSY_RUNNABLE_SHARE: f64 = 0.5;

/// Watches the server for `window` while `doing` happens (the caller
/// arranges it): its CPU use, and how often it is running or ready to run.
/// Notes the figures and fails above [`BUSY_CPU_SHARE`] or
/// [`BUSY_RUNNABLE_SHARE`]. Ok(None) when the pid is unknown or the OS
/// cannot tell.
pub(crate) fn expect_calm(
    target: &Target,
    window: Duration,
    doing: &str,
    advice: &str,
) -> Result<Option<f64>> {
    let Some(pid) = target.pid() else {
        return Ok(None);
    };
    let Some(before) = crate::process::cpu_time(pid) else {
        return Ok(None);
    };
    let start = std::time::Instant::now();
    let every = if cfg!(target_os = "linux") {
        Duration::from_millis(10)
    } else {
        // Each look runs ps.
        Duration::from_millis(50)
    };
    let (mut looks, mut runnable) = (0u32, 0u32);
    while start.elapsed() < window {
        if let Some(r) = crate::process::is_runnable(pid) {
            looks += 1;
            runnable += u32::from(r);
        }
        std::thread::sleep(every);
    }
    let Some(after) = crate::process::cpu_time(pid) else {
        return Ok(None);
    };
    let wall = start.elapsed().as_secs_f64();
    let share = (after.saturating_sub(before)).as_secs_f64() / wall;
    let ready = f64::from(runnable) / f64::from(looks.max(1));
    target.note(format!(
        "{doing}: the server used {:.0}% of one CPU over {wall:.1} s, and was running or ready to run in {:.0}% of {looks} looks",
        share * 100.0,
        ready * 100.0
    ));
    if share > BUSY_CPU_SHARE || ready > BUSY_RUNNABLE_SHARE {
        return Err(target.fail(format!(
            "{doing}, the server used {:.0}% of one CPU over {wall:.1} s ({}), and was running or ready to run in {:.0}% of {looks} looks at it; \
             an idle server uses next to none and sleeps (allowed: at most {:.0}% of a CPU, running at most {:.0}% of the time)\n{advice}",
            share * 100.0,
            crate::process::how_cpu_measured(),
            ready * 100.0,
            BUSY_CPU_SHARE * 100.0,
            BUSY_RUNNABLE_SHARE * 100.0
        )));
    }
    Ok(Some(share))
}

/// How much a check makes the server hold for each user who does not
/// read, beyond what the kernel buffers for that user: enough that a
/// server which forgets its queues visibly loses bytes.
pub(crate) const HOLD: usize = 64 * 1024;

/// Makes the server hold bytes for the users of `room` at `slow` (who do
/// not read), whatever the kernel's buffers: user 1 sends 16 KiB at a
/// time, every other user reads each piece, until what user 1 sent less
/// what the kernel holds for each slow user (`harness/src/buffers.rs`) is at
/// least [`HOLD`] for all of them, or `most` bytes were sent. Where the OS
/// cannot tell what the kernel holds, sends `fallback` bytes (a fixed
/// amount, which the kernel may hold whole if its buffers are large).
/// Returns everything user 1 sent (in order: [`payload`] pieces).
pub(crate) fn hold_bytes(
    room: &mut chat::Room,
    slow: &[usize],
    most: usize,
    fallback: usize,
) -> Result<Vec<u8>> {
    const PIECE: usize = 16 * 1024;
    let mut sent: Vec<u8> = Vec::new();
    let mut enough = sent.len() >= most;
    while !enough {
        let piece = payload(PIECE.min(most - sent.len()), sent.len() as u64 + 1);
        room.users[0].send(&piece)?;
        for (i, u) in room.users.iter_mut().enumerate().skip(1) {
            if !slow.contains(&i) {
                u.expect_bytes(&piece)?;
            }
        }
        sent.extend(&piece);
        let held: Option<Vec<usize>> = slow
            .iter()
            .map(|&i| {
                crate::buffers::on_the_way(&room.users[i]).map(|k| sent.len().saturating_sub(k))
            })
            .collect();
        enough = match held {
            Some(held) => held.iter().all(|&h| h >= HOLD),
            None => sent.len() >= fallback,
        } || sent.len() >= most;
    }
    Ok(sent)
}

/// "1.23 s": a measured duration as messages show it.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// "0.4 ms": a short measured duration as messages show it.
pub(crate) fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn settle<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What a server that uses CPU while it should be idle is told.
pub(crate) const CALM_ADVICE: &str = "a server with nothing to do must sleep in its event wait (kevent() with no timeout, or until its next timer): \
     one that polls without waiting, retries at once, or runs a busy thread uses a core while nobody talks";

/// Waits for the server's descriptor count to come back to `baseline`
/// (closing is asynchronous: the server may not have seen the last EOF yet).
pub(crate) fn expect_fds_back(target: &Target, baseline: Option<usize>, what: &str) -> Result<()> {
    expect_fds_back_because(
        target,
        baseline,
        what,
        "every client that leaves must be closed",
    )
}

/// [`expect_fds_back`], with `advice` for the learner in the failure.
pub(crate) fn expect_fds_back_because(
    target: &Target,
    baseline: Option<usize>,
    what: &str,
    advice: &str,
) -> Result<()> {
    let Some(before) = baseline else {
        return Ok(());
    };
    let mut last = None;
    let back = settle(std::time::Duration::from_secs(3), || {
        last = target.open_fds();
        last.filter(|&n| n <= before)
    });
    if back.is_some() {
        return Ok(());
    }
    Err(target.fail(format!(
        "the server leaks descriptors: it had {before} open before {what}, and still {} after ({})\n{advice}",
        last.map_or("an unknown number".to_string(), |n| n.to_string()),
        crate::fds::how_counted()
    )))
}
