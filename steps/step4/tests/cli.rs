//! Step 4's command line, the contract every network step keeps (written
//! once, in `harness::contract`): what a learner sees when the arguments
//! are wrong or the address cannot be listened on. Every run has a deadline.

use std::path::Path;

use harness::contract;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step4"))
}

harness::contract_tests!("step4", env!("CARGO_BIN_EXE_step4"));

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
        contract::refuses(bin(), "step4", args, why)?;
    }
    Ok(())
}
