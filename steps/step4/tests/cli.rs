//! The command line: the contract every network step keeps (written
//! once, in `harness::contract`): what a learner sees when the arguments
//! are wrong or the address cannot be listened on. Every run has a deadline.

use harness::contract;

harness::contract_tests!();

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
        let step = harness::this_step!();
        contract::refuses(step.path(), step.name, args, why)?;
    }
    Ok(())
}
