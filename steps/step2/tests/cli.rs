//! Step 2's command line: what a learner sees when the arguments are wrong
//! or the port is taken. Every run has a deadline and is killed after it.

use std::net::TcpListener;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use rstest::rstest;

/// Long enough for a slow machine; the server should exit at once.
const DEADLINE: Duration = Duration::from_secs(10);

fn step2() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_step2"));
    cmd.timeout(DEADLINE);
    cmd
}

/// Bad arguments print what is wrong and the usage on stderr, nothing on
/// stdout, and exit with status 2.
#[rstest]
#[case::unknown_flag(&["--bogus"], "unknown argument '--bogus'")]
#[case::stray_word(&["8080"], "unknown argument '8080'")]
#[case::port_not_a_number(&["--port", "http"], "not 'http'")]
#[case::port_too_large(&["--port", "65536"], "from 0 to 65535")]
#[case::port_without_value(&["--port"], "--port needs a value")]
#[case::host_without_value(&["--host"], "--host needs a value")]
fn refuses_bad_arguments_with_usage(#[case] args: &[&str], #[case] why: &str) {
    step2()
        .args(args)
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(why).and(predicate::str::contains("usage: step2")));
}

/// `--help` prints the usage on stdout and exits with status 0.
#[test]
fn prints_usage_on_help() {
    step2()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "usage: step2 [--host HOST] [--port PORT]",
        ));
}

/// A port that is already in use is one clear line naming the address, and
/// exit status 1 (no panic, no backtrace).
#[test]
fn exits_1_naming_the_address_when_the_port_is_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = taken.local_addr().expect("local_addr").port();
    step2()
        .args(["--port", &port.to_string()])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains(format!("step2: cannot listen on 127.0.0.1:{port}:"))
                .and(predicate::str::contains("in use"))
                .and(predicate::str::contains("panicked").not()),
        );
}

/// An address that is not this machine's (192.0.2.1 is reserved for
/// documentation) cannot be listened on: one line naming it, status 1.
#[test]
fn exits_1_when_the_address_is_not_this_machines() {
    step2()
        .args(["--host", "192.0.2.1", "--port", "0"])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "step2: cannot listen on 192.0.2.1:0:",
        ));
}
