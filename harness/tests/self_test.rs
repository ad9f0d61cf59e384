//! The harness checked against small servers of its own: correct ones must
//! pass, broken ones must fail, and the failure must read exactly as in
//! `tests/golden/` (ports and paths normalised). If a check ever passed a
//! broken server, every green step test would mean nothing.
//!
//! After changing a message on purpose: `UPDATE_GOLDEN=1 cargo test -p
//! harness --test self_test`, then review the diff.

use std::time::Duration;

use harness::checks::{self, Stage};
use harness::{Failure, Server};
use rstest::rstest;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-server");

fn spawn(mode: &str) -> Server {
    Server::spawn("fake-server", FAKE, &["--mode", mode]).expect("fake-server starts")
}

/// Replaces what changes from run to run: ports, the fixture's path.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text.replace(FAKE, "fake-server");
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        out.push_str("PORT");
        rest = tail
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .to_string();
    }
    out.push_str(&rest);
    normalise_fd_counts(&out)
}

/// The leak check names the server's descriptor counts, which depend on
/// what the server opens at start (the harness starts it with only 0, 1
/// and 2). The golden text keeps what matters: the count grew by exactly
/// the number of clients.
fn normalise_fd_counts(text: &str) -> String {
    const BEFORE: &str = "it had ";
    const MIDDLE: &str = " open before 1000 clients came and went, and still ";
    const AFTER: &str = " after";
    let Some(start) = text.find(BEFORE) else {
        return text.to_string();
    };
    let from = start + BEFORE.len();
    let Some(mid) = text[from..].find(MIDDLE).map(|i| from + i) else {
        return text.to_string();
    };
    let to = mid + MIDDLE.len();
    let Some(end) = text[to..].find(AFTER).map(|i| to + i) else {
        return text.to_string();
    };
    let (Ok(before), Ok(after)) = (text[from..mid].parse::<u64>(), text[to..end].parse::<u64>())
    else {
        return text.to_string();
    };
    let grew = if after == before + 1000 {
        "N+1000".to_string()
    } else {
        format!("N{:+}", after as i64 - before as i64)
    };
    format!("{}N{MIDDLE}{grew}{}", &text[..from], &text[end..])
}

/// Compares a failure with its golden file (or writes it when asked to).
fn assert_golden(name: &str, failure: &Failure) {
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let got = normalise(&failure.to_string());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run with UPDATE_GOLDEN=1 to create it"));
    assert_eq!(
        got, want,
        "\nthe failure message for {name} changed\n--- expected ({path})\n{want}\n--- got\n{got}"
    );
}

/// Servers that answer correctly however they split or delay their writes
/// pass the echo checks they are given.
#[rstest]
#[case::echo("echo", "echoes_a_line")]
#[case::split("split-echo", "echoes_each_line_back_in_order")]
#[case::split_binary("split-echo", "round_trips_every_byte_value")]
#[case::delayed("delayed-echo", "echoes_a_line")]
#[case::delayed_half_close("delayed-echo", "echoes_the_rest_after_half_close")]
#[case::threaded_large("echo", "round_trips_1_mib_while_reading")]
#[case::threaded_many("echo", "echoes_100_interleaving_clients")]
#[case::reset("echo", "keeps_serving_after_a_client_resets")]
fn correct_echo_servers_pass(#[case] mode: &str, #[case] check: &str) {
    let server = spawn(mode);
    if let Err(f) = checks::run(Stage::Echo, check, &server.target()) {
        panic!("{mode} should pass {check}:\n{f}");
    }
}

/// A broken server fails the check, and the message explains it as the
/// golden file shows.
#[rstest]
#[case::never_replies("never-replies", Stage::Echo, "echoes_a_line")]
#[case::wrong_reply("wrong-reply", Stage::Echo, "echoes_a_line")]
#[case::closes_early("closes-early", Stage::Echo, "echoes_a_line")]
#[case::crashes("crashes-on-data", Stage::Echo, "echoes_a_line")]
#[case::leaks(
    "leaky-echo",
    Stage::Echo,
    "survives_1000_connect_disconnect_cycles_without_leaking"
)]
#[case::greets_twice(
    "greet-twice",
    Stage::Greet,
    "greets_a_client_with_one_line_then_closes"
)]
#[case::echo_is_no_greeter("echo", Stage::Greet, "greets_a_client_with_one_line_then_closes")]
#[case::chat_echoes_sender(
    "chat-echoes-sender",
    Stage::Chat,
    "relays_each_message_to_every_other_user"
)]
#[case::chat_never_full(
    "chat-never-full",
    Stage::Chat,
    "refuses_a_client_when_the_room_is_full"
)]
fn broken_servers_fail_with_a_readable_message(
    #[case] mode: &str,
    #[case] stage: Stage,
    #[case] check: &str,
) {
    let server = spawn(mode);
    let failure = match checks::run(stage, check, &server.target()) {
        Ok(()) => panic!("{mode} is broken, yet passed {}/{check}", stage.name()),
        Err(f) => f,
    };
    assert_golden(&format!("{mode}--{check}"), &failure);
}

/// The correct fixtures pass whole stages, so the stage suites are sound.
#[rstest]
#[case::greet("greet", Stage::Greet)]
#[case::chat("chat", Stage::Chat)]
#[case::listen("echo", Stage::Listen)]
fn correct_servers_pass_whole_stages(#[case] mode: &str, #[case] stage: Stage) {
    let server = spawn(mode);
    if let Err(f) = checks::run_stage(stage, &server.target()) {
        panic!("{mode} should pass the {} stage:\n{f}", stage.name());
    }
}

/// A server that exits before announcing itself is reported with its exit
/// status and its last words.
#[test]
fn reports_a_server_that_exits_before_listening() {
    let failure = Server::spawn("fake-server", FAKE, &["--mode", "exits-at-once"])
        .err()
        .expect("must fail");
    assert_golden("exits-at-once--spawn", &failure);
}

/// A server that never prints `listening on` is given up on at the deadline.
#[test]
fn gives_up_on_a_server_that_never_announces_itself() {
    let failure = Server::spawn_within(
        "fake-server",
        FAKE,
        &["--mode", "no-announce"],
        Duration::from_millis(500),
    )
    .err()
    .expect("must fail");
    assert_golden("no-announce--spawn", &failure);
}

/// Dropping a Server kills its process, also when the test panics.
#[test]
fn dropping_a_server_kills_it_even_on_panic() {
    let pid = std::sync::Mutex::new(0);
    let result = std::panic::catch_unwind(|| {
        let server = spawn("echo");
        *pid.lock().unwrap() = server.pid();
        panic!("a test failing while the server runs");
    });
    assert!(result.is_err());
    let pid = *pid.lock().unwrap();
    // SAFETY: kill with signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "server pid {pid} is still running after the panic");
}

/// A failure shows the server's stderr tail tagged with its name, and the
/// harness's own lines tagged [harness].
#[test]
fn tags_harness_lines_and_server_lines() {
    let server = spawn("never-replies");
    let mut c = server.client().expect("connect");
    c.set_timeout(Duration::from_millis(200));
    c.send_line("ping").expect("send");
    let f = c.expect_line("ping").expect_err("never replies");
    let text = f.to_string();
    assert!(
        text.lines()
            .all(|l| l.starts_with("[harness] ") || l.starts_with("[fake-server] ")),
        "{text}"
    );
    assert!(
        text.contains("[harness] no response within 200 ms"),
        "{text}"
    );
    assert!(
        text.contains("[fake-server] fake-server: accepted connection 0"),
        "{text}"
    );
}

/// The command-line contract catches a server that ignores it (the fixture
/// prints no usage and takes any port).
#[test]
fn contract_checks_catch_a_server_that_ignores_the_contract() {
    let fake = std::path::Path::new(FAKE);
    let f = harness::contract::refuses_bad_arguments(fake, "fake-server")
        .expect_err("fake-server prints no usage");
    let text = f.to_string();
    assert!(
        text.contains(r#"stderr should contain "usage: fake-server""#),
        "{text}"
    );
    let f = harness::contract::prints_usage_on_help(fake, "fake-server")
        .expect_err("fake-server has no --help");
    assert!(f.to_string().contains("exit status 0 expected"), "{f}");
}
