//! Step 4's command line, the contract every network step keeps (written
//! once, in `harness::contract`): what a learner sees when the arguments
//! are wrong or the address cannot be listened on. Every run has a deadline.

use std::path::Path;

use harness::contract;

const STEP: &str = "step4";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step4"))
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

/// `--remove` and `--max-clients` refuse values they do not know.
#[test]
fn refuses_unknown_remove_modes_and_bad_limits() -> harness::Result {
    for (args, why) in [
        (
            &["--remove", "drop"][..],
            "expected delete, close or close-then-delete",
        ),
        (
            &["--max-clients", "0"][..],
            "expected a number of at least 1",
        ),
    ] {
        let out = contract::run_to_exit(bin(), args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(why) {
            return Err(harness::Failure::new(format!(
                "ran step4 {}: expected status 2 and {why:?} on stderr, got {} and {stderr:?}",
                args.join(" "),
                out.status
            )));
        }
    }
    Ok(())
}
