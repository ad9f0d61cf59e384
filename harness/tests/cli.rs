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
        Running::start_with(&["--mode", mode])
    }

    fn start_with(args: &[&str]) -> Running {
        let mut child = Command::new(FAKE)
            .args(args)
            .args(["--port", "0"])
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

/// --list shows the stages of steps 6-8, the urgent and port stages, and
/// for each what the harness starts the server with and what --addr needs.
#[test]
fn lists_the_new_stages_and_what_they_need() {
    harness()
        .arg("--list")
        .assert()
        .success()
        .stdout(predicate::str::contains("never-block  "))
        .stdout(predicate::str::contains(
            "(started with --max-queue 1048576; with --addr: --max-queue BYTES; \
             with --addr, keeps_relaying_while_its_log_is_never_read skipped: started by the harness itself)",
        ))
        .stdout(predicate::str::contains(
            "(started with --idle-timeout 3; with --addr: --idle-timeout SECS)",
        ))
        .stdout(predicate::str::contains(
            "--pid PID, --only CHECK (each check stops the server)",
        ))
        .stdout(predicate::str::contains(
            "started with --max-users 64 and at most 32 descriptors",
        ))
        .stdout(predicate::str::contains(
            "(starts the server itself, on ports it picks: give the command, not --addr)",
        ))
        .stdout(predicate::str::contains("urgent-echo  "))
        .stdout(predicate::str::contains("urgent-chat  "))
        .stdout(predicate::str::contains(
            "stays_calm_while_out_of_descriptors",
        ))
        .stdout(predicate::str::contains("drops_a_user_near_max_queue"))
        .stdout(predicate::str::contains(
            "keeps_relaying_while_its_log_is_never_read",
        ))
        .stdout(predicate::str::contains(
            "stays_calm_while_the_room_is_quiet",
        ));
}

/// The usage names every stage and the new options.
#[test]
fn usage_names_every_stage_and_option() {
    let out = harness().arg("--help").assert().success();
    let usage = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for name in harness::checks::Stage::ALL.map(|s| s.name()) {
        assert!(
            usage.contains(name),
            "the usage should name the {name} stage:\n{usage}"
        );
    }
    for option in [
        "--max-queue BYTES",
        "--idle-timeout SECS",
        "idle --idle-timeout 3",
    ] {
        assert!(
            usage.contains(option),
            "the usage should mention {option}:\n{usage}"
        );
    }
}

/// A stage that needs options adds them to the command, says so, and
/// passes a server that takes them.
#[test]
fn starts_the_server_with_the_stage_options() {
    harness()
        .args(["check", "idle", "--only", "keeps_users_who_talk_connected"])
        .args(["--", FAKE, "--mode", "chat"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "--mode chat --idle-timeout 3`, a fresh server for each check",
        ))
        .stdout(predicate::str::ends_with("1 passed, 0 failed\n"));
}

/// --max-queue with a command is passed on to it (and the never-block
/// checks use it).
#[test]
fn passes_max_queue_on_to_the_command() {
    harness()
        .args(["check", "never-block", "--max-queue", "500000"])
        .args(["--only", "drops_a_user_whose_queue_passes_max_queue"])
        .args(["--", FAKE, "--mode", "chat"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--mode chat --max-queue 500000`"))
        .stdout(predicate::str::contains("user 4 was dropped"));
}

/// A server that refuses a stage's options is told what the stage needs.
#[test]
fn explains_a_server_without_the_stage_options() {
    harness()
        .args(["check", "idle", "--only", "disconnects_a_silent_user_with_one_line"])
        .args(["--", FAKE, "--mode", "echo", "--bogus", "x"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "the idle checks start the server with --idle-timeout 3; a server without those options cannot pass them",
        ));
}

/// The limits stage says it lowers the descriptor limit, and catches a
/// server that spins there.
#[test]
fn runs_the_limits_stage_with_few_descriptors() {
    harness()
        .args([
            "check",
            "limits",
            "--only",
            "stays_calm_while_out_of_descriptors",
        ])
        .args(["--", FAKE, "--mode", "chat-spins-at-limit"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "--mode chat-spins-at-limit --max-users 64` with at most 32 descriptors",
        ))
        .stdout(predicate::str::contains(
            "and was running or ready to run in",
        ));
}

/// With --addr, the idle checks run against the timeout the user names.
#[test]
fn checks_a_running_server_with_its_idle_timeout() {
    let server = Running::start_with(&["--mode", "chat", "--idle-timeout", "1"]);
    harness()
        .args(["check", "idle", "--addr", &server.1, "--idle-timeout", "1"])
        .args(["--only", "disconnects_a_silent_user_with_one_line"])
        .assert()
        .success()
        .stdout(predicate::str::contains("a silent user was told"));
}

/// With --addr and --pid, one shutdown check signals the running server;
/// the harness sees it go, though not its exit status.
#[test]
fn signals_a_running_server_given_its_pid() {
    let server = Running::start("chat");
    let pid = server.0.id().to_string();
    harness()
        .args(["check", "shutdown", "--addr", &server.1, "--pid", &pid])
        .args(["--only", "says_goodbye_and_exits_0_on_sigterm"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "its exit status is its parent's to see",
        ));
}

/// Bad values of the new options, and --addr runs that lack what a stage
/// needs: a clear message and the usage, status 2, before anything runs.
#[test]
fn refuses_bad_new_options_with_status_2() {
    let addr = ["--addr", "127.0.0.1:1"];
    for (args, why) in [
        (
            &["never-block", "--max-queue", "lots"][..],
            "--max-queue takes a number of bytes from 4096 to 16777216, not 'lots'",
        ),
        (&["never-block", "--max-queue", "100"][..], "not '100'"),
        (
            &["never-block", "--max-queue"][..],
            "--max-queue needs a number of bytes",
        ),
        (
            &["idle", "--idle-timeout", "0"][..],
            "--idle-timeout takes whole seconds from 1 to 10, not '0'",
        ),
        (&["idle", "--idle-timeout", "1.5"][..], "not '1.5'"),
        (&["idle", "--idle-timeout", "60"][..], "not '60'"),
        (
            &["shutdown", "--pid", "0"][..],
            "--pid: '0' is not a process id",
        ),
        (&["port"][..], "the port checks start the server themselves"),
        (
            &["never-block"][..],
            "need the --max-queue the server was started with: pass --max-queue BYTES",
        ),
        (
            &["idle"][..],
            "need the --idle-timeout the server was started with: pass --idle-timeout SECS",
        ),
        (
            &["shutdown"][..],
            "need the server's process id (they send it signals): pass --pid PID",
        ),
        (
            &["limits"][..],
            "need the server's process id (they watch its CPU use): pass --pid PID",
        ),
        (
            &["shutdown", "--pid", "1", "--max-queue", "65536"][..],
            "run them one at a time with --only CHECK",
        ),
    ] {
        harness()
            .arg("check")
            .args(addr)
            .args(args)
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(why).and(predicate::str::contains("usage: harness check")),
            );
    }
}

/// A correct server passes: one `ok` line per check and a closing count.
#[test]
fn passes_a_correct_server_given_as_a_command() {
    harness()
        .args(["check", "echo", "--", FAKE, "--mode", "echo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok    echo/echoes_a_line"))
        .stdout(predicate::str::ends_with("9 passed, 0 failed\n"));
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

/// --trace starts the server with KQ_TRACE and a failure quotes the
/// server's last kevent() calls.
#[test]
fn quotes_the_servers_kevent_calls_with_trace() {
    harness()
        .args([
            "check",
            "echo",
            "--trace",
            "--only",
            "echoes_a_line",
            "--",
            FAKE,
            "--mode",
            "traced-never-replies",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            ", traced (KQ_TRACE), a fresh server",
        ))
        .stdout(predicate::str::contains(
            "the server's last kevent() calls (4 of 5):",
        ))
        .stdout(predicate::str::contains(
            "[kq]   event  EV_SET(6, EVFILT_READ, 0, 0, 6, NULL)",
        ));
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
        .stdout(predicate::str::ends_with("9 passed, 0 failed\n"));
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
        .stdout(predicate::str::ends_with("0 passed, 9 failed\n"));
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
        (
            &["check", "echo", "--trace", "--addr", "127.0.0.1:1"][..],
            "--trace needs the server's command",
        ),
        (
            &["check", "urgent", "--addr", "127.0.0.1:1"][..],
            "no stage named 'urgent' (stages: listen, port,",
        ),
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
