//! urgent-echo (step3, step4) and urgent-chat (step5 on): one byte of
//! urgent data (send with MSG_OOB) must not stop the server from reading
//! what follows, nor make it spin.
//!
//! TCP sends the urgent byte in the ordinary stream but marks it; a
//! receiver that did not set SO_OOBINLINE never reads it with read(): the
//! byte is taken out, and read() carries on after it. What trips event
//! loops is that the socket also reports an "exceptional condition"
//! (poll's POLLPRI, select's exceptfds) until the byte is read with
//! recv(MSG_OOB): a loop that wakes on it without reading the byte, or
//! that takes the wake-up for "nothing to read", wakes again at once,
//! forever, and may never get to the bytes after the mark.
//!
//! The urgent byte itself may come back or not (a server with SO_OOBINLINE
//! reads it inline); everything else must, in order.

use std::time::Duration;

use super::chat::Room;
use super::expect_calm;
use crate::text::preview;
use crate::{Client, Result, Target};

super::declare! { $ ECHO_CHECKS for UrgentEcho, tests urgent_echo:
    echoes_the_bytes_after_an_urgent_byte: "a line, one urgent (MSG_OOB) byte, another line: both lines come back, and another client is still served", [];
    stays_idle_after_an_urgent_byte = echo_stays_idle_after_an_urgent_byte: "after an urgent byte the server uses almost no CPU (it is not woken again and again)", [CpuTime];
}

super::declare! { $ CHAT_CHECKS for UrgentChat, tests urgent_chat:
    relays_the_bytes_after_an_urgent_byte: "a user sends a line, one urgent (MSG_OOB) byte, another line: the others get both lines, and the room keeps talking", [];
    stays_idle_after_an_urgent_byte = chat_stays_idle_after_an_urgent_byte: "after an urgent byte the server uses almost no CPU (it is not woken again and again)", [CpuTime];
}

const BEFORE: &[u8] = b"before the mark\n";
const URGENT: u8 = b'!';
const AFTER: &[u8] = b"after the mark\n";

/// How long the server is watched for spinning.
const WATCH: Duration = Duration::from_secs(1);

const SPIN_ADVICE: &str = "an urgent byte leaves the socket reporting an exceptional condition (POLLPRI) until it is read with recv(MSG_OOB); \
     an event loop that is woken by it and does not read it, or that takes the wake-up for \"nothing to read\", is woken again at once, forever";

/// What the sender did, for failure messages.
fn what_was_sent(sender: &str) -> String {
    format!(
        "{sender} sent {}, then one urgent byte {} with send(MSG_OOB), then {}",
        preview(BEFORE),
        preview(&[URGENT]),
        preview(AFTER)
    )
}

/// The urgent byte and the line after it. Callers first have the line
/// before the mark come back, so the server has certainly read it.
fn send_across_the_mark(sender: &mut Client) -> Result<()> {
    sender.send_urgent(URGENT)?;
    sender.send(AFTER)
}

/// Expects the bytes after the mark at `reader`, the urgent byte allowed
/// (once, first) for a server that reads it inline.
fn expect_after_the_mark(reader: &mut Client, sender: &str) -> Result<()> {
    reader.expect_bytes_allowing(URGENT, AFTER).map_err(|f| {
        f.context(format!(
            "{}\nthe bytes after an urgent byte arrive like any others: read() skips the urgent byte and carries on",
            what_was_sent(sender)
        ))
    })
}

/// A client whose line before the mark came back, and who then sent the
/// urgent byte and the line after it.
fn client_across_the_mark(target: &Target) -> Result<Client> {
    let mut c = Client::connect(target)?;
    c.send(BEFORE)?;
    c.expect_bytes(BEFORE)?;
    send_across_the_mark(&mut c)?;
    Ok(c)
}

/// A room of `n` whose user 1's line before the mark reached the others,
/// and who then sent the urgent byte and the line after it.
fn room_across_the_mark(target: &Target, n: usize) -> Result<Room> {
    let mut room = Room::new(target);
    for _ in 0..n {
        room.join()?;
    }
    room.say(0, BEFORE)?;
    send_across_the_mark(&mut room.users[0])?;
    Ok(room)
}

/// A client connecting afterwards is still echoed.
fn another_client_is_served(target: &Target) -> Result<()> {
    let mut other = Client::connect(target)?.named("another client");
    other.send_line("am I still served?")?;
    other.expect_line("am I still served?")
}

/// A line, an urgent byte, a line: both lines echo; another client is
/// echoed afterwards.
pub fn echoes_the_bytes_after_an_urgent_byte(target: &Target) -> Result<()> {
    let mut c = client_across_the_mark(target)?;
    expect_after_the_mark(&mut c, "client")?;
    another_client_is_served(target)
}

/// The server's CPU use after an urgent byte, while nothing else happens.
pub fn echo_stays_idle_after_an_urgent_byte(target: &Target) -> Result<()> {
    let _c = client_across_the_mark(target)?;
    expect_calm(
        target,
        WATCH,
        "after a client sent one urgent byte (and nothing more)",
        SPIN_ADVICE,
    )?;
    another_client_is_served(target)
}

/// Three users; user 1 sends across the mark; users 2 and 3 get both lines.
pub fn relays_the_bytes_after_an_urgent_byte(target: &Target) -> Result<()> {
    let mut room = room_across_the_mark(target, 3)?;
    for i in 1..3 {
        expect_after_the_mark(&mut room.users[i], "user 1")?;
    }
    room.say(1, b"did the mark stop anything?\n")?;
    room.say(0, b"no\n")?;
    room.expect_quiet()
}

/// The server's CPU use after an urgent byte in a chat room.
pub fn chat_stays_idle_after_an_urgent_byte(target: &Target) -> Result<()> {
    let mut room = room_across_the_mark(target, 2)?;
    expect_calm(
        target,
        WATCH,
        "after a user sent one urgent byte (and nothing more)",
        SPIN_ADVICE,
    )?;
    room.say(1, b"still there?\n")
}
