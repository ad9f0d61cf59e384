//! shutdown (step7 on): SIGTERM or SIGINT ends the server cleanly: every
//! user gets at least one line saying the server is shutting down, output
//! still queued is written out (within a short deadline: a user who never
//! reads is abandoned after it), every connection is closed, and the
//! server exits with status 0, all within 5 s of the signal.
//!
//! Each check ends the server, so each needs a server of its own; with
//! `--addr` the harness needs `--pid` to send the signal, and cannot see
//! the exit status (only that the process is gone).

use std::time::{Duration, Instant};

use super::chat::Room;
use super::secs;
use crate::failure::describe_status;
use crate::server::Ended;
use crate::text::{explain_difference, preview};
use crate::{Client, Closed, Failure, Result, Target};

super::declare! { $ CHECKS for Shutdown, tests shutdown:
    says_goodbye_and_exits_0_on_sigterm: "on SIGTERM each of 3 users gets a line, then end of file, and the server exits with status 0 within 5 s", [Pid, StopsServer];
    says_goodbye_and_exits_0_on_sigint: "on SIGINT (Ctrl-C) each of 3 users gets a line, then end of file, and the server exits with status 0 within 5 s", [Pid, StopsServer];
    flushes_queued_output_before_exiting_on_sigterm: "SIGTERM while output waits in queues: a user who reads late still gets every queued byte and the goodbye; one who never reads does not hold up the exit", [Pid, StopsServer, MaxQueue];
    closes_every_connection_itself_then_exits_0: "SIGTERM while a user who never reads has output queued: the others get the goodbye and end of file at once, the listener is closed at once, and while the server waits for that user it holds only that user's descriptor; then it exits with status 0", [Pid, StopsServer, FdCount];
}

/// From the signal to the server's exit, flushing included.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// Where the OS cannot tell what the kernel holds for a user: the bytes
/// sent for a late reader, enough to overflow its socket with default
/// buffers, well under `--max-queue`.
const QUEUED: usize = 256 * 1024;

/// The receive buffer of the late reader and of the user who never reads.
const SMALL_RCVBUF: usize = 4096;

const HANDLE_IT: &str = "catch SIGTERM and SIGINT, tell every user the server is shutting down, write out what is queued (within a short deadline), close every connection and exit with status 0";

pub fn says_goodbye_and_exits_0_on_sigterm(target: &Target) -> Result<()> {
    says_goodbye_and_exits_0(target, libc::SIGTERM, "SIGTERM")
}

pub fn says_goodbye_and_exits_0_on_sigint(target: &Target) -> Result<()> {
    says_goodbye_and_exits_0(target, libc::SIGINT, "SIGINT")
}

fn says_goodbye_and_exits_0(target: &Target, sig: libc::c_int, signame: &str) -> Result<()> {
    target.need_pid(&format!("sends the server {signame}"))?;
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    let sent = Instant::now();
    target.signal(sig, &format!("sends the server {signame}"))?;
    let deadline = sent + EXIT_DEADLINE;
    let heard: Vec<Result<(Vec<u8>, Closed)>> = room
        .users
        .iter_mut()
        .map(|u| read_until_closed_by(u, deadline))
        .collect();
    let ended = target.wait_for_exit(deadline.saturating_duration_since(Instant::now()));
    let took = sent.elapsed();
    killed_by_the_signal(target, &ended, signame)?;
    still_running(target, &ended, signame)?;
    for (user, got) in room.users.iter_mut().zip(heard) {
        let (got, how) =
            got.map_err(|f| f.context(format!("the harness sent the server {signame}")))?;
        expect_goodbye(user, &got, how, signame)?;
    }
    exited_0(target, ended, took, signame)
}

/// User 1 sends until the server holds bytes for users 3 and 4 (at least
/// 64 KiB each beyond what the kernel buffers for them, measured;
/// see `checks::hold_bytes`); user 2 reads everything, user 3 has not read
/// yet and user 4 never reads. Then SIGTERM: user 3 reads now and must get
/// all of it, and the goodbye; user 4 must not keep the server from
/// exiting.
pub fn flushes_queued_output_before_exiting_on_sigterm(target: &Target) -> Result<()> {
    target.need_pid("sends the server SIGTERM")?;
    let max_queue = target.max_queue()?;
    let mut room = Room::new(target);
    for _ in 0..2 {
        room.join_with(&Client::connect_like_a_network)?;
    }
    let small = |t: &Target| Client::connect_with_receive_buffer(t, SMALL_RCVBUF);
    room.join_with(&small)?;
    room.join_with(&small)?;
    let scene_of = |queued: usize| {
        format!(
            "user 1 sent {queued} bytes; user 2 read them all; user 3 (a {SMALL_RCVBUF}-byte receive buffer) had not read yet, \
             and user 4 (the same) never reads, so the server holds some of the bytes in its queues for them"
        )
    };
    let bytes = super::hold_bytes(&mut room, &[2, 3], max_queue / 2, QUEUED.min(max_queue / 2))
        .map_err(|f| f.context(scene_of(0)))?;
    let queued = bytes.len();
    let scene = scene_of(queued);
    let sent = Instant::now();
    target.signal(libc::SIGTERM, "sends the server SIGTERM")?;
    let deadline = sent + EXIT_DEADLINE;
    let mut heard: Vec<Result<(Vec<u8>, Closed)>> = room.users[..3]
        .iter_mut()
        .map(|u| read_until_closed_by(u, deadline))
        .collect();
    let ended = target.wait_for_exit(deadline.saturating_duration_since(Instant::now()));
    let took = sent.elapsed();
    let context = |f: Failure| f.context(format!("{scene}; then the harness sent SIGTERM"));
    killed_by_the_signal(target, &ended, "SIGTERM").map_err(context)?;
    still_running(target, &ended, "SIGTERM").map_err(context)?;
    let late = heard.pop().expect("user 3");
    for (user, got) in room.users.iter_mut().zip(heard) {
        let (got, how) = got.map_err(context)?;
        expect_goodbye(user, &got, how, "SIGTERM").map_err(context)?;
    }
    let user3 = &mut room.users[2];
    let (got, how) = late.map_err(context)?;
    if !got.starts_with(&bytes) {
        let mut lines = vec![format!(
            "user 3 expected the {queued} bytes queued for it, then a goodbye line, then end of file"
        )];
        lines.extend(explain_difference(&bytes, &got[..got.len().min(queued)]));
        lines.push(HANDLE_IT.to_string());
        return Err(context(user3.fail(lines.join("\n"))));
    }
    expect_goodbye(user3, &got[queued..], how, "SIGTERM").map_err(|f| {
        context(f.context(format!("user 3 received all {queued} queued bytes first")))
    })?;
    exited_0(target, ended, took, "SIGTERM").map_err(context)
}

/// Reads until the server closes the connection or `deadline` passes.
fn read_until_closed_by(user: &mut Client, deadline: Instant) -> Result<(Vec<u8>, Closed)> {
    user.set_timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10)),
    );
    user.read_until_closed()
}

/// The first thing to say if the signal simply killed the server.
fn killed_by_the_signal(target: &Target, ended: &Option<Ended>, signame: &str) -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(Ended::Status(st)) = ended {
        if st.signal().is_some() {
            return Err(target.fail(format!(
                "the harness sent {signame}, and the server {}: it does not handle the signal, so its users get no goodbye and their queued output is lost\n{HANDLE_IT}",
                describe_status(st)
            )));
        }
    }
    Ok(())
}

/// The second thing to say: the server did not exit at all.
fn still_running(target: &Target, ended: &Option<Ended>, signame: &str) -> Result<()> {
    if ended.is_none() {
        return Err(target.fail(format!(
            "the server was still running {} s after {signame}\n{HANDLE_IT}",
            EXIT_DEADLINE.as_secs()
        )));
    }
    Ok(())
}

/// What a user must have received: at least one line (the goodbye), then
/// a clean end of file.
fn expect_goodbye(user: &mut Client, got: &[u8], how: Closed, signame: &str) -> Result<()> {
    let name = user.name().to_string();
    if got.is_empty() || !got.ends_with(b"\n") {
        return Err(user.fail(format!(
            "after {signame}, {name} expected a line saying the server is shutting down, then end of file; it received {}, then {}\n{HANDLE_IT}",
            if got.is_empty() {
                "nothing".to_string()
            } else {
                preview(got)
            },
            ending(how)
        )));
    }
    if how == Closed::Reset {
        return Err(user.fail(format!(
            "after {signame}, {name} received {}, then a reset instead of end of file (a reset may destroy what was just written)\n{HANDLE_IT}",
            preview(got)
        )));
    }
    Ok(())
}

fn ending(how: Closed) -> &'static str {
    match how {
        Closed::Eof => "end of file",
        Closed::Reset => "a reset",
    }
}

/// The server must have exited, with status 0.
fn exited_0(target: &Target, ended: Option<Ended>, took: Duration, signame: &str) -> Result<()> {
    match ended {
        None => still_running(target, &None, signame),
        Some(Ended::Status(st)) if st.success() => {
            target.note(format!(
                "the server exited with status 0, {} after {signame}",
                secs(took)
            ));
            Ok(())
        }
        Some(Ended::Status(st)) => Err(target.fail(format!(
            "after {signame} the server {}; a shutdown that was asked for is not an error: exit with status 0",
            describe_status(&st)
        ))),
        Some(Ended::Gone) => {
            target.note(format!(
                "the server was gone, {} after {signame} (its exit status is its parent's to see, not the harness's)",
                secs(took)
            ));
            Ok(())
        }
    }
}

/// Three users and one who never reads (the server holds bytes for it,
/// see `checks::hold_bytes`), then
/// SIGTERM: the three get the goodbye and end of file at once, a new client
/// cannot connect (the listener is closed at once), and while the server
/// still waits for the fourth it holds four descriptors fewer than with
/// everyone in (three users and the listener): it closed each connection
/// itself, not by exiting. Then it exits with status 0 within 5 s.
pub fn closes_every_connection_itself_then_exits_0(target: &Target) -> Result<()> {
    target.need_pid("sends the server SIGTERM")?;
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    room.join_with(&|t| Client::connect_with_receive_buffer(t, SMALL_RCVBUF))?;
    // The server holds bytes for user 4 whatever the kernel's buffers.
    let most = target.max_queue().map_or(QUEUED, |q| q / 2);
    super::hold_bytes(&mut room, &[3], most, QUEUED)?;
    let with_everyone = target.open_fds();
    // Before the signal: the server may handle it before kill(2) returns.
    let sent = Instant::now();
    target.signal(libc::SIGTERM, "sends the server SIGTERM")?;
    let deadline = sent + EXIT_DEADLINE;
    for u in &mut room.users[..3] {
        let (got, how) = read_until_closed_by(u, deadline)
            .map_err(|f| f.context("the harness sent the server SIGTERM"))?;
        expect_goodbye(u, &got, how, "SIGTERM")?;
    }
    if std::net::TcpStream::connect_timeout(&target.socket_addr(), EXIT_DEADLINE).is_ok() {
        // Let it finish first, so the failure shows how it ended.
        let _ = target.wait_for_exit(EXIT_DEADLINE.saturating_sub(sent.elapsed()));
        return Err(target.fail(
            "after SIGTERM a new client could still connect: close the listener at once, \
             so nobody new joins a room that is shutting down",
        ));
    }
    if let Some(all) = with_everyone {
        let expected = all.saturating_sub(4);
        let mut now = None;
        let seen = super::settle(Duration::from_millis(1500), || {
            now = target.open_fds();
            now.filter(|&n| n <= expected)
        });
        // Gone already is fine too: nothing was left to count.
        if seen.is_none() && target.wait_for_exit(Duration::ZERO).is_none() {
            return Err(target.fail(format!(
                "with 4 users in, the server had {all} descriptors open; after SIGTERM, while it still waits for the user who never reads, \
                 it should hold {expected} (less the 3 users who got their goodbye, less the listener), but holds {}\n\
                 close each connection yourself once its goodbye is written, and the listener at once",
                now.map_or("an unknown number".to_string(), |n| n.to_string())
            )));
        }
    }
    let ended = target.wait_for_exit(EXIT_DEADLINE.saturating_sub(sent.elapsed()));
    let took = sent.elapsed();
    killed_by_the_signal(target, &ended, "SIGTERM")?;
    exited_0(target, ended, took, "SIGTERM")
}
