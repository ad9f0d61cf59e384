//! quiet and room: the course's conventions for a chat server's room and
//! its log. The room's size is `--max-users` (chatserv.c's NUSERS is
//! fixed, so the C original runs the chat stage, not this one). Every
//! server in the course narrates what it does on stderr, one line per
//! event, each line prefixed with its name (`step8: user #0 joined from
//! 127.0.0.1:50812 (fd 5)`), and `--quiet` silences that narration.
//!
//! These checks read the server's stderr, so the harness must start the
//! server (its command, not `--addr`). Where the log's wording is a step's
//! lesson (how a leaving user's knote goes), the step's own tests check it
//! with [`expect_removal_logged`].

use std::time::Duration;

use super::chat::Room;
use crate::{Client, Failure, Result, Server, Target};

super::declare! { $ QUIET_CHECKS for Quiet, tests quiet:
    narrates_nothing_with_quiet: "started with --quiet, the server serves clients who connect, talk and leave, and writes nothing on stderr", [Command];
}

super::declare! { $ ROOM_CHECKS for Room, tests room:
    honours_max_users = super::chat::honours_max_users: "started with --max-users 1 and 3, the full-room and freed-slot checks hold for those sizes", [Command];
    logs_joins_and_leaves_with_the_peer_address: "stderr says 'user #0 joined from PEER (fd N)', then 'user #0 (PEER) left', then 'fd N: ...; slot #0 is free'", [Command];
    the_next_client_takes_the_first_free_slot: "in a room of 3, user #1 leaves; the next client is logged as user #1, the lowest free slot (chatserv.c's conn_add())", [Command];
}

/// How long the server may take to log what a client just did.
const LOG_DEADLINE: Duration = Duration::from_secs(5);

/// Starts another instance of the server under check on a free port, with
/// each `(flag, value)` of `extra` set (a flag alone where the value is
/// empty).
fn start_with(target: &Target, extra: &[(&str, &str)], why: &str) -> Result<Server> {
    let launch = target.launch().ok_or_else(|| {
        Failure::new(format!(
            "{why}, so the harness must start the server: give its command \
             (harness check STAGE -- <command...>), not --addr"
        ))
    })?;
    let mut launch = launch.on_port(0);
    for (flag, value) in extra {
        launch = if value.is_empty() {
            let mut l = launch;
            if !l.args.iter().any(|a| a == flag) {
                l.args.push(flag.to_string());
            }
            l
        } else {
            launch.with_arg(flag, value)
        };
    }
    Server::start(&launch)
}

/// With `--quiet`, two clients connect, send a line and leave, twice over:
/// stderr must stay empty. Works for an echo server and a chat room alike
/// (nothing is expected back).
pub fn narrates_nothing_with_quiet(target: &Target) -> Result<()> {
    let server = start_with(
        target,
        &[("--quiet", "")],
        "this check starts the server with --quiet",
    )?;
    for round in 0..2 {
        let mut clients = (0..2)
            .map(|_| Client::connect(&server.target()))
            .collect::<Result<Vec<_>>>()?;
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(format!("shh, round {round}, client {i}\n").as_bytes())?;
        }
        // Proof that the server handled them: it still accepts and answers.
        drop(clients);
    }
    let mut last = Client::connect(&server.target())?;
    last.send(b"still here?\n")?;
    // Give the server a moment to narrate, if it narrates at all: a window
    // that proves a negative, so it is a short sleep, not a wait.
    std::thread::sleep(Duration::from_millis(200));
    server.assert_running()?;
    let stderr = server.stderr();
    if stderr.is_empty() {
        return Ok(());
    }
    Err(server.target().fail(format!(
        "started `{}`: with --quiet, stderr should stay empty while clients come, talk and go, but it has:\n{}\n\
         --quiet must silence every line of narration",
        server.launch().shown(),
        crate::text::preview(stderr.as_bytes())
    )))
}

/// The number after `prefix` in the log (`... (fd 6)` gives 6).
fn number_after(stderr: &str, prefix: &str) -> Option<i32> {
    let line = stderr.lines().find_map(|l| {
        let at = l.find(prefix)?;
        Some(&l[at + prefix.len()..])
    })?;
    line.trim_end_matches(')').parse().ok()
}

/// A user joins and leaves: the log says who joined, from where, on which
/// descriptor, who left, and that the slot is free again.
pub fn logs_joins_and_leaves_with_the_peer_address(target: &Target) -> Result<()> {
    let (fd, _) = join_and_leave(target)?;
    target.wait_for_log(&format!("fd {fd}: "), LOG_DEADLINE)?;
    let name = target.launch().map_or("", |l| l.name.as_str());
    let stderr = target.stderr().unwrap_or_default();
    let freed = format!("{name}: fd {fd}: ");
    if stderr
        .lines()
        .any(|l| l.starts_with(&freed) && l.ends_with("slot #0 is free"))
    {
        return target.assert_running();
    }
    Err(target.fail(format!(
        "after user #0 (fd {fd}) left, the log should say '{freed}...; slot #0 is free' (how the user was removed, then that the slot is free); it has:\n{}",
        crate::text::preview(stderr.as_bytes())
    )))
}

/// One user joins and leaves the server under check; returns the
/// descriptor the log gave them and their address. The log must say
/// `user #0 joined from PEER (fd N)` and `user #0 (PEER) left`.
fn join_and_leave(target: &Target) -> Result<(i32, std::net::SocketAddr)> {
    let mut room = Room::new(target);
    let peer = room.join()?.local_addr();
    let joined = format!("user #0 joined from {peer} (fd ");
    target.wait_for_log(&joined, LOG_DEADLINE)?;
    let stderr = target.stderr().unwrap_or_default();
    let fd = number_after(&stderr, &joined).ok_or_else(|| {
        target.fail(format!(
            "the join line should end with the user's descriptor, '{joined}N)'; the log has:\n{}",
            crate::text::preview(stderr.as_bytes())
        ))
    })?;
    drop(room.users.pop());
    target.wait_for_log(&format!("user #0 ({peer}) left\n"), LOG_DEADLINE)?;
    Ok((fd, peer))
}

/// For a step's own test of its removal's wording: a user joins and
/// leaves, and the log says `fd N: ` followed by `how` with `{fd}`
/// replaced by the user's descriptor (step 5: `EV_DELETE, close({fd}); slot
/// #0 is free`).
pub fn expect_removal_logged(target: &Target, how: &str) -> Result<()> {
    let (fd, _) = join_and_leave(target)?;
    let line = format!("fd {fd}: {}\n", how.replace("{fd}", &fd.to_string()));
    target.wait_for_log(&line, LOG_DEADLINE)?;
    target.assert_running()
}

/// In a room of 3, the middle user leaves; the next client must take slot
/// #1, the lowest free one, and be heard.
pub fn the_next_client_takes_the_first_free_slot(target: &Target) -> Result<()> {
    let server = start_with(
        target,
        &[("--max-users", "3")],
        "this check starts the server with --max-users 3",
    )?;
    let target = server.target().with_max_users(3);
    let mut room = Room::new(&target);
    for _ in 0..3 {
        room.join()?;
    }
    drop(room.users.remove(1));
    server.wait_for_stderr("slot #1 is free", LOG_DEADLINE)?;
    let peer = room.join()?.local_addr();
    server.wait_for_log(&format!("user #1 joined from {peer}"), LOG_DEADLINE)?;
    let last = room.users.len() - 1;
    room.say(last, b"I sit in slot 1 now\n")?;
    room.expect_quiet()
}
