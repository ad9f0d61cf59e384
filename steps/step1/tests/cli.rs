//! Step 1's command line: it takes no arguments but `--help`. Every run has
//! a deadline and is killed after it.

use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use rstest::rstest;

const DEADLINE: Duration = Duration::from_secs(10);

fn step1() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_step1"));
    cmd.timeout(DEADLINE);
    cmd
}

/// Any argument but `--help` is a usage error: what is wrong and the usage
/// on stderr, nothing on stdout, exit status 2, and stdin is never read.
#[rstest]
#[case::unknown_flag("--bogus")]
#[case::network_option("--port")]
#[case::a_word("input.txt")]
fn refuses_arguments_with_usage(#[case] arg: &str) {
    step1()
        .arg(arg)
        .write_stdin("not echoed\n")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains(format!("step1: unknown argument '{arg}'"))
                .and(predicate::str::contains("usage: step1")),
        );
}

/// `--help` and `-h` print the usage on stdout and exit with status 0.
#[rstest]
#[case::long("--help")]
#[case::short("-h")]
fn prints_usage_on_help(#[case] flag: &str) {
    step1()
        .arg(flag)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("usage: step1"));
}
