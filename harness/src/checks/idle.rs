//! idle (step7 on): `--idle-timeout SECS` disconnects a user who has sent
//! nothing for that long, after one line saying why. Sending is what
//! counts: a user who only reads is idle too. Users who talk are never
//! disconnected. The harness starts the server with `--idle-timeout 1`.
//!
//! Timing is checked generously: the line may come no earlier than 0.9 of
//! the timeout (a server may not kick early) and no later than the timeout
//! plus 2 s (a server that checks once a second is fine).

use std::time::{Duration, Instant};

use super::chat::Room;
use super::secs;
use crate::text::preview;
use crate::{Client, Closed, Result, Target};

super::declare! { $ CHECKS for Idle, tests idle:
    disconnects_a_silent_user_with_one_line: "a user who sends nothing gets one line after --idle-timeout, then end of file; the room still works", [IdleTimeout];
    keeps_users_who_talk_connected: "two users who each send a line every 0.3 x --idle-timeout, for 3 x --idle-timeout, stay connected and get every line", [IdleTimeout];
    counts_a_user_who_only_reads_as_idle: "a user who only reads while another talks is idle: it gets one line, then end of file, and the talker stays", [IdleTimeout];
}

/// How late after the timeout the line may come.
const SLACK: Duration = Duration::from_secs(2);

/// How early before the timeout the line may come, as a share of it.
const EARLY: f64 = 0.9;

/// What the server sent an idle user must be: one non-empty line, then a
/// clean end of file.
fn expect_one_line_then_eof(user: &mut Client, got: &[u8], how: Closed) -> Result<()> {
    let lines = got.iter().filter(|&&b| b == b'\n').count();
    if got.len() < 2 || !got.ends_with(b"\n") || lines != 1 {
        return Err(user.fail(format!(
            "{} expected one line saying why it is disconnected, then end of file; it received {}",
            user.name(),
            if got.is_empty() {
                "nothing".to_string()
            } else {
                preview(got)
            }
        )));
    }
    if how == Closed::Reset {
        return Err(user.fail(format!(
            "{} received {}, then a reset instead of end of file (a reset may destroy the line): close the connection normally",
            user.name(),
            preview(got)
        )));
    }
    Ok(())
}

/// Fails if the line came before the timeout (`silent` is how long the
/// user had been silent when it arrived, at least).
fn not_early(user: &Client, silent: Duration, timeout: Duration) -> Result<()> {
    if silent < timeout.mul_f64(EARLY) {
        return Err(user.fail(format!(
            "{} was told to go after being silent {}, before the idle timeout of {}",
            user.name(),
            secs(silent),
            secs(timeout)
        )));
    }
    Ok(())
}

/// One user connects and says nothing.
pub fn disconnects_a_silent_user_with_one_line(target: &Target) -> Result<()> {
    let timeout = target.idle_timeout()?;
    // Before connecting: the server may accept the user (and start its
    // clock) before connect() returns here.
    let start = Instant::now();
    let mut user = Client::connect(target)?.named("user 1");
    user.set_timeout(timeout + SLACK);
    let line = user.read_line().map_err(|f| {
        f.context(format!(
            "user 1 connected and sent nothing; with --idle-timeout {}, the server should tell it why and disconnect it after {}",
            timeout.as_secs_f64(),
            secs(timeout)
        ))
    })?;
    let at = start.elapsed();
    not_early(&user, at, timeout)?;
    user.set_timeout(SLACK);
    let (mut got, how) = user.read_until_closed()?;
    got.splice(0..0, line);
    expect_one_line_then_eof(&mut user, &got, how)?;
    target.note(format!(
        "a silent user was told {} after {}",
        preview(&got),
        secs(at)
    ));
    // The room still works.
    let mut room = Room::new(target);
    for _ in 0..2 {
        room.join()?;
    }
    room.say(1, b"is the idle user gone?\n")?;
    room.expect_quiet()
}

/// Two users take turns, each sending every 0.3 x the timeout.
pub fn keeps_users_who_talk_connected(target: &Target) -> Result<()> {
    let timeout = target.idle_timeout()?;
    let gap = timeout.mul_f64(0.3);
    let mut room = Room::new(target);
    for _ in 0..2 {
        room.join()?;
    }
    let start = Instant::now();
    for round in 1..=10 {
        let talk = room
            .say(0, format!("tick {round} from user 1\n").as_bytes())
            .and_then(|()| room.say(1, format!("tock {round} from user 2\n").as_bytes()));
        talk.map_err(|f| {
            f.context(format!(
                "users 1 and 2 each send a line every {}; {} after they joined, in round {round}: \
                 with --idle-timeout {}, neither is ever idle, so neither may be disconnected",
                secs(gap),
                secs(start.elapsed()),
                timeout.as_secs_f64()
            ))
        })?;
        std::thread::sleep(gap);
    }
    room.expect_quiet()
}

/// User 1 talks every 0.3 x the timeout; user 2 only reads. User 2 must
/// get user 1's lines, then one line of its own, then end of file.
pub fn counts_a_user_who_only_reads_as_idle(target: &Target) -> Result<()> {
    let timeout = target.idle_timeout()?;
    let gap = timeout.mul_f64(0.3);
    let mut room = Room::new(target);
    room.join()?;
    // User 2's last bytes are its greeting, sent during the join.
    let before_join = Instant::now();
    room.join()?;
    let joined = Instant::now();
    let (first, second) = room.users.split_at_mut(1);
    let (talker, listener) = (&mut first[0], &mut second[0]);
    let deadline = joined + timeout + SLACK;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut relayed = 0;
    let mut kicked_at = None;
    let how = loop {
        let tick = format!("tick {} from user 1\n", sent.len() + 1).into_bytes();
        talker.send(&tick).map_err(|f| {
            f.context("user 1 sends a line every 0.3 x --idle-timeout and must stay connected")
        })?;
        sent.push(tick);
        let (got, ended) = listener.read_for(gap)?;
        buf.extend(got);
        // Take user 1's lines off the front, in order.
        while relayed < sent.len() && buf.starts_with(&sent[relayed]) {
            buf.drain(..sent[relayed].len());
            relayed += 1;
        }
        let partial = relayed < sent.len() && sent[relayed].starts_with(&buf);
        if !buf.is_empty() && !partial && kicked_at.is_none() {
            kicked_at = Some(Instant::now());
        }
        if let Some(how) = ended {
            kicked_at.get_or_insert_with(Instant::now);
            break how;
        }
        if Instant::now() >= deadline {
            return Err(listener.fail(format!(
                "user 2 only reads: its last line was its greeting, sent {} ago, and since then it received {relayed} lines from user 1\n\
                 with --idle-timeout {}, a user who sends nothing is idle even while it receives: it should have been told why and disconnected after {}; \
                 the connection is still open{}",
                secs(joined.elapsed()),
                timeout.as_secs_f64(),
                secs(timeout),
                if buf.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} arrived, which is not user 1's next line)", preview(&buf))
                }
            )));
        }
    };
    let silent = kicked_at
        .expect("set on the way out")
        .duration_since(before_join);
    not_early(listener, silent, timeout)?;
    expect_one_line_then_eof(listener, &buf, how)
        .map_err(|f| f.context(format!("user 2 received user 1's {relayed} lines, then:")))?;
    target.note(format!(
        "a user who only read was told {} after {} of silence",
        preview(&buf),
        secs(silent)
    ));
    // User 1 is still there, and the room works.
    talker.expect_silence(Duration::from_millis(50)).map_err(|f| {
        f.context("user 1 sent a line every 0.3 x --idle-timeout, so it is not idle and must stay connected")
    })?;
    drop(room.users.remove(1));
    room.join()?;
    room.say(0, b"still here\n")?;
    room.expect_quiet()
}
