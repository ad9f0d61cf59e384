//! Step 6's command line: the contract every network step keeps (written
//! once, in `harness::contract`), `--max-users` and `--max-queue`. Every
//! run has a deadline.

use std::path::Path;

use harness::contract;
use rstest::rstest;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step6"))
}

harness::contract_tests!("step6", env!("CARGO_BIN_EXE_step6"));

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
        "step6",
        &["--max-users", value, "--port", "0"],
        &format!("--max-users: takes a number from 1 to 65536, not '{value}'"),
    )
}

/// A queue limit that is not a number of bytes from 1 to 1 GiB is refused
/// with the value, the range and the usage, status 2.
#[rstest]
#[case::zero("0")]
#[case::negative("-1")]
#[case::too_large("1073741825")]
#[case::with_a_unit("4MiB")]
#[case::empty("")]
fn refuses_a_bad_queue_limit(#[case] value: &str) -> harness::Result {
    contract::refuses(
        bin(),
        "step6",
        &["--max-queue", value, "--port", "0"],
        &format!("--max-queue: takes a number of bytes from 1 to 1073741824, not '{value}'"),
    )
}

/// `--help` documents `--max-users` and `--max-queue`, with their defaults.
#[test]
fn documents_its_options_in_the_usage() -> harness::Result {
    contract::documents(
        bin(),
        "step6",
        &[
            "[--max-users N]",
            "default 10",
            "[--max-queue BYTES]",
            "default 4194304, 4 MiB",
        ],
    )
}
