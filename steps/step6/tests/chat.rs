//! Step 6 over TCP: the harness's listen, port, chat, urgent-chat and
//! never-block stages, then what is particular to this step's chat room:
//! the room size, the log of joins and leaves, slots, last words, and
//! `--quiet`. Each test starts its own server on a free port; the harness
//! kills it when the test ends, also on failure.

use std::time::Duration;

use harness::checks::chat::Room;
use harness::checks::{self, Stage};
use harness::Server;
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

fn step6(args: &[&str]) -> harness::Result<Server> {
    Server::spawn("step6", env!("CARGO_BIN_EXE_step6"), args)
}

/// The listen stage, one check per case: connections are accepted on the
/// announced address, several at once, and vanishing clients do no harm.
#[rstest]
#[case::accepts_a_connection("accepts_a_connection")]
#[case::accepts_several_connections_at_once("accepts_several_connections_at_once")]
#[case::survives_clients_that_vanish("survives_clients_that_vanish")]
fn passes_listen_check(#[case] check: &str) -> harness::Result {
    let server = step6(&[])?;
    checks::run(Stage::Listen, check, &server.target())
}

/// The port stage: `--port P` is honoured, and `--port 0` gets a free
/// port, so two servers can run at once.
#[rstest]
#[case::listens_on_the_port_it_is_given("listens_on_the_port_it_is_given")]
#[case::gets_a_free_port_for_port_0("gets_a_free_port_for_port_0")]
fn passes_port_check(#[case] check: &str) -> harness::Result {
    let server = Stage::Port.spawn("step6", env!("CARGO_BIN_EXE_step6"), &[])?;
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
    let server = step6(&[])?;
    checks::run(Stage::Chat, check, &server.target())
}

/// The urgent-chat stage: one urgent (MSG_OOB) byte neither stops the
/// relay of what follows nor makes the server spin.
#[rstest]
#[case::relays_the_bytes_after_an_urgent_byte("relays_the_bytes_after_an_urgent_byte")]
#[case::stays_idle_after_an_urgent_byte("stays_idle_after_an_urgent_byte")]
fn passes_urgent_chat_check(#[case] check: &str) -> harness::Result {
    let server = step6(&[])?;
    checks::run(Stage::UrgentChat, check, &server.target())
}

/// The never-block stage (the server started with `--max-queue 1048576`):
/// a user who never reads stalls nobody (round trips between two others
/// stay under 2 s while a third sends megabytes), and is dropped past the
/// limit; writes of every size arrive whole through partial writes; a
/// refused client who typed first reads the whole line and a clean end of
/// file.
#[rstest]
#[case::keeps_the_room_talking_while_a_user_never_reads(
    "keeps_the_room_talking_while_a_user_never_reads"
)]
#[case::drops_a_user_whose_queue_passes_max_queue("drops_a_user_whose_queue_passes_max_queue")]
#[case::relays_every_size_whole_through_partial_writes(
    "relays_every_size_whole_through_partial_writes"
)]
#[case::refuses_politely_a_client_who_typed_first("refuses_politely_a_client_who_typed_first")]
fn passes_never_block_check(#[case] check: &str) -> harness::Result {
    let server = Stage::NeverBlock.spawn("step6", env!("CARGO_BIN_EXE_step6"), &[])?;
    checks::run(Stage::NeverBlock, check, &server.target())
}

/// The cases above name every check the harness has for the stages this
/// step passes, so a check added to the harness cannot go untested here.
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
        "keeps_the_room_talking_while_a_user_never_reads",
        "drops_a_user_whose_queue_passes_max_queue",
        "relays_every_size_whole_through_partial_writes",
        "refuses_politely_a_client_who_typed_first",
    ];
    let missing = checks::not_named(
        &[
            Stage::Listen,
            Stage::Port,
            Stage::Chat,
            Stage::UrgentChat,
            Stage::NeverBlock,
        ],
        &ours,
    );
    assert!(
        missing.is_empty(),
        "the harness has checks step6's tests do not run: {}",
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
    let server = step6(&["--max-users", &size.to_string()])?;
    checks::run(Stage::Chat, check, &server.target().with_max_users(size))
}

/// stderr narrates each join and leave with the slot, the fd and the
/// peer's address, and the removal is EV_DELETE, then close().
#[test]
fn logs_joins_and_leaves_with_the_peer_address() -> harness::Result {
    let server = step6(&[])?;
    let mut room = Room::new(&server.target());
    let peer = room.join()?.local_addr();
    let joined = format!("step6: user #0 joined from {peer} (fd ");
    server.wait_for_stderr(&joined, DEADLINE)?;
    let fd = fd_after(&server.stderr(), &joined);
    drop(room.users.pop());
    server.wait_for_stderr(&format!("step6: user #0 ({peer}) left\n"), DEADLINE)?;
    server.wait_for_stderr(
        &format!("step6: fd {fd}: EV_DELETE, close({fd}); slot #0 is free\n"),
        DEADLINE,
    )?;
    server.assert_running()
}

/// A user who leaves frees their slot, and the next client takes the
/// first free slot, like chatserv.c's conn_add(): the lowest one.
#[test]
fn the_next_client_takes_the_first_free_slot() -> harness::Result {
    let server = step6(&["--max-users", "3"])?;
    let mut room = Room::new(&server.target().with_max_users(3));
    for _ in 0..3 {
        room.join()?;
    }
    drop(room.users.remove(1));
    server.wait_for_stderr("slot #1 is free", DEADLINE)?;
    let peer = room.join()?.local_addr();
    server.wait_for_stderr(&format!("step6: user #1 joined from {peer}"), DEADLINE)?;
    let last = room.users.len() - 1;
    room.say(last, b"I sit in slot 1 now\n")?;
    room.expect_quiet()
}

/// Bytes sent right before leaving (data and FIN together) still reach
/// everyone: the server goes by read() returning 0, not by EV_EOF alone.
#[test]
fn relays_the_last_words_of_a_leaving_user() -> harness::Result {
    let server = step6(&[])?;
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
    server.wait_for_stderr("step6: user #2 (", DEADLINE)?;
    server.wait_for_stderr(") left\n", DEADLINE)?;
    room.say(0, b"and then there were two\n")?;
    room.expect_quiet()
}

/// `--quiet` stops the narration: the room works and stderr stays empty.
#[test]
fn narrates_nothing_with_quiet() -> harness::Result {
    let server = step6(&["--quiet"])?;
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
