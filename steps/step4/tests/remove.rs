//! The server, in each way of removing a client: it removes the echo
//! stage's clients without an error, leaks nothing, survives a busy batch of departures, skips
//! stale events, and handles the wrong order's error.

use std::time::Duration;

use harness::checks::{self, Stage};
use harness::{Client, Server};
use rstest::rstest;

const DEADLINE: Duration = Duration::from_secs(10);

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

fn server(args: &[&str]) -> harness::Result<Server> {
    STEP.spawn(args)
}

/// What a healthy run never logs: a removal that failed, or an error code
/// from kevent().
fn assert_no_removal_error(server: &Server) -> harness::Result {
    let stderr = server.stderr();
    for bad in [
        "failed",
        "Bad file descriptor",
        "No such file",
        "unexpected",
    ] {
        if let Some(line) = stderr.lines().find(|l| l.contains(bad)) {
            return Err(server.target().fail(format!(
                "the log should show no removal error, but has: {line}"
            )));
        }
    }
    Ok(())
}

/// The echo stage's clients, run against one server, are each removed
/// without an error in the log, however clients are removed (the stages
/// themselves run in `stages.rs`, a server per check).
#[rstest]
fn removes_the_echo_stages_clients_without_an_error(
    #[values("delete", "close")] mode: &str,
) -> harness::Result {
    let server = server(&["--remove", mode])?;
    checks::run_stage(Stage::Echo, &server.target())?;
    assert_no_removal_error(&server)
}

/// 2000 clients come and go (half of them echo a byte first): no
/// descriptor is left behind and no removal fails.
#[rstest]
fn leaks_nothing_over_2000_cycles(#[values("delete", "close")] mode: &str) -> harness::Result {
    let server = server(&["--remove", mode, "--quiet"])?;
    let mut warm = server.client()?;
    warm.send_line("warm")?;
    warm.expect_line("warm")?;
    drop(warm);
    std::thread::sleep(Duration::from_millis(100));
    let before = server.open_fds();
    for i in 0..2000 {
        let mut c = server.client()?.named(format!("client {i}"));
        if i % 2 == 0 {
            c.send(b"x")?;
            c.expect_bytes(b"x")?;
        }
    }
    let after = checks::settle(Duration::from_secs(5), || {
        server.open_fds().filter(|&n| Some(n) <= before)
    });
    if before.is_some() && after.is_none() {
        return Err(server.target().fail(format!(
            "after 2000 clients came and went the server holds {:?} descriptors, {before:?} before",
            server.open_fds()
        )));
    }
    assert_no_removal_error(&server)
}

/// With the server stopped, 10 clients send data, 10 close and 10 reset;
/// when it runs again all of it arrives in one busy batch. The ones that
/// stayed get their echo, the others are removed, nothing else changes.
#[rstest]
fn handles_clients_leaving_in_a_busy_batch(
    #[values("delete", "close")] mode: &str,
) -> harness::Result {
    let server = server(&["--remove", mode])?;
    let mut clients = (0..30)
        .map(|i| {
            let mut c = server.client()?.named(format!("client {i}"));
            c.send_line("hello")?;
            c.expect_line("hello")?;
            Ok(c)
        })
        .collect::<harness::Result<Vec<Client>>>()?;
    std::thread::sleep(Duration::from_millis(50));
    let before = server.open_fds();
    let leavers = clients.split_off(10);
    {
        let _frozen = server.freeze()?;
        for c in &mut clients {
            c.send_line("still here")?;
        }
        for (i, mut c) in leavers.into_iter().enumerate() {
            c.send_line("bye")?;
            if i % 2 == 0 {
                drop(c);
            } else {
                c.reset()?;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in &mut clients {
        c.expect_line("still here")?;
    }
    let want = before.map(|n| n - 20);
    let settled = checks::settle(Duration::from_secs(5), || {
        server.open_fds().filter(|&n| Some(n) == want)
    });
    if want.is_some() && settled.is_none() {
        return Err(server.target().fail(format!(
            "20 of 30 clients left: expected {want:?} descriptors open, found {:?}",
            server.open_fds()
        )));
    }
    server.assert_running()?;
    assert_no_removal_error(&server)
}

/// With room for one client, a newcomer makes the server drop the old one
/// in the middle of a batch that still holds the old one's readable event,
/// for a number the newcomer has just been given. The loop skips that
/// stale event (it says so) instead of reading from the newcomer, and
/// serves the newcomer.
#[rstest]
fn skips_a_stale_event_for_a_number_closed_in_the_same_batch(
    #[values("delete", "close")] mode: &str,
) -> harness::Result {
    let server = server(&["--remove", mode, "--max-clients", "1"])?;
    let mut old = server.client()?.named("old client");
    old.send_line("first")?;
    old.expect_line("first")?;
    let newcomer;
    {
        let _frozen = server.freeze()?;
        // The listener becomes ready first, then the old client: one batch,
        // in that order (kqueue and epoll report in order of readiness).
        newcomer = server.client()?.named("newcomer");
        server.wait_for_accept_queue(1)?;
        old.send_line("too late")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    // Without the guard the server would now sit in a blocking read() on
    // the newcomer's descriptor, on behalf of the old client.
    server.wait_for_stderr(
        "stale event (closed earlier in this batch), skipped",
        DEADLINE,
    )?;
    // The old client was dropped (its unread data makes that a reset).
    old.read_to_eof()?;
    let mut newcomer = newcomer;
    newcomer.send_line("served")?;
    newcomer.expect_line("served")?;
    // The old client was removed exactly once: acting on the stale event
    // would have removed "it" a second time (the newcomer, in fact).
    let stderr = server.stderr();
    let removals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("EV_DELETE ok, close(") || l.contains("its knote goes with it"))
        .collect();
    if removals.len() != 1 {
        return Err(server.target().fail(format!(
            "expected exactly one removal (the dropped client), the log has {}: {removals:?}",
            removals.len()
        )));
    }
    server.assert_running()?;
    assert_no_removal_error(&server)
}

/// The wrong order, close() then EV_DELETE: kevent() fails with EBADF, the
/// server logs it as handled and keeps serving.
#[test]
fn closing_before_ev_delete_fails_with_ebadf_and_is_handled() -> harness::Result {
    let server = server(&["--remove", "close-then-delete"])?;
    let mut c = server.client()?;
    c.send_line("bye")?;
    c.expect_line("bye")?;
    drop(c);
    server.wait_for_stderr("then EV_DELETE: Bad file descriptor", DEADLINE)?;
    server.wait_for_stderr("(handled: the knote went with close())", DEADLINE)?;
    checks::run(Stage::Echo, "echoes_a_line", &server.target())
}

/// A closed number goes to the next client at once, and the log says so.
#[rstest]
fn logs_that_the_next_client_reuses_the_number(
    #[values("delete", "close")] mode: &str,
) -> harness::Result {
    let server = server(&["--remove", mode])?;
    let mut first = server.client()?;
    first.send_line("one")?;
    first.expect_line("one")?;
    let port = first.local_addr().port();
    drop(first);
    server.wait_for_stderr("EOF", DEADLINE)?;
    let stderr = server.stderr();
    let fd = stderr
        .lines()
        .find(|l| l.contains(&format!(":{port}")) && l.contains("accepted fd "))
        .and_then(|l| l.split("accepted fd ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| {
            server
                .target()
                .fail("no 'accepted fd N' line for the first client")
        })?;
    server.wait_for_stderr(&format!("close({fd})"), DEADLINE)?;
    let mut second = server.client()?;
    second.send_line("two")?;
    second.expect_line("two")?;
    server.wait_for_stderr(&format!("accepted fd {fd} (a reused number)"), DEADLINE)
}
