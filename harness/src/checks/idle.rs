//! idle (step7 on): `--idle-timeout SECS` disconnects a user who has sent
//! nothing for that long, after one line saying why. Sending is what
//! counts: a user who only reads is idle too. Users who talk are never
//! disconnected. The harness starts the server with `--idle-timeout 3`.
//!
//! Timing is checked as values: the line comes no earlier than the timeout
//! and no later than 1.5 x the timeout, both measured from the user's last
//! byte (the early bound from before the harness sent it, the late bound
//! from after, so the harness's own delays never fail a server). A server
//! that sweeps once a second kicks within a second of the timeout: inside
//! 1.5 x for a timeout of 2 s or more, which is why the harness uses 3 s.
//! The line, if it names a duration ("nothing for 3 s"), names the timeout.

use std::time::{Duration, Instant};

use super::chat::Room;
use super::secs;
use crate::text::preview;
use crate::{Client, Closed, Result, Target};

super::declare! { $ CHECKS for Idle, tests idle:
    disconnects_a_silent_user_with_one_line: "a user who sends nothing gets one line between 1 and 1.5 x --idle-timeout after connecting (naming no other timeout), then end of file; the room still works", [IdleTimeout, CpuTime];
    keeps_users_who_talk_connected: "two users who each send a line every 0.3 x --idle-timeout, for 3 x --idle-timeout, stay connected and get every line", [IdleTimeout];
    counts_a_user_who_only_reads_as_idle: "a user who only reads while another talks is idle: between 1 and 1.5 x --idle-timeout after its last byte it gets one line (naming no other timeout), then end of file, and the talker stays", [IdleTimeout];
}

/// How late the line may come, as a multiple of the timeout.
const LATE: f64 = 1.5;

/// How often a reader looks for the kick while another user talks.
const SLICE: Duration = Duration::from_millis(20);

/// How long past the late bound a read waits, so a late line is seen
/// (and reported with its time) rather than missed.
const GRACE: Duration = Duration::from_secs(2);

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

/// Fails if the line came before the timeout (`at_most` is how long the
/// user had been silent when it arrived, at most: timed from before its
/// last byte was sent) or after 1.5 x the timeout (`at_least`: timed from
/// after).
fn on_time(user: &Client, at_most: Duration, at_least: Duration, timeout: Duration) -> Result<()> {
    if at_most < timeout {
        return Err(user.fail(format!(
            "{} was told to go after being silent {}, before the idle timeout of {}",
            user.name(),
            secs(at_most),
            secs(timeout)
        )));
    }
    let late = timeout.mul_f64(LATE);
    if at_least > late {
        return Err(user.fail(format!(
            "{} was told to go after being silent {}; with --idle-timeout {}, the line should come between {} and {} of silence\n\
             a server that kicks late keeps idle users for longer than it was told: check everyone's clock often enough \
             (a tick of at most half the timeout), and measure silence from the user's last byte",
            user.name(),
            secs(at_least),
            timeout.as_secs_f64(),
            secs(timeout),
            secs(late)
        )));
    }
    Ok(())
}

/// The durations a line names, in seconds: "3 s", "3s", "3 seconds",
/// "1.5 sec", "3000 ms".
fn durations_named(line: &str) -> Vec<f64> {
    let text = line.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let from = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let Ok(n) = text[from..i].trim_end_matches('.').parse::<f64>() else {
            continue;
        };
        let unit: String = text[i..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let scale = match unit.as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "ms" | "msec" | "millisecond" | "milliseconds" => 0.001,
            "min" | "mins" | "minute" | "minutes" => 60.0,
            _ => continue,
        };
        found.push(n * scale);
    }
    found
}

/// Fails if the line names a duration other than the timeout.
fn names_the_timeout(user: &Client, line: &[u8], timeout: Duration) -> Result<()> {
    let text = String::from_utf8_lossy(line);
    let wrong: Vec<f64> = durations_named(&text)
        .into_iter()
        .filter(|d| (d - timeout.as_secs_f64()).abs() > 0.001)
        .collect();
    if let Some(d) = wrong.first() {
        return Err(user.fail(format!(
            "{} was told {}: that names {d} s, but the server runs with --idle-timeout {}\n\
             the line must tell the user the truth: name the timeout the server was given (or no duration at all)",
            user.name(),
            preview(line),
            timeout.as_secs_f64()
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
    let connected = Instant::now();
    user.set_timeout(timeout.mul_f64(LATE) + GRACE);
    // The server has nothing to do until the timeout: it must sleep.
    let (line, calm) = std::thread::scope(|s| {
        let calm = s.spawn(|| {
            super::expect_calm(
                target,
                timeout.mul_f64(0.8),
                "while a silent user waited for its idle timeout",
                super::CALM_ADVICE,
            )
        });
        let line = user.read_line();
        let arrived = Instant::now();
        (
            line.map(|l| (l, arrived)),
            calm.join().expect("the CPU watcher"),
        )
    });
    let line = line.map_err(|f| {
        f.context(format!(
            "user 1 connected and sent nothing; with --idle-timeout {}, the server should tell it why and disconnect it after {}",
            timeout.as_secs_f64(),
            secs(timeout)
        ))
    })?;
    let (line, arrived) = line;
    calm?;
    let at = arrived.duration_since(start);
    on_time(&user, at, arrived.duration_since(connected), timeout)?;
    user.set_timeout(GRACE);
    let (mut got, how) = user.read_until_closed()?;
    got.splice(0..0, line);
    expect_one_line_then_eof(&mut user, &got, how)?;
    names_the_timeout(&user, &got, timeout)?;
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
    // The greeting was sent during the join: after `before_join`, before
    // `joined`.
    let (first, second) = room.users.split_at_mut(1);
    let (talker, listener) = (&mut first[0], &mut second[0]);
    let deadline = joined + timeout.mul_f64(LATE) + GRACE;
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
        // Read in short slices until the next tick, so the kick's arrival
        // is timed to within one slice.
        let next_tick = Instant::now() + gap;
        let mut ended = None;
        while ended.is_none() && Instant::now() < next_tick {
            let slice = next_tick
                .saturating_duration_since(Instant::now())
                .min(SLICE);
            let (got, how) = listener.read_for(slice)?;
            buf.extend(got);
            ended = how;
            // Take user 1's lines off the front, in order.
            while relayed < sent.len() && buf.starts_with(&sent[relayed]) {
                buf.drain(..sent[relayed].len());
                relayed += 1;
            }
            let partial = relayed < sent.len() && sent[relayed].starts_with(&buf);
            if !buf.is_empty() && !partial && kicked_at.is_none() {
                kicked_at = Some(Instant::now());
            }
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
    let kicked_at = kicked_at.expect("set on the way out");
    let silent = kicked_at.duration_since(before_join);
    on_time(listener, silent, kicked_at.duration_since(joined), timeout)?;
    expect_one_line_then_eof(listener, &buf, how)
        .map_err(|f| f.context(format!("user 2 received user 1's {relayed} lines, then:")))?;
    names_the_timeout(listener, &buf, timeout)?;
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
