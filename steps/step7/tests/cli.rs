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

/// Runs `step7 FLAG VALUE --port 0` and expects status 2, `want` and the
/// usage on stderr, and nothing on stdout.
fn expect_refused(flag: &str, value: &str, want: &str) -> harness::Result {
    let out = contract::run_to_exit(bin(), &[flag, value, "--port", "0"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2)
        && stderr.contains(want)
        && stderr.contains("usage: step7")
        && out.stdout.is_empty()
    {
        Ok(())
    } else {
        Err(harness::Failure::new(format!(
            "ran `step7 {flag} {value}`: expected status 2, {want:?} and the usage on stderr, nothing on stdout\ngot {}\nstdout: {:?}\nstderr: {stderr:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )))
    }
}

/// A room size that is not a number from 1 to 65536 is refused with the
/// value, the range and the usage, status 2.
#[rstest]
#[case::zero("0")]
#[case::negative("-3")]
#[case::too_many("65537")]
#[case::not_a_number("ten")]
fn refuses_a_bad_room_size(#[case] value: &str) -> harness::Result {
    expect_refused(
        "--max-users",
        value,
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
    expect_refused(
        "--max-queue",
        value,
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
    expect_refused(
        "--idle-timeout",
        value,
        &format!("--idle-timeout: takes a number of seconds from 1 to 86400, not '{value}'"),
    )
}

/// `--help` documents `--max-users`, `--max-queue` and `--idle-timeout`,
/// with their defaults.
#[test]
fn documents_its_options_in_the_usage() -> harness::Result {
    let out = contract::run_to_exit(bin(), &["--help"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("[--max-users N]")
        && stdout.contains("default 10")
        && stdout.contains("[--max-queue BYTES]")
        && stdout.contains("default 4194304, 4 MiB")
        && stdout.contains("[--idle-timeout SECS]")
        && stdout.contains("default: never")
    {
        Ok(())
    } else {
        Err(harness::Failure::new(format!(
            "`step7 --help` should show [--max-users N], [--max-queue BYTES] and [--idle-timeout SECS] with their defaults (10; 4194304, 4 MiB; never), got:\n{stdout}"
        )))
    }
}
