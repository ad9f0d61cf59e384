//! limits (step8): out of descriptors, a server cannot accept. accept()
//! fails (EMFILE, or ENFILE for the whole system) and the connection stays
//! in the listen queue, so the listening socket stays readable: a server
//! that keeps watching it is woken at once, forever, and spins (steps 2-5
//! write `accept: Too many open files` to stderr megabytes a second). The
//! server must stop watching the listener until a descriptor frees, say so
//! once, and then accept the clients who waited.
//!
//! The harness starts the server with RLIMIT_NOFILE 32 and `--max-users
//! 64`, so the descriptors run out before the room is full. It fills the
//! server with users until one is not heard within a second (it waits in
//! the listen queue), and connects one more.

use std::time::{Duration, Instant};

use super::chat::{Attempt, Room, Waiting};
use super::{expect_calm, millis, secs};
use crate::text::preview;
use crate::{Client, Result, Target};

/// The descriptor limit the harness starts the server with.
pub const FD_LIMIT: u64 = 32;

super::declare! { $ CHECKS for Limits, tests limits:
    stays_calm_while_out_of_descriptors: "with no descriptor left and 2 clients waiting to be accepted, the server uses almost no CPU and writes at most a few lines", [Pid];
    serves_waiting_clients_once_descriptors_free: "when users leave, the clients who waited to be accepted meanwhile get in and are heard", [];
}

/// A newcomer not heard within this is waiting to be accepted.
const UNHEARD: Duration = Duration::from_secs(1);

/// How many clients wait while the server is out of descriptors.
const WAITING: usize = 2;

/// How long the waiting server is watched.
const WATCH: Duration = Duration::from_millis(1500);

/// How many lines the server may write meanwhile.
const FEW_LINES: u64 = 5;

/// Joins before the harness gives up finding the limit.
const MAX_JOINS: usize = 1000;

/// How long a waiting client may take to get in once a user left.
const ADMIT_PATIENCE: Duration = Duration::from_secs(5);

/// A server out of descriptors, with clients waiting.
struct Exhausted {
    room: Room,
    waiting: Vec<Waiting>,
}

/// Joins users until one is not heard: the server can accept no more.
/// Then one more client connects and introduces itself.
fn exhaust(target: &Target) -> Result<Exhausted> {
    let limit = match target.fd_limit() {
        Some(n) => format!("started with RLIMIT_NOFILE {n}"),
        None => "started with a low descriptor limit (ulimit -n)".to_string(),
    };
    let mut room = Room::new(target);
    let mut waiting = Vec::new();
    while waiting.is_empty() {
        if room.users.len() >= MAX_JOINS {
            return Err(target.fail(format!(
                "{MAX_JOINS} users joined and the server still accepted more: start it with a low descriptor limit (e.g. ulimit -n {FD_LIMIT})"
            )));
        }
        match room.attempt(&Client::connect, UNHEARD)? {
            Attempt::In => {}
            Attempt::Full(line) => {
                return Err(target.fail(format!(
                    "the server ({limit}) refused user {} with {}: the room filled before the descriptors ran out\n\
                     start the server with --max-users above its descriptor limit (the harness uses --max-users 64)",
                    room.users.len() + 1,
                    preview(&line)
                )));
            }
            Attempt::Unheard(w) => waiting.push(*w),
        }
    }
    while waiting.len() < WAITING {
        match room.attempt(&Client::connect, Duration::ZERO)? {
            Attempt::Unheard(w) => waiting.push(*w),
            Attempt::In => {
                return Err(target.fail(format!(
                    "user {} was not heard within {} s, so the server seemed out of descriptors, yet the next client got in at once",
                    room.users.len(),
                    UNHEARD.as_secs()
                )))
            }
            Attempt::Full(line) => {
                return Err(target.fail(format!(
                    "the server refused a client with {} while out of descriptors; let it wait in the listen queue instead",
                    preview(&line)
                )))
            }
        }
    }
    Ok(Exhausted { room, waiting })
}

/// What the check did, for failure messages.
fn scene(target: &Target, full: &Exhausted) -> String {
    let limit = match target.fd_limit() {
        Some(n) => format!("RLIMIT_NOFILE {n}"),
        None => "its descriptor limit".to_string(),
    };
    format!(
        "{} users joined the server ({limit}); the next one was not accepted within {} s, so it is out of descriptors; {} clients wait to be accepted",
        full.room.users.len(),
        UNHEARD.as_secs(),
        full.waiting.len()
    )
}

/// The server is out of descriptors and clients wait: it must sleep, not
/// spin, and not flood its stderr.
pub fn stays_calm_while_out_of_descriptors(target: &Target) -> Result<()> {
    target.need_pid("watches the server's CPU use")?;
    let mut full = exhaust(target)?;
    let scene = scene(target, &full);
    let written = target.stderr_written();
    let waiting = format!(
        "while {} clients waited to be accepted and the server had no descriptor left",
        full.waiting.len()
    );
    let measured = expect_calm(
        target,
        WATCH,
        &waiting,
        "a server that cannot accept must stop watching the listening socket until a descriptor frees \
         (with kqueue: EV_DISABLE, then EV_ENABLE): the waiting connections keep it readable, so every wait returns at once",
    )
    .map_err(|f| f.context(scene.clone()))?;
    if measured.is_none() {
        return Err(target.fail(format!(
            "{scene}\ncannot measure the server's CPU use on this system ({})",
            crate::process::how_cpu_measured()
        )));
    }
    if let (Some((lines0, bytes0)), Some((lines1, bytes1))) = (written, target.stderr_written()) {
        let (lines, bytes) = (lines1 - lines0, bytes1 - bytes0);
        target.note(format!(
            "stderr {waiting}: {lines} lines ({bytes} bytes) in {}",
            secs(WATCH)
        ));
        if lines > FEW_LINES {
            let stderr = target.stderr().unwrap_or_default();
            let last = stderr.lines().last().unwrap_or("");
            return Err(target.fail(format!(
                "{scene}\n{waiting}, the server wrote {lines} lines ({bytes} bytes) on stderr in {}, the last {}\n\
                 say once that accepting stops, and once that it resumes",
                secs(WATCH),
                preview(last.as_bytes())
            )));
        }
    } else {
        target.note("stderr not watched: the harness did not start the server");
    }
    // The users inside were served all along.
    let last = full.room.users.len() - 1;
    full.room.say(last, b"we are still talking\n")
}

/// Users leave one by one; after each departure, the client that waited
/// longest must get in and be heard.
pub fn serves_waiting_clients_once_descriptors_free(target: &Target) -> Result<()> {
    let Exhausted {
        mut room,
        mut waiting,
    } = exhaust(target)?;
    let joined = room.users.len();
    waiting.reverse();
    while let Some(next) = waiting.pop() {
        // Someone other than user 1 (who confirms joins) leaves.
        let leaver = room.users.pop().expect("a full room");
        let left = leaver.name().to_string();
        drop(leaver);
        let name = next.client.name().to_string();
        let (since, left_at) = (next.since, Instant::now());
        let waited = left_at - since;
        match room.admit(next, ADMIT_PATIENCE)? {
            Attempt::In => target.note(format!(
                "{name} waited {} in the listen queue, and was heard {} after {left} left",
                secs(since.elapsed()),
                millis(left_at.elapsed())
            )),
            Attempt::Full(line) => {
                return Err(target.fail(format!(
                    "{joined} users filled the server's descriptors; {left} left; {name}, which had waited {} to be accepted, was then refused with {}",
                    secs(waited),
                    preview(&line)
                )))
            }
            Attempt::Unheard(w) => {
                return Err(room
                    .unheard_because(
                        &w,
                        "when a descriptor frees, watch the listening socket again (with kqueue: EV_ENABLE) and accept the clients who waited",
                    )
                    .context(format!(
                        "{joined} users filled the server's descriptors and {name} waited to be accepted; \
                         {left} left {} ago, freeing a descriptor, but {name} was not accepted",
                        secs(left_at.elapsed())
                    )));
            }
        }
    }
    let last = room.users.len() - 1;
    room.say(last, b"I waited my turn\n")?;
    room.expect_quiet()
}
