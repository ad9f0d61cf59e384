//! The lesson over TCP: at the descriptor limit the listener is
//! disabled and enabled again, each said once; and with the changes
//! batched, a descriptor closed and reused in one batch, a busy room and a
//! shutdown all go without a failed change.

use std::time::Duration;

use harness::checks::chat::{Attempt, Room};
use harness::checks::{self, narration, settle, Stage};
use harness::{house, Client, Server};

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// What the server says when it stops accepting, and when it resumes.
const PAUSED: &str = "out of descriptors; EV_DISABLE the listener until one is closed";
const RESUMED: &str = "a descriptor is free; EV_ENABLE the listener";

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

/// How many lines of the server's stderr contain `what`.
fn count(server: &Server, what: &str) -> usize {
    server.stderr().lines().filter(|l| l.contains(what)).count()
}

/// Fails unless the server said `paused` and `resumed` as often as given.
fn expect_said(server: &Server, paused: usize, resumed: usize, when: &str) -> harness::Result {
    let (p, r) = (count(server, PAUSED), count(server, RESUMED));
    if (p, r) == (paused, resumed) {
        return Ok(());
    }
    Err(server.target().fail(format!(
        "{when}: expected the server to have said {paused} time(s) that it stops accepting and {resumed} time(s) that it resumes; it said so {p} and {r} time(s)"
    )))
}

/// At 32 descriptors: users join until one is not heard (the server is
/// out of descriptors); by then the server said once that it disabled the
/// listener, and, with two more clients waiting, still once. One user
/// leaves: it says once that it enables the listener, accepts the client
/// who waited longest (who is heard), and, out of descriptors again,
/// disables the listener once more.
#[test]
fn says_once_that_it_stops_accepting_and_once_that_it_resumes() -> harness::Result {
    let server = STEP.spawn_for(Stage::Limits, &[])?;
    let mut room = Room::new(&server.target());
    let mut waiting = Vec::new();
    while waiting.len() < 3 {
        if room.users.len() > 64 {
            return Err(server
                .target()
                .fail("65 users joined a server limited to 32 descriptors"));
        }
        let wait = if waiting.is_empty() {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        match room.attempt(&Client::connect, wait)? {
            Attempt::In if waiting.is_empty() => {}
            Attempt::Unheard(w) => waiting.push(*w),
            _ => {
                return Err(server.target().fail(
                    "a client got in (or was refused) while the server was out of descriptors",
                ))
            }
        }
    }
    server.wait_for_stderr(PAUSED, DEADLINE)?;
    std::thread::sleep(Duration::from_millis(300));
    expect_said(&server, 1, 0, "out of descriptors, with 3 clients waiting")?;
    drop(room.users.pop());
    let first = waiting.remove(0);
    match room.admit(first, DEADLINE)? {
        Attempt::In => {}
        _ => {
            return Err(server
                .target()
                .fail("a user left, but the client who waited longest was not heard"))
        }
    }
    settle(DEADLINE, || (count(&server, PAUSED) == 2).then_some(()));
    expect_said(
        &server,
        2,
        1,
        "a user left, the longest-waiting client got in, 2 still wait",
    )?;
    let last = room.users.len() - 1;
    room.say(last, b"I waited my turn\n")
}

/// A user leaves and a newcomer connects while the server is stopped, so
/// one batch holds both: the leaver's end of file, then the listener. The
/// leaver's number is closed, the newcomer gets the same number in the
/// same batch, and its registration, gathered in the changelist, works:
/// it is heard, and no change failed.
#[test]
fn serves_a_newcomer_given_a_leavers_number_in_the_same_batch() -> harness::Result {
    let (server, mut room) = house::room(&STEP, &[], 3)?;
    let frozen = server.freeze()?;
    drop(room.users.pop());
    std::thread::sleep(Duration::from_millis(50));
    let mut newcomer = Client::connect(&server.target())?.named("user 4");
    server.wait_for_accept_queue(1)?;
    drop(frozen);
    let peer = newcomer.local_addr();
    server.wait_for_log(&format!("user #2 joined from {peer} (fd "), DEADLINE)?;
    let stderr = server.stderr();
    let closed = stderr
        .lines()
        .find(|l| l.ends_with("slot #2 is free"))
        .and_then(|l| l.strip_prefix(&STEP.log_line("fd ")))
        .and_then(|l| l.split(':').next())
        .map(str::to_string);
    let joined = stderr
        .lines()
        .find(|l| l.contains(&format!("joined from {peer} (fd ")))
        .and_then(|l| l.rsplit("(fd ").next())
        .map(|l| l.trim_end_matches(')').to_string());
    if closed.is_none() || closed != joined {
        return Err(server.target().fail(format!(
            "expected user 4 to get the number user 3 left (closed {closed:?}, joined with {joined:?})"
        )));
    }
    newcomer.send_line("same number, new user")?;
    for u in &mut room.users {
        u.expect_line("same number, new user")?;
    }
    room.users.push(newcomer);
    room.say(0, b"welcome\n")?;
    no_failed_change(&server)
}

/// 500 users join and leave (the harness's leak check), each join one
/// EV_ADD and each leave a close() with nothing in the changelist for it:
/// no change fails.
#[test]
fn fails_no_change_in_500_join_leave_cycles() -> harness::Result {
    let server = STEP.spawn(&[])?;
    checks::run(
        Stage::Chat,
        "survives_500_join_leave_cycles_without_leaking",
        &server.target(),
    )?;
    no_failed_change(&server)
}

/// The shutdown stage's check that the server closes every connection
/// itself (SIGTERM with output queued for a user who never reads), with
/// no change failing on the way.
#[test]
fn fails_no_change_while_shutting_down() -> harness::Result {
    let server = STEP.spawn_for(Stage::Shutdown, &[])?;
    let check = "closes_every_connection_itself_then_exits_0";
    checks::run(Stage::Shutdown, check, &server.target())?;
    no_failed_change(&server)
}

/// A leaving user goes with close() alone: its knotes go with the
/// descriptor, and nothing for it is left in the changelist.
#[test]
fn removes_a_leaving_user_with_close_alone() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let how = "close({fd}) and its knotes with it; slot #0 is free";
    narration::expect_removal_logged(&server.target(), how)
}

/// Seventeen clients refused in one batch: each refusal gathers an
/// `EV_ADD` to watch the refused client close, and the seventeenth closes
/// the one refused first (at most 16 wait), whose `EV_ADD` is still in the
/// changelist. Closing it must take that change out, so it never reaches
/// the kernel (where it would fail on the closed number, or give a
/// newcomer with that number a knote).
#[test]
fn drops_the_pending_changes_of_a_descriptor_it_closes() -> harness::Result {
    let (server, mut room, _) = house::full_room_of_one(&STEP)?;
    let mut refused = Vec::new();
    {
        // Stopped, so one listener event reports all seventeen.
        let _frozen = server.freeze()?;
        for _ in 0..17 {
            refused.push(house::connect(server.addr()));
        }
        server.wait_for_accept_queue(17)?;
    }
    let all_refused = harness::checks::settle(DEADLINE, || {
        (server.stderr().matches("the room is full").count() >= 17).then_some(())
    });
    if all_refused.is_none() {
        return Err(server
            .target()
            .fail("the server should have refused all 17 newcomers"));
    }
    // The next wait submits the changelist; its error entries are logged
    // before the line user 0 sends next is relayed.
    room.users[0].send_line("still mine")?;
    server.wait_for_log("user #0: relayed 11 bytes to 0 other user(s)", DEADLINE)?;
    no_failed_change(&server).map_err(|f| {
        f.context(
            "17 clients were refused in one batch: each refusal gathered EV_ADD for the refused \
             client, and the 17th closed the first, whose EV_ADD then reached the kernel after its \
             close(). close_fd must take the descriptor's pending changes out of the changelist \
             before close(): else they fail on the closed number, or, once a newcomer has the \
             number, change the newcomer's knotes",
        )
    })
}

/// The server's log has no line about a failed change (an EV_ERROR entry).
fn no_failed_change(server: &Server) -> harness::Result {
    let stderr = server.stderr();
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("knote failed"))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "no change should fail, but the server logged:\n{}",
            failed.join("\n")
        )))
    }
}
