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
    let out = contract::run_to_exit(bin(), &["--max-users", value, "--port", "0"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("--max-users: takes a number from 1 to 65536, not '{value}'");
    if out.status.code() == Some(2)
        && stderr.contains(&want)
        && stderr.contains("usage: step5")
        && out.stdout.is_empty()
    {
        Ok(())
    } else {
        Err(harness::Failure::new(format!(
            "ran `step5 --max-users {value}`: expected status 2, {want:?} and the usage on stderr, nothing on stdout\ngot {}\nstdout: {:?}\nstderr: {stderr:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )))
    }
}

/// `--help` documents `--max-users` and its default.
#[test]
fn documents_max_users_in_the_usage() -> harness::Result {
    let out = contract::run_to_exit(bin(), &["--help"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("[--max-users N]") && stdout.contains("default 10") {
        Ok(())
    } else {
        Err(harness::Failure::new(format!(
            "`step5 --help` should show [--max-users N] and its default (10), got:\n{stdout}"
        )))
    }
}
