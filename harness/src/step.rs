//! A step as its own tests see it: its name and its binary, both derived
//! from Cargo, so a step's tests never write the step's name.
//!
//! In a step's tests, [`this_step!`](crate::this_step) is the step under
//! test, [`stage_tests!`](crate::stage_tests) writes one `#[test]` per check
//! of the stages it passes, and [`contract_tests!`](crate::contract_tests)
//! the command-line contract's tests:
//!
//! ```text
//! // steps/step8/tests/stages.rs
//! harness::stage_tests! { listen, port, chat, urgent_chat, room, quiet, never_block, idle, shutdown, limits }
//! ```

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::checks::Stage;
use crate::{Launch, Result, Server};

/// A step's package (and binary) name, its binary, and the arguments every
/// server of these tests gets (step 4's `--remove MODE`, say).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub name: &'static str,
    pub bin: &'static str,
    pub args: &'static [&'static str],
}

impl Step {
    /// Usually written `harness::this_step!()`.
    pub const fn new(name: &'static str, bin: &'static str) -> Step {
        Step {
            name,
            bin,
            args: &[],
        }
    }

    /// The same step, every server started with `args` first.
    pub const fn with_args(self, args: &'static [&'static str]) -> Step {
        Step { args, ..self }
    }

    /// The binary's path.
    pub fn path(&self) -> &'static Path {
        Path::new(self.bin)
    }

    /// A command for the binary, for tests that run it to its end.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.args(self.args);
        cmd
    }

    fn all_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        self.args
            .iter()
            .copied()
            .chain(args.iter().copied())
            .collect()
    }

    /// How [`Step::spawn`] would start the server with `args`, for a test
    /// that changes something more ([`Launch::stderr_unread`], say).
    pub fn launch(&self, args: &[&str]) -> Launch {
        Launch::new(self.name, OsStr::new(self.bin), &self.all_args(args))
    }

    /// Starts the step's server on a free port with `args`.
    pub fn spawn(&self, args: &[&str]) -> Result<Server> {
        Server::spawn(self.name, OsStr::new(self.bin), &self.all_args(args))
    }

    /// Starts the step's server the way `stage`'s checks need it (see
    /// [`Stage::launch`]).
    pub fn spawn_for(&self, stage: Stage, args: &[&str]) -> Result<Server> {
        stage.spawn(self.name, OsStr::new(self.bin), &self.all_args(args))
    }

    /// A line of the step's log as it prints it: `step8: user #0 joined`
    /// for `user #0 joined` (the prefix is the step's name).
    pub fn log_line(&self, line: &str) -> String {
        format!("{}: {line}", self.name)
    }
}

/// The step whose tests these are: `harness::Step` with the package's name
/// and its binary (`CARGO_BIN_EXE_<name>`), both from Cargo.
#[macro_export]
macro_rules! this_step {
    () => {
        $crate::Step::new(
            env!("CARGO_PKG_NAME"),
            env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME"))),
        )
    };
}

/// One `#[test]` per check of each stage named, out of the harness's own
/// lists: `harness::stage_tests! { listen, port, echo }` makes the modules
/// `listen`, `port` and `echo` with a test per check (`echo::echoes_a_line`,
/// ...), each starting the step's server as its stage needs it. A check
/// added to the harness appears in every step that runs its stage, without
/// touching the step.
///
/// `harness::stage_tests! { with ["--remove", "close"]; listen, echo }` starts
/// every server with those arguments first.
///
/// The stages, as identifiers: listen, port, greet, echo, urgent_echo,
/// chat, urgent_chat, room, quiet, never_block, idle, shutdown, limits
/// (`cargo run -p harness -- --list` shows each with its checks).
#[macro_export]
macro_rules! stage_tests {
    (with $args:tt; $($stage:ident),+ $(,)?) => {
        $(
            #[doc = concat!("The harness's ", stringify!($stage), " stage: one test per check.")]
            mod $stage {
                $crate::$stage!($crate::this_step!().with_args(&$args));
            }
        )+
    };
    ($($stage:ident),+ $(,)?) => {
        $crate::stage_tests!(with []; $($stage),+);
    };
}
