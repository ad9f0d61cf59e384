//! The harness checked against small servers of its own: correct ones must
//! pass, broken ones must fail, and the failure must read exactly as in
//! `tests/golden/` (ports and paths normalised). If a check ever passed a
//! broken server, every green step test would mean nothing.
//!
//! After changing a message on purpose: `UPDATE_GOLDEN=1 cargo test -p
//! harness --test self_test`, then review the diff.

use std::time::{Duration, Instant};

use harness::checks::{self, Stage};
use harness::{Failure, Server, Target};
use rstest::rstest;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-server");

fn spawn(mode: &str) -> Server {
    Server::spawn("fake-server", FAKE, &["--mode", mode]).expect("fake-server starts")
}

/// Replaces what changes from run to run, or from OS to OS: ports, the
/// fixture's path, error numbers, where CPU time is read from.
fn normalise(text: &str) -> String {
    let text = text
        .replace(FAKE, "fake-server")
        .replace(harness::process::how_cpu_measured(), "CPU time");
    let text = replace_number_after(&text, "(os error ", "E");
    normalise_fd_counts(&replace_number_after(&text, "127.0.0.1:", "PORT"))
}

/// Replaces the number after each `marker` with `with`.
fn replace_number_after(text: &str, marker: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let (head, tail) = rest.split_at(i + marker.len());
        out.push_str(head);
        out.push_str(with);
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
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

/// What else a golden comparison hides, for failures whose figures depend
/// on timing: how far a flood got before it stalled, CPU use, seconds.
#[derive(Clone, Copy, Debug)]
enum Mask {
    /// Ports and paths only.
    Exact,
    /// Every number too (a digit run becomes `N`).
    Numbers,
    /// Numbers, and the server's log lines sorted: users' threads in the
    /// fake server log their leaving in any order.
    NumbersUnorderedLog,
    /// Numbers, and the content of quoted bytes too (windows into a
    /// pseudo-random stream at a position that varies), with runs of
    /// spaces (the caret's column) squeezed.
    Bytes,
}

fn mask(text: &str, how: Mask) -> String {
    if let Mask::NumbersUnorderedLog = how {
        let masked = mask(text, Mask::Numbers);
        let (mut log, rest): (Vec<&str>, Vec<&str>) =
            masked.lines().partition(|l| l.starts_with("[fake-server]"));
        log.sort_unstable();
        return rest
            .into_iter()
            .chain(log)
            .map(|l| format!("{l}\n"))
            .collect();
    }
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match how {
            Mask::Exact => out.push(c),
            Mask::Bytes if c == '"' => {
                out.push(c);
                if !in_quotes {
                    out.push_str("...");
                }
                in_quotes = !in_quotes;
            }
            Mask::Bytes if in_quotes => {
                if c == '\\' {
                    chars.next();
                }
            }
            Mask::Bytes if c == ' ' && out.ends_with(' ') => {}
            _ if c.is_ascii_digit() => {
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
                out.push('N');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Compares a failure with its golden file (or writes it when asked to).
fn assert_golden(name: &str, failure: &Failure) {
    assert_golden_masked(name, failure, Mask::Exact)
}

fn assert_golden_masked(name: &str, failure: &Failure, how: Mask) {
    assert_golden_text(name, &failure.to_string(), how, &[])
}

/// Compares `text`, normalised, with `replace` applied and masked, with
/// the golden file `name`.
fn assert_golden_text(name: &str, text: &str, how: Mask, replace: &[(&str, &str)]) {
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let mut got = normalise(text);
    for (from, to) in replace {
        got = got.replace(from, to);
    }
    let got = mask(&got, how);
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
#[case::drops_last_words("drops-last-words", Stage::Echo, "echoes_the_rest_after_half_close")]
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

/// Runs every check of `stage` against a fresh fake server in `mode`,
/// started as the stage starts servers (as the CLI does: a check may stop
/// its server). The first failure, if any.
fn run_stage_fresh(stage: Stage, args: &[&str]) -> Result<(), Failure> {
    for check in stage.checks() {
        let server = stage.spawn("fake-server", FAKE, args)?;
        checks::run_check(stage, check, &server.target())?;
    }
    Ok(())
}

/// The correct fakes pass the stages of steps 6-8, the urgent stages and
/// the port stage, each check on a server of its own.
#[rstest]
#[case::port("echo", Stage::Port)]
#[case::urgent_echo("echo", Stage::UrgentEcho)]
#[case::urgent_chat("chat", Stage::UrgentChat)]
#[case::never_block("chat", Stage::NeverBlock)]
#[case::idle("chat", Stage::Idle)]
#[case::shutdown("chat", Stage::Shutdown)]
#[case::limits("chat", Stage::Limits)]
#[case::room("chat", Stage::Room)]
#[case::quiet("chat", Stage::Quiet)]
fn correct_servers_pass_the_new_stages(#[case] mode: &str, #[case] stage: Stage) {
    if let Err(f) = run_stage_fresh(stage, &["--mode", mode]) {
        panic!("{mode} should pass the {} stage:\n{f}", stage.name());
    }
}

/// A broken server fails the new stages' checks, each with the message the
/// golden file shows (timing-dependent figures masked).
#[rstest]
#[case::ignores_port(
    "ignores-port",
    Stage::Port,
    "listens_on_the_port_it_is_given",
    Mask::Numbers
)]
#[case::corrupts(
    "chat-corrupts",
    Stage::Chat,
    "relays_each_message_to_every_other_user",
    Mask::Exact
)]
#[case::echo_urgent_loses(
    "echo-urgent-loses",
    Stage::UrgentEcho,
    "echoes_the_bytes_after_an_urgent_byte",
    Mask::Exact
)]
#[case::echo_urgent_spins(
    "echo-urgent-spins",
    Stage::UrgentEcho,
    "stays_idle_after_an_urgent_byte",
    Mask::Numbers
)]
#[case::chat_urgent_loses(
    "chat-urgent-loses",
    Stage::UrgentChat,
    "relays_the_bytes_after_an_urgent_byte",
    Mask::Exact
)]
#[case::chat_urgent_spins(
    "chat-urgent-spins",
    Stage::UrgentChat,
    "stays_idle_after_an_urgent_byte",
    Mask::Numbers
)]
#[case::blocking(
    "chat-blocking",
    Stage::NeverBlock,
    "keeps_the_room_talking_while_a_user_never_reads",
    Mask::Numbers
)]
#[case::blocking_flood(
    "chat-blocking",
    Stage::NeverBlock,
    "drops_a_user_whose_queue_passes_max_queue",
    Mask::Numbers
)]
#[case::never_drops(
    "chat-never-drops",
    Stage::NeverBlock,
    "drops_a_user_whose_queue_passes_max_queue",
    Mask::Exact
)]
#[case::loses_partial_writes(
    "chat-loses-partial-writes",
    Stage::NeverBlock,
    "relays_every_size_whole_through_partial_writes",
    Mask::Bytes
)]
#[case::rude_refusal(
    "chat-rude-refusal",
    Stage::NeverBlock,
    "refuses_politely_a_client_who_typed_first",
    Mask::Exact
)]
#[case::kicks_active(
    "chat-kicks-active",
    Stage::Idle,
    "keeps_users_who_talk_connected",
    Mask::Numbers
)]
#[case::kicks_the_talker(
    "chat-kicks-active",
    Stage::Idle,
    "counts_a_user_who_only_reads_as_idle",
    Mask::Numbers
)]
#[case::ignores_signals(
    "chat-ignores-signals",
    Stage::Shutdown,
    "says_goodbye_and_exits_0_on_sigterm",
    Mask::Exact
)]
#[case::dies_on_signal(
    "chat-dies-on-signal",
    Stage::Shutdown,
    "says_goodbye_and_exits_0_on_sigint",
    Mask::Exact
)]
#[case::exits_1(
    "chat-exits-1",
    Stage::Shutdown,
    "says_goodbye_and_exits_0_on_sigterm",
    Mask::Exact
)]
#[case::appends_slots(
    "chat-appends-slots",
    Stage::Room,
    "the_next_client_takes_the_first_free_slot",
    Mask::Numbers
)]
#[case::chatty(
    "chat-chatty",
    Stage::Quiet,
    "narrates_nothing_with_quiet",
    Mask::Numbers
)]
#[case::fixed_room("chat-fixed-room", Stage::Room, "honours_max_users", Mask::Numbers)]
#[case::chat_drops_last_words(
    "chat-drops-last-words",
    Stage::Chat,
    "relays_the_last_words_of_a_leaving_user",
    Mask::NumbersUnorderedLog
)]
#[case::keeps_listening(
    "chat-keeps-listening",
    Stage::Shutdown,
    "closes_every_connection_itself_then_exits_0",
    Mask::Numbers
)]
#[case::no_flush(
    "chat-no-flush",
    Stage::Shutdown,
    "flushes_queued_output_before_exiting_on_sigterm",
    Mask::Bytes
)]
#[case::spins_at_limit(
    "chat-spins-at-limit",
    Stage::Limits,
    "stays_calm_while_out_of_descriptors",
    Mask::Numbers
)]
#[case::stops_accepting(
    "chat-stops-accepting",
    Stage::Limits,
    "serves_waiting_clients_once_descriptors_free",
    Mask::Numbers
)]
#[case::echo_spins_listening(
    "echo-spins",
    Stage::Listen,
    "stays_calm_while_waiting_for_clients",
    Mask::Numbers
)]
#[case::echo_spins(
    "echo-spins",
    Stage::Echo,
    "stays_calm_while_clients_are_connected",
    Mask::Numbers
)]
#[case::kicks_late(
    "chat-kicks-late",
    Stage::Idle,
    "disconnects_a_silent_user_with_one_line",
    Mask::Numbers
)]
#[case::misnames_timeout(
    "chat-misnames-timeout",
    Stage::Idle,
    "disconnects_a_silent_user_with_one_line",
    Mask::Numbers
)]
#[case::drops_late(
    "chat-drops-late",
    Stage::NeverBlock,
    "drops_a_user_near_max_queue",
    Mask::Numbers
)]
#[case::drops_early(
    "chat-drops-early",
    Stage::NeverBlock,
    "drops_a_user_near_max_queue",
    Mask::Numbers
)]
#[case::spins(
    "chat-spins",
    Stage::Chat,
    "stays_calm_while_the_room_is_quiet",
    Mask::Numbers
)]
#[case::spins_while_idle(
    "chat-spins",
    Stage::Idle,
    "disconnects_a_silent_user_with_one_line",
    Mask::Numbers
)]
#[case::leaks_refused(
    "chat-leaks-refused",
    Stage::Chat,
    "refuses_a_client_when_the_room_is_full",
    Mask::Numbers
)]
#[case::leaks_refused_politely(
    "chat-leaks-refused",
    Stage::NeverBlock,
    "refuses_politely_a_client_who_typed_first",
    Mask::Numbers
)]
#[case::log_blocks(
    "chat-log-blocks",
    Stage::NeverBlock,
    "keeps_relaying_while_its_log_is_never_read",
    Mask::Numbers
)]
fn broken_servers_fail_the_new_stages_with_a_readable_message(
    #[case] mode: &str,
    #[case] stage: Stage,
    #[case] check: &str,
    #[case] how: Mask,
) {
    let server = stage
        .spawn("fake-server", FAKE, &["--mode", mode])
        .expect("fake-server starts");
    let failure = match checks::run(stage, check, &server.target()) {
        Ok(()) => panic!("{mode} is broken, yet passed {}/{check}", stage.name()),
        Err(f) => f,
    };
    assert_golden_masked(&format!("{mode}--{check}"), &failure, how);
}

/// A server that always takes the same port (here, the one `--fixed-port`
/// gives the fixture) cannot start twice: the port 0 check says so.
#[test]
fn catches_a_server_that_always_takes_the_same_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let server = Server::spawn(
        "fake-server",
        FAKE,
        &["--mode", "echo", "--fixed-port", &port],
    )
    .expect("fake-server starts");
    let failure = checks::run(Stage::Port, "gets_a_free_port_for_port_0", &server.target())
        .expect_err("a fixed port cannot be had twice");
    assert_golden_text(
        "fixed-port--gets_a_free_port_for_port_0",
        &failure.to_string(),
        Mask::Exact,
        &[(&port, "FIXED")],
    );
}

/// A stage starts the server with the options its checks need, and the
/// target knows them: never-block's queue limit, idle's timeout, limits'
/// room size and descriptor limit (which the server really runs under).
#[test]
fn a_stage_starts_the_server_with_what_its_checks_need() {
    let server = Stage::NeverBlock
        .spawn("fake-server", FAKE, &["--mode", "chat"])
        .expect("starts");
    let target = server.target();
    assert_eq!(
        target.max_queue().ok(),
        Some(1 << 20),
        "never-block's --max-queue"
    );
    let server = Stage::Idle
        .spawn("fake-server", FAKE, &["--mode", "chat"])
        .expect("starts");
    assert_eq!(
        server.target().idle_timeout().ok(),
        Some(Duration::from_secs(3)),
        "idle's --idle-timeout"
    );
    let server = Stage::Limits
        .spawn("fake-server", FAKE, &["--mode", "chat"])
        .expect("starts");
    let target = server.target();
    assert_eq!(target.max_users(), 64, "limits' --max-users");
    assert_eq!(target.fd_limit(), Some(32), "limits' descriptor limit");
    if cfg!(target_os = "linux") {
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("a line");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &words[3..5],
            ["32", "32"],
            "the server's RLIMIT_NOFILE: {line}"
        );
    }
    // A value the command gives itself is kept, and known.
    let server = Stage::NeverBlock
        .spawn(
            "fake-server",
            FAKE,
            &["--mode", "chat", "--max-queue", "100000"],
        )
        .expect("starts");
    assert_eq!(
        server.target().max_queue().ok(),
        Some(100_000),
        "the command's own --max-queue"
    );
    assert_eq!(
        server
            .launch()
            .args
            .iter()
            .filter(|a| *a == "--max-queue")
            .count(),
        1,
        "--max-queue given once: {:?}",
        server.launch().args
    );
}

/// A check that needs a setting the target lacks says which, and how to
/// give it, instead of guessing.
#[test]
fn checks_say_which_setting_they_lack() {
    let server = spawn("chat");
    let bare = Target::addr(server.addr());
    for (stage, check, needs) in [
        (
            Stage::NeverBlock,
            "drops_a_user_whose_queue_passes_max_queue",
            "--max-queue",
        ),
        (
            Stage::Idle,
            "keeps_users_who_talk_connected",
            "--idle-timeout",
        ),
        (
            Stage::Shutdown,
            "says_goodbye_and_exits_0_on_sigterm",
            "--pid PID",
        ),
        (
            Stage::Limits,
            "stays_calm_while_out_of_descriptors",
            "--pid PID",
        ),
        (Stage::Port, "listens_on_the_port_it_is_given", "not --addr"),
    ] {
        let f = checks::run(stage, check, &bare).expect_err("cannot run without it");
        assert!(
            f.message().contains(needs),
            "{}/{check} should ask for {needs}:\n{f}",
            stage.name()
        );
    }
}

/// A failing check of a server started with the trace quotes its last
/// `kevent()` calls (the last 4 of 5), after its stderr.
#[test]
fn a_failing_check_quotes_the_servers_last_kevent_calls() {
    let launch =
        harness::Launch::new("fake-server", FAKE, &["--mode", "traced-never-replies"]).traced(true);
    let server = Server::start(&launch).expect("fake-server starts");
    let failure = checks::run(Stage::Echo, "echoes_a_line", &server.target())
        .expect_err("traced-never-replies never replies");
    assert_golden("traced-never-replies--echoes_a_line", &failure);
}

/// A traced server that wrote no trace (it does not use kq) is said to
/// have made no call the trace saw, rather than quoting an empty list.
#[test]
fn a_traced_server_without_kq_is_said_to_have_made_no_traced_call() {
    let launch =
        harness::Launch::new("fake-server", FAKE, &["--mode", "never-replies"]).traced(true);
    let server = Server::start(&launch).expect("fake-server starts");
    let failure = checks::run(Stage::Echo, "echoes_a_line", &server.target())
        .expect_err("never-replies never replies");
    let text = failure.to_string();
    assert!(
        text.contains("[harness] the server made no kevent() call that KQ_TRACE saw"),
        "{text}"
    );
}

/// Without the trace, a failure says nothing of kevent() calls, and the
/// server has no KQ_TRACE.
#[test]
fn an_untraced_server_gets_no_kq_trace() {
    let launch = harness::Launch::new("fake-server", FAKE, &["--mode", "traced-never-replies"])
        .traced(false);
    let server = Server::start(&launch).expect("fake-server starts");
    let failure = checks::run(Stage::Echo, "echoes_a_line", &server.target())
        .expect_err("traced-never-replies never replies");
    let text = failure.to_string();
    assert!(
        !text.contains("kevent()"),
        "an untraced failure quoted a trace:\n{text}"
    );
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

/// Waiting for a log line a server that has exited never wrote fails at
/// once, saying it exited, instead of waiting out the deadline.
#[test]
fn stops_waiting_for_a_log_line_once_the_server_has_exited() {
    let server = spawn("crashes-on-data");
    let mut c = harness::Client::connect(&server.target()).expect("connect");
    c.send_line("boom").expect("send");
    let asked = Instant::now();
    let Err(failure) = server.wait_for_stderr("a line it never writes", Duration::from_secs(60))
    else {
        panic!("the server never writes that line, yet it was found");
    };
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_secs(30),
        "waited {waited:?} for a server that exited at once"
    );
    let text = failure.to_string();
    assert!(
        text.contains("it exited without logging it") && text.contains("panicked: oops"),
        "the failure should say the server exited, with its last words; it says:\n{text}"
    );
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
