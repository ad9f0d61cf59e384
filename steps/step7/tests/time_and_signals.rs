//! The lesson over TCP: the tick (EVFILT_TIMER) and the signals
//! (EVFILT_SIGNAL), seen from the clients and from the server's log: the
//! idle line and its log, no idle timeout unless asked, refused clients
//! closed after 2 s, and a shutdown that gives a user who never reads 2 s,
//! exits with status 0, and stops waiting at a second signal.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use harness::checks::settle;
use harness::house;
use harness::{Client, Closed, Server};

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The receive buffer of a user who never reads.
const SMALL_RCVBUF: usize = 4096;

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

// The course's promises this step keeps, written once in harness::house.
harness::house_tests! { serves_though_its_stdout_is_full, tells_a_dropped_user_why }

/// With stderr a pipe nobody reads, and the tick and the signals
/// registered, the room relays 10,000 lines, one at a time.
#[test]
fn relays_10_000_lines_with_stderr_a_pipe_nobody_reads() -> harness::Result {
    house::relays_lines_with_stderr_unread(&STEP, &["--idle-timeout", "60"], 10_000)
}

/// The server's exit status, once it has exited (within `within`).
fn exited_within(server: &Server, within: Duration) -> harness::Result<ExitStatus> {
    settle(within, || server.exit_status()).ok_or_else(|| {
        server
            .target()
            .fail(format!("the server was still running {within:?} later"))
    })
}

/// With `--idle-timeout 1`, a user who sends nothing is told so in one
/// line and disconnected (end of file, no reset); the log says why, then
/// the polite close: shutdown(SHUT_WR), EV_DELETE, close(), slot free.
#[test]
fn tells_an_idle_user_why_and_logs_it() -> harness::Result {
    let server = STEP.spawn(&["--idle-timeout", "1"])?;
    let mut user = server.client()?.named("user 1");
    let peer = user.local_addr();
    user.set_timeout(DEADLINE);
    let (got, how) = user.read_until_closed()?;
    if got != b"you sent nothing for 1 s, goodbye\n" || how != Closed::Eof {
        return Err(user.fail(format!(
            "expected \"you sent nothing for 1 s, goodbye\\n\" and end of file, got {:?} and {how:?}",
            String::from_utf8_lossy(&got)
        )));
    }
    server.wait_for_log(&format!("user #0 ({peer}) was silent for 1 s\n"), DEADLINE)?;
    server.wait_for_log(
        &format!("user #0 ({peer}) has their last line: shutdown(SHUT_WR)\n"),
        DEADLINE,
    )?;
    server.wait_for_stderr("slot #0 is free\n", DEADLINE)?;
    server.assert_running()
}

/// Without `--idle-timeout` nobody is disconnected for being quiet: a
/// user silent for 3 s (three ticks) is still there and still hears the
/// room.
#[test]
fn disconnects_nobody_for_silence_without_idle_timeout() -> harness::Result {
    let (_server, mut room) = house::room(&STEP, &[], 2)?;
    room.users[0].expect_silence(Duration::from_secs(3))?;
    room.users[1].expect_silence(Duration::from_millis(10))?;
    room.say(1, b"still here?\n")?;
    room.say(0, b"yes\n")?;
    room.expect_quiet()
}

/// A refused client that keeps its connection open is closed by the
/// server about 2 s later (a tick after LINGER), and the log says so.
#[test]
fn closes_a_refused_client_that_never_closes_after_2_s() -> harness::Result {
    let (server, mut room, before) = house::full_room_of_one(&STEP)?;
    // Before connecting: the server may refuse the client (and start its
    // 2 s) before connect() returns here.
    let refused_at = Instant::now();
    let (_extra, _) = house::refused_newcomer(&server)?;
    server.wait_for_stderr(") is gone: close(", DEADLINE)?;
    let took = refused_at.elapsed();
    if took < Duration::from_millis(1900) {
        return Err(server.target().fail(format!(
            "the refused client was closed {took:?} after it was refused, before the 2 s it may take"
        )));
    }
    house::expect_fds_back(
        &server,
        before,
        "the refusal (the server closed the refused client)",
    )?;
    room.users[0].send_line("mine")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// SIGTERM with output queued for a user who never reads: the log says
/// goodbye to all four and how each goes (EV_DELETE, close()); the server
/// gives that user the 2 s, says they did not take their last bytes, and
/// exits with status 0 some 2 to 3 s after the signal. (The shutdown
/// stage checks that it closes the others and the listener at once.)
#[test]
fn gives_a_user_who_never_reads_2_s_then_exits_0() -> harness::Result {
    let (server, mut room) = house::room(&STEP, &[], 3)?;
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    house::hold_bytes_for(&server, &mut room, 3)?;
    // Before the signal: the server may handle it before kill(2) returns.
    let signalled = Instant::now();
    server.signal(libc::SIGTERM)?;
    server.wait_for_log(
        "SIGTERM: shutting down; goodbye to 4 user(s); EV_DELETE, close(",
        DEADLINE,
    )?;
    let status = exited_within(&server, DEADLINE)?;
    let took = signalled.elapsed();
    server.wait_for_stderr(") did not take their last ", DEADLINE)?;
    server.wait_for_log("every connection is closed: exit(0)\n", DEADLINE)?;
    if status.success() && took >= Duration::from_millis(1900) && took < DEADLINE {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "expected status 0 some 2 to 3 s after SIGTERM (the wait for user 4), got {status} after {took:?}"
        )))
    }
}

/// A second signal while the server waits for a user who does not read:
/// it stops waiting, closes what is left and exits with status 0 at once.
#[test]
fn stops_waiting_at_a_second_signal() -> harness::Result {
    let (server, mut room) = house::room(&STEP, &[], 2)?;
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    // The server holds bytes for user 3 (who never reads) before the
    // signal, or it would not have to wait at all.
    house::hold_bytes_for(&server, &mut room, 2)?;
    server.signal(libc::SIGTERM)?;
    for u in &mut room.users[..2] {
        u.expect_line("server is shutting down, goodbye")?;
        u.expect_eof()?;
    }
    server.wait_for_log("SIGTERM: shutting down; goodbye to 3 user(s)", DEADLINE)?;
    server.signal(libc::SIGINT)?;
    let status = exited_within(&server, Duration::from_millis(900))?;
    server.wait_for_log("SIGINT again: not waiting any longer\n", DEADLINE)?;
    if status.success() {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "expected status 0 after the second signal, got {status}"
        )))
    }
}

/// SIGHUP (the terminal went away) ends the server as SIGTERM does: a
/// goodbye to everyone, end of file, exit status 0.
#[test]
fn says_goodbye_and_exits_0_on_sighup() -> harness::Result {
    house::says_goodbye_and_exits_0_on(&STEP, libc::SIGHUP, "SIGHUP")
}

/// SIGINT with nobody connected: the server exits with status 0 at once,
/// and says so.
#[test]
fn exits_0_at_once_on_sigint_with_nobody_there() -> harness::Result {
    let server = STEP.spawn(&[])?;
    // It says "listening on" before it ignores SIGINT and registers it: a
    // signal sent before this line would simply kill it.
    server.wait_for_log("the room has 10 slots", DEADLINE)?;
    server.signal(libc::SIGINT)?;
    let status = exited_within(&server, Duration::from_millis(900))?;
    server.wait_for_log("SIGINT: shutting down; goodbye to 0 user(s)", DEADLINE)?;
    server.wait_for_log("every connection is closed: exit(0)\n", DEADLINE)?;
    if status.success() {
        Ok(())
    } else {
        Err(server
            .target()
            .fail(format!("expected status 0 after SIGINT, got {status}")))
    }
}
