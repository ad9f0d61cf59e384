//! Step 5 over TCP: the harness's listen, port, chat and urgent-chat
//! stages, then what is
//! particular to this step: the room size, the log of joins and leaves,
//! slots, and the stall that blocking writes cause (documented, not
//! hidden). Each test starts its own server on a free port; the harness
//! kills it when the test ends, also on failure.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::checks::chat::Room;
use harness::checks::{self, Stage};
use harness::{Client, Failure, Server};
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

fn step5(args: &[&str]) -> harness::Result<Server> {
    Server::spawn("step5", env!("CARGO_BIN_EXE_step5"), args)
}

/// The listen stage, one check per case: connections are accepted on the
/// announced address, several at once, and vanishing clients do no harm.
#[rstest]
#[case::accepts_a_connection("accepts_a_connection")]
#[case::accepts_several_connections_at_once("accepts_several_connections_at_once")]
#[case::survives_clients_that_vanish("survives_clients_that_vanish")]
fn passes_listen_check(#[case] check: &str) -> harness::Result {
    let server = step5(&[])?;
    checks::run(Stage::Listen, check, &server.target())
}

/// The port stage: `--port P` is honoured, and `--port 0` gets a free
/// port, so two servers can run at once.
#[rstest]
#[case::listens_on_the_port_it_is_given("listens_on_the_port_it_is_given")]
#[case::gets_a_free_port_for_port_0("gets_a_free_port_for_port_0")]
fn passes_port_check(#[case] check: &str) -> harness::Result {
    let server = Stage::Port.spawn("step5", env!("CARGO_BIN_EXE_step5"), &[])?;
    checks::run(Stage::Port, check, &server.target())
}

/// The chat stage, one check per case, in a room of 10 (NUSERS): each
/// message reaches exactly the others; user 11 is told the room is full;
/// a freed slot is reused; a reset user is removed quietly; 64 KiB and
/// binary messages arrive whole; 500 join/leave cycles leak nothing.
#[rstest]
#[case::relays_each_message_to_every_other_user("relays_each_message_to_every_other_user")]
#[case::refuses_a_client_when_the_room_is_full("refuses_a_client_when_the_room_is_full")]
#[case::gives_a_freed_slot_to_the_next_client("gives_a_freed_slot_to_the_next_client")]
#[case::removes_a_user_who_resets("removes_a_user_who_resets")]
#[case::relays_64_kib_whole("relays_64_kib_whole")]
#[case::relays_binary_bytes_unchanged("relays_binary_bytes_unchanged")]
#[case::survives_500_join_leave_cycles_without_leaking(
    "survives_500_join_leave_cycles_without_leaking"
)]
fn passes_chat_check(#[case] check: &str) -> harness::Result {
    let server = step5(&[])?;
    checks::run(Stage::Chat, check, &server.target())
}

/// The urgent-chat stage: one urgent (MSG_OOB) byte neither stops the
/// relay of what follows nor makes the server spin.
#[rstest]
#[case::relays_the_bytes_after_an_urgent_byte("relays_the_bytes_after_an_urgent_byte")]
#[case::stays_idle_after_an_urgent_byte("stays_idle_after_an_urgent_byte")]
fn passes_urgent_chat_check(#[case] check: &str) -> harness::Result {
    let server = step5(&[])?;
    checks::run(Stage::UrgentChat, check, &server.target())
}

/// The cases above name every check the harness has for the listen, port,
/// chat and urgent-chat stages, so a check added to the harness cannot go
/// untested here.
#[test]
fn runs_every_check_of_its_stages() {
    let ours = [
        "accepts_a_connection",
        "accepts_several_connections_at_once",
        "survives_clients_that_vanish",
        "listens_on_the_port_it_is_given",
        "gets_a_free_port_for_port_0",
        "relays_each_message_to_every_other_user",
        "refuses_a_client_when_the_room_is_full",
        "gives_a_freed_slot_to_the_next_client",
        "removes_a_user_who_resets",
        "relays_64_kib_whole",
        "relays_binary_bytes_unchanged",
        "survives_500_join_leave_cycles_without_leaking",
        "relays_the_bytes_after_an_urgent_byte",
        "stays_idle_after_an_urgent_byte",
    ];
    let missing = checks::not_named(
        &[Stage::Listen, Stage::Port, Stage::Chat, Stage::UrgentChat],
        &ours,
    );
    assert!(
        missing.is_empty(),
        "the harness has checks step5's tests do not run: {}",
        missing.join("; ")
    );
}

/// `--max-users N` is the room size: the full-room and freed-slot checks
/// hold for other sizes too, a room of one included.
#[rstest]
fn honours_max_users(
    #[values(1, 3)] size: usize,
    #[values(
        "refuses_a_client_when_the_room_is_full",
        "gives_a_freed_slot_to_the_next_client"
    )]
    check: &str,
) -> harness::Result {
    let server = step5(&["--max-users", &size.to_string()])?;
    checks::run(Stage::Chat, check, &server.target().with_max_users(size))
}

/// A refused client gets exactly chatserv.c's line and then EOF, and the
/// log names its address.
#[test]
fn tells_a_refused_client_the_room_is_full_and_logs_it() -> harness::Result {
    let server = step5(&["--max-users", "1"])?;
    let mut room = Room::new(&server.target().with_max_users(1));
    room.join()?;
    let mut extra = server.client()?.named("user 2 (one too many)");
    let peer = extra.local_addr();
    extra.expect_line("server is full, try again later")?;
    extra.expect_eof()?;
    server.wait_for_stderr(&format!("step5: refused {peer} (fd "), DEADLINE)?;
    server.wait_for_stderr("the room is full (1 user)", DEADLINE)?;
    room.users[0].send_line("I still have the room")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// stderr narrates each join and leave with the slot, the fd and the
/// peer's address, and the removal is EV_DELETE, then close().
#[test]
fn logs_joins_and_leaves_with_the_peer_address() -> harness::Result {
    let server = step5(&[])?;
    let mut room = Room::new(&server.target());
    let peer = room.join()?.local_addr();
    let joined = format!("step5: user #0 joined from {peer} (fd ");
    server.wait_for_stderr(&joined, DEADLINE)?;
    let fd = fd_after(&server.stderr(), &joined);
    drop(room.users.pop());
    server.wait_for_stderr(&format!("step5: user #0 ({peer}) left\n"), DEADLINE)?;
    server.wait_for_stderr(
        &format!("step5: fd {fd}: EV_DELETE, close({fd}); slot #0 is free\n"),
        DEADLINE,
    )?;
    server.assert_running()
}

/// A user who leaves frees their slot, and the next client takes the
/// first free slot, like chatserv.c's conn_add(): the lowest one.
#[test]
fn the_next_client_takes_the_first_free_slot() -> harness::Result {
    let server = step5(&["--max-users", "3"])?;
    let mut room = Room::new(&server.target().with_max_users(3));
    for _ in 0..3 {
        room.join()?;
    }
    drop(room.users.remove(1));
    server.wait_for_stderr("slot #1 is free", DEADLINE)?;
    let peer = room.join()?.local_addr();
    server.wait_for_stderr(&format!("step5: user #1 joined from {peer}"), DEADLINE)?;
    let last = room.users.len() - 1;
    room.say(last, b"I sit in slot 1 now\n")?;
    room.expect_quiet()
}

/// Bytes sent right before leaving (data and FIN together) still reach
/// everyone: the server goes by read() returning 0, not by EV_EOF alone.
#[test]
fn relays_the_last_words_of_a_leaving_user() -> harness::Result {
    let server = step5(&[])?;
    let mut room = Room::new(&server.target());
    for _ in 0..3 {
        room.join()?;
    }
    let mut leaving = room.users.remove(2);
    leaving.send(b"goodbye, all\n")?;
    leaving.shutdown_write()?;
    drop(leaving);
    for u in &mut room.users {
        u.expect_bytes(b"goodbye, all\n")?;
    }
    server.wait_for_stderr("step5: user #2 (", DEADLINE)?;
    server.wait_for_stderr(") left\n", DEADLINE)?;
    room.say(0, b"and then there were two\n")?;
    room.expect_quiet()
}

/// The known limit, shown rather than hidden: the relay's writes block, so
/// a user who never reads stalls the whole room. User 3 stops reading
/// (with a small receive buffer); user 1 sends 16 MiB; user 2, who reads,
/// stops receiving once the server's write to user 3 is stuck, and a line
/// user 2 sends meanwhile reaches nobody. When user 3 leaves, the write
/// fails, the server moves on, and everything arrives, in order.
#[test]
fn a_user_who_never_reads_stalls_the_whole_room() -> harness::Result {
    const TOTAL: usize = 16 << 20;
    let server = step5(&[])?;
    let mut room = Room::new(&server.target());
    for _ in 0..3 {
        room.join()?;
    }
    let stuck = room.users.pop().expect("user 3");
    let mut reader = room.users.pop().expect("user 2");
    let mut talker = room.users.pop().expect("user 1");
    shrink_receive_buffer(&stuck);

    // User 1 sends from one thread, user 2 reads (and checks) in another;
    // both with deadlines, so nothing here can hang.
    let sent = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let writer = {
        let mut out = talker.stream().try_clone().expect("clone user 1");
        out.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("SO_SNDTIMEO");
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < TOTAL {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = pattern(at + i);
                }
                out.write_all(&chunk)?;
                at += chunk.len();
                sent.store(at, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let reading = {
        let mut input = reader.stream().try_clone().expect("clone user 2");
        input
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("SO_RCVTIMEO");
        let received = Arc::clone(&received);
        std::thread::spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < TOTAL {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| format!("after {at} bytes: {e}"))?;
                if n == 0 {
                    return Err(format!("the server closed user 2 after {at} bytes"));
                }
                if let Some(i) = (0..n).find(|&i| buf[i] != pattern(at + i)) {
                    return Err(format!(
                        "byte {} should be {} (sent by user 1), got {}",
                        at + i,
                        pattern(at + i),
                        buf[i]
                    ));
                }
                at += n;
                received.store(at, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    // The stall: user 2's count stops growing well short of TOTAL.
    let stalled_at = wait_for_stall(&received, TOTAL).ok_or_else(|| {
        server.target().fail(format!(
            "user 3 never reads, so the server's blocking write to user 3 should stall the \
             room before {TOTAL} bytes reach user 2; but user 2 received {} of them without \
             a pause (user 1 sent {})",
            received.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed)
        ))
    })?;
    // While stalled, nobody hears anybody: user 2's line does not reach
    // user 1 (the server is stuck in write(), not reading anything).
    reader.send_line("is anyone there?")?;
    talker.expect_silence(Duration::from_millis(300))?;
    let still = received.load(Ordering::Relaxed);
    if still != stalled_at {
        return Err(server.target().fail(format!(
            "the room looked stalled at {stalled_at} bytes, but user 2 then received more \
             ({still}) while user 3 still was not reading"
        )));
    }

    // User 3 leaves with unread bytes (a reset): the stuck write fails,
    // the relay moves on, and the room recovers.
    drop(stuck);
    let wrote = writer.join().expect("writer thread");
    let read = reading.join().expect("reader thread");
    wrote.map_err(|e| Failure::new(format!("user 1 could not finish sending: {e}")))?;
    read.map_err(|e| {
        server
            .target()
            .fail(format!("user 2, after user 3 left: {e}"))
    })?;
    talker.expect_line("is anyone there?")?;
    server.wait_for_stderr("step5: user #2 (", DEADLINE)?;
    server.assert_running()
}

/// `--quiet` stops the narration: the room works and stderr stays empty.
#[test]
fn narrates_nothing_with_quiet() -> harness::Result {
    let server = step5(&["--quiet"])?;
    let mut room = Room::new(&server.target());
    for _ in 0..2 {
        room.join()?;
    }
    room.say(1, b"shh\n")?;
    drop(room);
    let mut room = Room::new(&server.target());
    room.join()?;
    room.join()?;
    let stderr = server.stderr();
    if stderr.is_empty() {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "with --quiet stderr should stay empty, but it has:\n{stderr}"
        )))
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The byte at `offset` of user 1's 16 MiB (every value, no period that
/// divides a chunk size, so a lost or repeated chunk shows).
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// Waits until `count` stops changing for a second while below `total`;
/// returns where it stopped, or None if it reached `total` (or the 30 s
/// deadline passed) without stopping.
fn wait_for_stall(count: &AtomicUsize, total: usize) -> Option<usize> {
    let start = Instant::now();
    let mut last = count.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        let now = count.load(Ordering::Relaxed);
        if now >= total {
            return None;
        }
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return Some(now);
        }
    }
    None
}

/// A few KiB of receive buffer, so the stall comes after the server's send
/// buffer fills (up to 4 MiB on Linux), not after tens of MiB.
fn shrink_receive_buffer(client: &Client) {
    let size: libc::c_int = 4096;
    // SAFETY: passes a live c_int and its exact size, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            client.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_RCVBUF): {}",
        std::io::Error::last_os_error()
    );
}

/// The number after `prefix` in the log (`... (fd 6)` gives 6).
fn fd_after(stderr: &str, prefix: &str) -> i32 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stderr}"));
    line[prefix.len()..]
        .trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("expected '{prefix}N)', got {line:?}"))
}
