//! The check suites, one per stage. A stage is what a server can do; a
//! later step re-runs the stages it still satisfies. The harness names no
//! step: which steps' tests run which stage is read from the steps' tests
//! and shown in the book (`book/generated/stages.md`).
//!
//! Every check takes a [`Target`], so the same code drives a step spawned by
//! a test and a learner's own server, in any language, through the CLI.

use crate::{Result, Target};

pub mod chat;
pub mod echo;
pub mod greet;
pub mod listen;

/// One named check.
pub struct Check {
    /// A behaviour, e.g. `echoes_a_line`.
    pub name: &'static str,
    /// One sentence on what it proves.
    pub about: &'static str,
    pub run: fn(&Target) -> Result<()>,
    /// It compares the server's open descriptors before and after, which
    /// needs the server's pid (known when the harness spawned it).
    pub counts_fds: bool,
}

/// What a server under test is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Accepts TCP connections on the address it announced.
    Listen,
    /// Greets each client with one line, then closes it.
    Greet,
    /// Echoes what each client sends.
    Echo,
    /// Relays what each user sends to every other user.
    Chat,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Listen, Stage::Greet, Stage::Echo, Stage::Chat];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Listen => "listen",
            Stage::Greet => "greet",
            Stage::Echo => "echo",
            Stage::Chat => "chat",
        }
    }

    pub fn from_name(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == s)
    }

    /// One line on what the stage expects of a server.
    pub fn about(self) -> &'static str {
        match self {
            Stage::Listen => "accepts TCP connections on the announced address",
            Stage::Greet => "greets each client with one line, then closes it",
            Stage::Echo => "echoes whatever each client sends",
            Stage::Chat => "relays what each user sends to every other user",
        }
    }

    pub fn checks(self) -> &'static [Check] {
        match self {
            Stage::Listen => listen::CHECKS,
            Stage::Greet => greet::CHECKS,
            Stage::Echo => echo::CHECKS,
            Stage::Chat => chat::CHECKS,
        }
    }
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
        .and_then(|()| target.assert_running())
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

/// Waits for the server's descriptor count to come back to `baseline`
/// (closing is asynchronous: the server may not have seen the last EOF yet).
pub(crate) fn expect_fds_back(target: &Target, baseline: Option<usize>, what: &str) -> Result<()> {
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
        "the server leaks descriptors: it had {before} open before {what}, and still {} after ({})\nevery client that leaves must be closed",
        last.map_or("an unknown number".to_string(), |n| n.to_string()),
        crate::fds::how_counted()
    )))
}
