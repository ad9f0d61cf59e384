//! Step 3's command line, the contract every network step keeps (written
//! once, in `harness::contract`): what a learner sees when the arguments
//! are wrong or the address cannot be listened on. Every run has a deadline.

use std::path::Path;

use harness::contract;

const STEP: &str = "step3";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step3"))
}

/// Bad arguments print what is wrong and the usage on stderr, nothing on
/// stdout, and exit with status 2.
#[test]
fn refuses_bad_arguments_with_usage() -> harness::Result {
    contract::refuses_bad_arguments(bin(), STEP)
}

/// `--help` prints the usage on stdout and exits with status 0.
#[test]
fn prints_usage_on_help() -> harness::Result {
    contract::prints_usage_on_help(bin(), STEP)
}

/// A port that is already in use is one clear line naming the address, and
/// exit status 1 (no panic, no backtrace).
#[test]
fn exits_1_naming_the_address_when_the_port_is_in_use() -> harness::Result {
    contract::exits_1_when_the_port_is_in_use(bin(), STEP)
}

/// An address that is not this machine's cannot be listened on: one line
/// naming it, status 1.
#[test]
fn exits_1_when_the_address_is_not_this_machines() -> harness::Result {
    contract::exits_1_when_the_address_is_not_this_machines(bin(), STEP)
}
