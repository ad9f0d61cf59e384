//! Step 7's lesson over TCP: the tick (EVFILT_TIMER) and the signals
//! (EVFILT_SIGNAL), seen from the clients and from the server's log: the
//! idle line and its log, no idle timeout unless asked, refused clients
//! closed after 2 s, and a shutdown in which the server closes every
//! connection itself, stops listening at once, exits with status 0, and
//! stops waiting at a second signal.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use harness::checks::chat::Room;
use harness::checks::{payload, settle};
use harness::{Client, Closed, Server};

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The receive buffer of a user who never reads.
const SMALL_RCVBUF: usize = 4096;

fn step7(args: &[&str]) -> harness::Result<Server> {
    Server::spawn("step7", env!("CARGO_BIN_EXE_step7"), args)
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
    let server = step7(&["--idle-timeout", "1"])?;
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
    server.wait_for_stderr(
        &format!("step7: user #0 ({peer}) was silent for 1 s\n"),
        DEADLINE,
    )?;
    server.wait_for_stderr(
        &format!("step7: user #0 ({peer}) has their last line: shutdown(SHUT_WR)\n"),
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
    let server = step7(&[])?;
    let mut room = Room::new(&server.target());
    room.join()?;
    room.join()?;
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
    let server = step7(&["--max-users", "1"])?;
    let mut room = Room::new(&server.target().with_max_users(1));
    let first = room.join()?.local_addr();
    // Nobody confirms the first user's join: count descriptors once the
    // server has accepted it.
    server.wait_for_stderr(
        &format!("step7: user #0 joined from {first} (fd "),
        DEADLINE,
    )?;
    let before = server.open_fds();
    // Before connecting: the server may refuse the client (and start its
    // 2 s) before connect() returns here.
    let refused_at = Instant::now();
    let mut extra = server.client()?.named("user 2 (one too many)");
    let peer = extra.local_addr();
    extra.expect_line("server is full, try again later")?;
    extra.expect_eof()?;
    let gone = format!("step7: refused {peer} (fd ");
    server.wait_for_stderr(&gone, DEADLINE)?;
    server.wait_for_stderr(") is gone: close(", DEADLINE)?;
    let took = refused_at.elapsed();
    if took < Duration::from_millis(1900) {
        return Err(server.target().fail(format!(
            "the refused client was closed {took:?} after it was refused, before the 2 s it may take"
        )));
    }
    if let Some(before) = before {
        if settle(DEADLINE, || server.open_fds().filter(|&n| n <= before)).is_none() {
            return Err(server.target().fail(format!(
                "the server had {before} descriptors before the refusal, and {:?} after it closed the refused client",
                server.open_fds()
            )));
        }
    }
    room.users[0].send_line("mine")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// SIGTERM with output queued for a user who never reads: the others get
/// the goodbye line and end of file at once, the listener is closed at
/// once (a new client is refused by the kernel), and while the server
/// still waits for the user who does not read, it holds no descriptor of
/// the others: it closed each connection itself, not by exiting. Then,
/// 2 s on, it closes that one too and exits with status 0.
#[test]
fn closes_every_connection_itself_then_exits_0() -> harness::Result {
    let server = step7(&[])?;
    // Its queue, signals and tick are registered once it says this.
    server.wait_for_stderr("step7: the room has 10 slots", DEADLINE)?;
    let baseline = server.open_fds();
    let mut room = Room::new(&server.target());
    for _ in 0..3 {
        room.join()?;
    }
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    let queued = payload(256 * 1024, 7);
    room.users[0].send(&queued)?;
    for u in &mut room.users[1..3] {
        u.expect_bytes(&queued)?;
    }
    // Before the signal: the server may handle it before kill(1) returns.
    let signalled = Instant::now();
    server.signal(libc::SIGTERM)?;
    for u in &mut room.users[..3] {
        u.expect_line("server is shutting down, goodbye")?;
        u.expect_eof()?;
    }
    server.wait_for_stderr(
        "step7: SIGTERM: shutting down; goodbye to 4 user(s); EV_DELETE, close(",
        DEADLINE,
    )?;
    if std::net::TcpStream::connect_timeout(&server.addr(), DEADLINE).is_ok() {
        return Err(server.target().fail(
            "after SIGTERM a new client could still connect: the listener should be closed at once",
        ));
    }
    if let Some(baseline) = baseline {
        // The listener is closed (one fewer), user 4's socket is open (one
        // more): back to the count before anyone joined.
        let seen = settle(Duration::from_millis(1500), || {
            server.open_fds().filter(|&n| n == baseline)
        });
        if seen.is_none() {
            return Err(server.target().fail(format!(
                "while waiting for user 4 the server should hold {baseline} descriptors (its own, less the listener, plus user 4's); it holds {:?}",
                server.open_fds()
            )));
        }
    }
    let status = exited_within(&server, DEADLINE)?;
    let took = signalled.elapsed();
    server.wait_for_stderr(") did not take their last ", DEADLINE)?;
    server.wait_for_stderr("step7: every connection is closed: exit(0)\n", DEADLINE)?;
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
    let server = step7(&[])?;
    let mut room = Room::new(&server.target());
    room.join()?;
    room.join()?;
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    // User 2 reads everything user 1 sent, so the server has read all of
    // it and holds most of it for user 3 (who never reads) before the
    // signal: otherwise what it had read by then could fit in user 3's
    // socket buffers, and it would not have to wait at all.
    let queued = payload(256 * 1024, 8);
    room.users[0].send(&queued)?;
    room.users[1].expect_bytes(&queued)?;
    server.signal(libc::SIGTERM)?;
    for u in &mut room.users[..2] {
        u.expect_line("server is shutting down, goodbye")?;
        u.expect_eof()?;
    }
    server.wait_for_stderr(
        "step7: SIGTERM: shutting down; goodbye to 3 user(s)",
        DEADLINE,
    )?;
    server.signal(libc::SIGINT)?;
    let status = exited_within(&server, Duration::from_millis(900))?;
    server.wait_for_stderr("step7: SIGINT again: not waiting any longer\n", DEADLINE)?;
    if status.success() {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "expected status 0 after the second signal, got {status}"
        )))
    }
}

/// SIGINT with nobody connected: the server exits with status 0 at once,
/// and says so.
#[test]
fn exits_0_at_once_on_sigint_with_nobody_there() -> harness::Result {
    let server = step7(&[])?;
    // It says "listening on" before it ignores SIGINT and registers it: a
    // signal sent before this line would simply kill it.
    server.wait_for_stderr("step7: the room has 10 slots", DEADLINE)?;
    server.signal(libc::SIGINT)?;
    let status = exited_within(&server, Duration::from_millis(900))?;
    server.wait_for_stderr(
        "step7: SIGINT: shutting down; goodbye to 0 user(s)",
        DEADLINE,
    )?;
    server.wait_for_stderr("step7: every connection is closed: exit(0)\n", DEADLINE)?;
    if status.success() {
        Ok(())
    } else {
        Err(server
            .target()
            .fail(format!("expected status 0 after SIGINT, got {status}")))
    }
}
