//! The `harness` command line, as a workshop uses it: check a server given
//! as a command or as an address, list the checks, and refuse bad usage.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use assert_cmd::Command as Cmd;
use predicates::prelude::*;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-server");

fn harness() -> Cmd {
    let mut cmd = Cmd::new(env!("CARGO_BIN_EXE_harness"));
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

/// A fake server started by the test itself, killed on drop (also on panic).
struct Running(Child, String);

impl Running {
    fn start(mode: &str) -> Running {
        let mut child = Command::new(FAKE)
            .args(["--mode", mode, "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let addr = line.trim().trim_start_matches("listening on ").to_string();
        Running(child, addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// --list names every stage and its checks.
#[test]
fn lists_stages_and_checks() {
    harness()
        .arg("--list")
        .assert()
        .success()
        .stdout(predicate::str::contains("echo ").and(predicate::str::contains("chat ")))
        .stdout(predicate::str::contains("echoes_100_interleaving_clients"))
        .stdout(predicate::str::contains(
            "refuses_a_client_when_the_room_is_full",
        ));
}

/// A correct server passes: one `ok` line per check and a closing count.
#[test]
fn passes_a_correct_server_given_as_a_command() {
    harness()
        .args(["check", "echo", "--", FAKE, "--mode", "echo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok    echo/echoes_a_line"))
        .stdout(predicate::str::ends_with("8 passed, 0 failed\n"));
}

/// A broken server fails with the learner-facing message and status 1.
#[test]
fn fails_a_broken_server_with_a_readable_message() {
    harness()
        .args([
            "check",
            "echo",
            "--only",
            "echoes_a_line",
            "--",
            FAKE,
            "--mode",
            "wrong-reply",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL  echo/echoes_a_line"))
        .stdout(predicate::str::contains(r#"arrived:  "HELLO\n""#))
        .stdout(predicate::str::contains("first difference at byte 0"))
        .stdout(predicate::str::ends_with("0 passed, 1 failed\n"));
}

/// --addr checks a server that is already running; without --pid the leak
/// check says it could not count descriptors.
#[test]
fn checks_a_running_server_by_address() {
    let server = Running::start("echo");
    harness()
        .args(["check", "echo", "--addr", &server.1])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "(descriptors not counted: pass --pid)",
        ))
        .stdout(predicate::str::ends_with("8 passed, 0 failed\n"));
}

/// With --pid the leak check counts the server's descriptors and catches
/// a server that never closes its clients.
#[test]
fn counts_descriptors_of_a_running_server_given_its_pid() {
    let server = Running::start("leaky-echo");
    let pid = server.0.id().to_string();
    harness()
        .args(["check", "echo", "--addr", &server.1, "--pid", &pid])
        .args([
            "--only",
            "survives_1000_connect_disconnect_cycles_without_leaking",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("the server leaks descriptors"));
}

/// The chat stage runs against a room of another size.
#[test]
fn checks_a_chat_server_with_another_room_size() {
    harness()
        .args([
            "check",
            "chat",
            "--max-users",
            "4",
            "--only",
            "refuses_a_client_when_the_room_is_full",
        ])
        .args(["--", FAKE, "--mode", "chat", "--max-users", "4"])
        .assert()
        .success()
        .stdout(predicate::str::ends_with("1 passed, 0 failed\n"));
}

/// A server that cannot start is reported once, and the other checks are
/// marked as not run.
#[test]
fn reports_a_server_that_does_not_start() {
    harness()
        .args(["check", "echo", "--", FAKE, "--mode", "exits-at-once"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("the server exited with status 3"))
        .stdout(predicate::str::contains(
            "(not run: the server did not start)",
        ))
        .stdout(predicate::str::ends_with("0 passed, 8 failed\n"));
}

/// Bad usage: a clear message and the usage, status 2.
#[test]
fn refuses_bad_usage_with_status_2() {
    for (args, why) in [
        (&["check"][..], "which stage?"),
        (&["check", "echo"][..], "give the server"),
        (
            &["check", "shout", "--addr", "127.0.0.1:1"][..],
            "no stage named 'shout'",
        ),
        (
            &["check", "echo", "--only", "nope", "--addr", "127.0.0.1:1"][..],
            "no check 'nope'",
        ),
        (
            &["check", "echo", "--addr", "nowhere"][..],
            "cannot read 'nowhere'",
        ),
        (&["frobnicate"][..], "unknown command 'frobnicate'"),
    ] {
        harness().args(args).assert().code(2).stderr(
            predicate::str::contains(why).and(predicate::str::contains("usage: harness check")),
        );
    }
}

/// Nothing listening at --addr: every check says so plainly.
#[test]
fn explains_a_refused_connection() {
    // Bind a port and close it again: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    harness()
        .args(["check", "listen", "--only", "accepts_a_connection"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "is the server running and listening on that address?",
        ));
}
