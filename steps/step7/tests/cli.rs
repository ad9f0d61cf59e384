//! Step 7's command line: the contract every network step keeps (written
//! once, in `harness::contract`), `--max-users`, `--max-queue` and `--idle-timeout`. Every
//! run has a deadline.

use std::path::Path;

use harness::contract;
use rstest::rstest;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step7"))
}

harness::contract_tests!("step7", env!("CARGO_BIN_EXE_step7"));

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
        "step7",
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
        "step7",
        &["--max-queue", value, "--port", "0"],
        &format!("--max-queue: takes a number of bytes from 1 to 1073741824, not '{value}'"),
    )
}

/// An idle timeout that is not a number of seconds from 1 to 86400 (a
/// day) is refused with the value, the range and the usage, status 2.
#[rstest]
#[case::zero("0")]
#[case::negative("-5")]
#[case::fraction("1.5")]
#[case::more_than_a_day("86401")]
#[case::with_a_unit("10s")]
fn refuses_a_bad_idle_timeout(#[case] value: &str) -> harness::Result {
    contract::refuses(
        bin(),
        "step7",
        &["--idle-timeout", value, "--port", "0"],
        &format!("--idle-timeout: takes a number of seconds from 1 to 86400, not '{value}'"),
    )
}

/// `--help` documents `--max-users`, `--max-queue` and `--idle-timeout`,
/// with their defaults.
#[test]
fn documents_its_options_in_the_usage() -> harness::Result {
    contract::documents(
        bin(),
        "step7",
        &[
            "[--max-users N]",
            "default 10",
            "[--max-queue BYTES]",
            "default 4194304, 4 MiB",
            "[--idle-timeout SECS]",
            "default: never",
        ],
    )
}
