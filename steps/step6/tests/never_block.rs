//! The lesson over TCP: nothing waits for a user who does not read.
//! What the harness's never-block stage checks from outside, seen from
//! the server's log too: the write knote added when a queue starts and
//! deleted when it drains, `--max-queue` and its default, every message
//! size, and refused clients closed once they close (at most 16 waiting).

use std::time::Duration;

use harness::checks::chat::Room;
use harness::checks::{self, payload, settle, Stage};
use harness::house;
use harness::{Client, Server};
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The receive buffer of a user who does not read: small, so the kernel
/// soon stops taking bytes for them and the server's queue comes into play.
const SMALL_RCVBUF: usize = 4096;

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

// The course's promises this step keeps, written once in harness::house.
harness::house_tests! { serves_though_its_stdout_is_full, relays_10_000_lines_with_stderr_a_pipe_nobody_reads }

/// Joins users 1 and 2 (who read), then user 3 with a small receive
/// buffer (who will not, for a while).
fn room_with_a_slow_user(server: &Server) -> harness::Result<Room> {
    let mut room = Room::new(&server.target());
    room.join()?;
    room.join()?;
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    Ok(room)
}

/// User 3 does not read while user 1 sends 1 MiB: user 2 gets all of it
/// at once, a line from user 2 reaches user 1 at once, and the server
/// logs that user 3's bytes wait in a queue (EV_ADD EVFILT_WRITE). Then
/// user 3 reads: every byte, in order, the line last, the log says the
/// queue drained (EV_DELETE EVFILT_WRITE), and the server sleeps again.
#[test]
fn queues_for_a_user_who_does_not_read_and_delivers_it_all_later() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut room = room_with_a_slow_user(&server)?;
    let flood = payload(1 << 20, 6);
    room.users[0].set_timeout(Duration::from_secs(10));
    room.users[0].send(&flood)?;
    room.users[1].set_timeout(Duration::from_secs(10));
    room.users[1].expect_bytes(&flood)?;
    server.wait_for_stderr(
        ") is not keeping up: the rest waits in their queue; EV_ADD EVFILT_WRITE",
        DEADLINE,
    )?;
    expect_about_user_3(&server, "is not keeping up")?;
    room.users[1].send_line("user 3 is asleep, but we are not")?;
    room.users[0].expect_line("user 3 is asleep, but we are not")?;
    let slow = &mut room.users[2];
    slow.set_timeout(Duration::from_secs(10));
    slow.expect_bytes(&flood)?;
    slow.expect_line("user 3 is asleep, but we are not")?;
    server.wait_for_stderr(
        ") caught up: their queue is empty; EV_DELETE EVFILT_WRITE",
        DEADLINE,
    )?;
    expect_about_user_3(&server, "caught up")?;
    house::expect_calm(
        &server,
        "after user 3 caught up (their queue empty), with nothing to do",
        "a write knote left registered on an empty queue reports 'writable' at every kevent(), \
         for nothing: EV_DELETE EVFILT_WRITE once a user's queue is empty",
    )?;
    room.say(2, b"good morning\n")?;
    room.expect_quiet()
}

/// With `--max-queue 100000`, user 3 (who does not read) is disconnected
/// once more than 100000 bytes wait for them, the log says so, and users 1
/// and 2 notice nothing: user 2 gets all of user 1's 1 MiB, and they talk on.
#[test]
fn drops_a_user_over_max_queue_and_logs_it() -> harness::Result {
    let server = STEP.spawn(&["--max-queue", "100000"])?;
    let mut room = room_with_a_slow_user(&server)?;
    let peer = room.users[2].local_addr();
    let flood = payload(1 << 20, 7);
    room.users[0].set_timeout(Duration::from_secs(10));
    room.users[0].send(&flood)?;
    room.users[1].set_timeout(Duration::from_secs(10));
    room.users[1].expect_bytes(&flood)?;
    server.wait_for_log(&format!("user #2 ({peer}) dropped: "), DEADLINE)?;
    server.wait_for_stderr("more than --max-queue 100000\n", DEADLINE)?;
    server.wait_for_stderr("slot #2 is free", DEADLINE)?;
    let mut dropped = room.users.remove(2);
    let (got, _) = dropped.read_until_closed()?;
    if !flood.starts_with(&got) {
        return Err(dropped.fail(format!(
            "user 3 was dropped; what it received before the end should be the start of user 1's bytes, but {} bytes arrived that are not",
            got.len()
        )));
    }
    room.say(0, b"is user 3 gone?\n")?;
    room.say(1, b"yes\n")?;
    room.expect_quiet()
}

/// `--max-queue` is what the server holds for a user who does not read,
/// given or not: the harness's drop check passes with 100000 and with no
/// flag at all (then 4 MiB, the default).
#[rstest]
#[case::given(Some(100_000))]
#[case::the_default_4_mib(None)]
fn honours_max_queue(#[case] max_queue: Option<usize>) -> harness::Result {
    let flag = max_queue.map(|n| n.to_string());
    let args: Vec<&str> = match &flag {
        Some(n) => vec!["--max-queue", n],
        None => vec![],
    };
    let server = STEP.spawn(&args)?;
    let target = server.target().with_max_queue(max_queue.unwrap_or(4 << 20));
    checks::run(
        Stage::NeverBlock,
        "drops_a_user_whose_queue_passes_max_queue",
        &target,
    )
}

/// Users who read get every message whole, from 1 byte to 4 MiB (as much
/// as the default `--max-queue`), whatever the socket takes per write().
#[test]
fn relays_every_size_whole_to_users_who_read() -> harness::Result {
    let (_server, mut room) = house::room(&STEP, &[], 3)?;
    for u in &mut room.users {
        u.set_timeout(Duration::from_secs(20));
    }
    for (i, size) in [
        1,
        2,
        4095,
        4096,
        4097,
        16383,
        16384,
        16385,
        65536,
        1 << 20,
        4 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        room.say(i % 3, &payload(size, size as u64))?;
    }
    room.expect_quiet()
}

/// A refused client gets the line and end of file, and the server closes
/// its socket only once the client has closed its own side; the log says
/// both, and no descriptor is left behind.
#[test]
fn closes_a_refused_client_once_it_closes() -> harness::Result {
    let (server, mut room, before) = house::full_room_of_one(&STEP)?;
    let (extra, peer) = house::refused_newcomer(&server)?;
    server.wait_for_stderr("the room is full (1 user), shutdown(SHUT_WR)\n", DEADLINE)?;
    drop(extra);
    server.wait_for_log(&format!("refused {peer} (fd "), DEADLINE)?;
    server.wait_for_stderr(") is gone: close(", DEADLINE)?;
    house::expect_fds_back(&server, before, "the refusal (the refused client closed)")?;
    room.users[0].send_line("still mine")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// Refused clients that never close hold a descriptor each, but at most
/// 16 of them: the 17th makes the server close the first.
#[test]
fn lets_at_most_16_refused_clients_wait() -> harness::Result {
    let (server, mut room, before) = house::full_room_of_one(&STEP)?;
    let mut refused = Vec::new();
    for i in 0..17 {
        let mut c = server.client()?.named(format!("refused client {}", i + 1));
        c.expect_line("server is full, try again later")?;
        c.expect_eof()?;
        refused.push(c);
    }
    let first = refused[0].local_addr();
    server.wait_for_log(&format!("refused {first} (fd "), DEADLINE)?;
    server.wait_for_stderr(") is gone: close(", DEADLINE)?;
    if let Some(before) = before {
        let want = before + 16;
        if settle(DEADLINE, || server.open_fds().filter(|&n| n == want)).is_none() {
            return Err(server.target().fail(format!(
                "with 17 refused clients still connected, the server should hold 16 of them ({want} descriptors open), but it has {:?}",
                server.open_fds()
            )));
        }
    }
    room.users[0].send_line("still mine")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// The log line containing `what` is about user 3 (slot #2), and no other
/// user's queue was ever mentioned.
fn expect_about_user_3(server: &Server, what: &str) -> harness::Result {
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(what)).collect();
    if lines.len() == 1 && lines[0].starts_with(&STEP.log_line("user #2 (fd ")) {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "expected one log line saying user #2 {what}, about user 3 who does not read; found {lines:?}"
        )))
    }
}
