//! Step 5's command line: the contract every network step keeps (written
//! once, in `harness::contract`), and `--max-users`. Every run has a
//! deadline.

use std::path::Path;

use harness::contract;
use rstest::rstest;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step5"))
}

harness::contract_tests!("step5", env!("CARGO_BIN_EXE_step5"));

/// A room size that is not a number from 1 to 65536 is refused with the
/// value, the range and the usage, status 2.
#[rstest]
#[case::zero("0")]
#[case::negative("-3")]
#[case::too_many("65537")]
#[case::not_a_number("ten")]
fn refuses_a_bad_room_size(#[case] value: &str) -> harness::Result {
    contract::refuses(
        bin(),
        "step5",
        &["--max-users", value, "--port", "0"],
        &format!("--max-users: takes a number from 1 to 65536, not '{value}'"),
    )
}

/// `--help` documents `--max-users` and its default.
#[test]
fn documents_max_users_in_the_usage() -> harness::Result {
    contract::documents(bin(), "step5", &["[--max-users N]", "default 10"])
}
