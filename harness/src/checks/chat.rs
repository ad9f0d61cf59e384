//! chat: what a user sends reaches every other user exactly, and
//! never the sender.
//!
//! Joining is synchronised without sleeping: a new user sends a line, and
//! once every earlier user has received it, the server has certainly
//! accepted and registered the newcomer. A server removes a leaving user
//! only when it gets round to the EOF, so a client connecting right after
//! someone left may still find the room full: joins retry for a while.

use std::time::{Duration, Instant};

use super::{expect_calm, expect_fds_back, expect_fds_back_because, payload, CALM_ADVICE};
use crate::text::{explain_difference, preview};
use crate::{Client, Failure, Result, Target};

super::declare! { $ CHECKS for Chat, tests chat:
    relays_each_message_to_every_other_user: "with 3 users, each message reaches exactly the other two, byte for byte", [];
    refuses_a_client_when_the_room_is_full: "with the room full, the next 3 clients each get a line saying 'full' and EOF, and leave no descriptor open; the others keep talking", [FdCount];
    gives_a_freed_slot_to_the_next_client: "when a user of a full room leaves, the next client gets the slot", [];
    removes_a_user_who_resets: "a user who resets mid-conversation is removed and nobody else notices", [];
    relays_64_kib_whole: "a 64 KiB message arrives whole at every other user", [];
    relays_binary_bytes_unchanged: "every byte value, NUL included, passes through unchanged", [];
    survives_500_join_leave_cycles_without_leaking: "500 users join and leave; the server's open descriptors end where they started", [FdCount];
    stays_calm_while_the_room_is_quiet: "3 users in the room and nobody talking for 1 s: the server uses next to no CPU", [CpuTime];
    relays_the_last_words_of_a_leaving_user: "a user sends a line and shuts down writing in one go: the others still get the line, and the room goes on", [];
}

/// How long a join may keep finding the room full while earlier users'
/// departures are processed.
const JOIN_PATIENCE: Duration = Duration::from_secs(5);

/// How long a newcomer's first line may take to reach the room.
const RELAY_PATIENCE: Duration = Duration::from_secs(5);

/// A short wait that proves a negative (nothing was relayed back).
const QUIET: Duration = Duration::from_millis(150);

/// The users the harness has in the room, in joining order.
pub struct Room {
    target: Target,
    pub users: Vec<Client>,
    joined: usize,
}

/// What happened to a client that tried to join.
pub enum Joined {
    /// It is in the room (its sync line reached everyone else).
    In,
    /// The server said the room is full (the line it sent) and closed.
    Full(Vec<u8>),
}

/// A join attempt that may still be waiting to be heard.
pub enum Attempt {
    In,
    Full(Vec<u8>),
    /// Connected and sent its sync line, but within the wait nobody heard
    /// it and the server said nothing: not accepted (yet).
    Unheard(Box<Waiting>),
}

/// A client that connected and introduced itself, but was not heard yet
/// (it may be waiting in the server's accept queue).
pub struct Waiting {
    pub client: Client,
    sync: Vec<u8>,
    /// When it connected.
    pub since: Instant,
    /// How long the last admission waited for its line to be relayed.
    waited: Duration,
}

/// Connects a newcomer (a plain client, or one with a small receive buffer).
pub type Connect<'a> = &'a dyn Fn(&Target) -> Result<Client>;

impl Room {
    pub fn new(target: &Target) -> Room {
        Room {
            target: target.clone(),
            users: Vec::new(),
            joined: 0,
        }
    }

    /// Joins a new user, retrying while the room is (still) full.
    pub fn join(&mut self) -> Result<&mut Client> {
        self.join_with(&Client::connect)
    }

    /// [`Room::join`] with the newcomer connected by `connect`.
    pub fn join_with(&mut self, connect: Connect) -> Result<&mut Client> {
        let deadline = Instant::now() + JOIN_PATIENCE;
        loop {
            match self.try_join_with(connect)? {
                Joined::In => return Ok(self.users.last_mut().expect("just joined")),
                Joined::Full(line) if Instant::now() >= deadline => {
                    return Err(self.target.fail(format!(
                        "user {} was refused with {} although only {} users are in a room of {}",
                        self.joined,
                        preview(&line),
                        self.users.len(),
                        self.target.max_users()
                    )));
                }
                Joined::Full(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// One attempt to join: connect, send a sync line, and wait until every
    /// user already in the room received it (or the server says full).
    pub fn try_join(&mut self) -> Result<Joined> {
        self.try_join_with(&Client::connect)
    }

    fn try_join_with(&mut self, connect: Connect) -> Result<Joined> {
        match self.attempt(connect, RELAY_PATIENCE)? {
            Attempt::In => Ok(Joined::In),
            Attempt::Full(line) => Ok(Joined::Full(line)),
            Attempt::Unheard(w) => Err(self.unheard(&w)),
        }
    }

    /// One attempt to join that may end unheard after `wait` (the server
    /// did not accept the newcomer, or does not relay).
    pub fn attempt(&mut self, connect: Connect, wait: Duration) -> Result<Attempt> {
        self.joined += 1;
        let name = format!("user {}", self.joined);
        let mut newcomer = connect(&self.target)?.named(&name);
        let since = Instant::now();
        if self.users.is_empty() {
            // Nobody can confirm the first user: give a refusal time to
            // arrive instead.
            return match newcomer.read_available(QUIET) {
                Ok(b) if b.is_empty() => {
                    self.users.push(newcomer);
                    Ok(Attempt::In)
                }
                Ok(b) => Ok(refused(&mut newcomer, b)?.into()),
                Err(e) => Err(e.context(format!("{name} joined an empty room"))),
            };
        }
        let sync = format!("{name} is here\n").into_bytes();
        newcomer.send(&sync)?;
        self.admit(
            Waiting {
                client: newcomer,
                sync,
                since,
                waited: Duration::ZERO,
            },
            wait,
        )
    }

    /// Waits up to `wait` for a newcomer's sync line to reach every user,
    /// then completes the join; a newcomer that waited in the server's
    /// accept queue is admitted the same way once it is accepted.
    pub fn admit(&mut self, waiting: Waiting, wait: Duration) -> Result<Attempt> {
        let Waiting {
            client: mut newcomer,
            sync,
            since,
            ..
        } = waiting;
        let name = newcomer.name().to_string();
        let deadline = Instant::now() + wait;
        loop {
            if self.users[0].poll_expect(&sync, Duration::from_millis(10))? {
                break;
            }
            let b = newcomer.read_available(Duration::from_millis(10))?;
            if !b.is_empty() {
                return Ok(refused(&mut newcomer, b)?.into());
            }
            if Instant::now() >= deadline {
                return Ok(Attempt::Unheard(Box::new(Waiting {
                    client: newcomer,
                    sync,
                    since,
                    waited: wait,
                })));
            }
        }
        for u in &mut self.users[1..] {
            u.expect_bytes(&sync)?;
        }
        // The first user welcomes the newcomer. That proves the server
        // writes to the newcomer, and anything relayed to it before (its own
        // line, which a chat server must not send back) shows up first.
        let welcome = format!("{} welcomes {name}\n", self.users[0].name()).into_bytes();
        self.users[0].send(&welcome)?;
        for u in &mut self.users[1..] {
            u.expect_bytes(&welcome)?;
        }
        if let Err(f) = newcomer.expect_bytes(&welcome) {
            let early = newcomer.pending();
            if !early.is_empty() && (sync.starts_with(early) || early.starts_with(&sync)) {
                return Err(newcomer.fail(format!(
                    "{name} received its own line {} back\na chat server relays what a user sends to every other user, never to the sender",
                    preview(&sync)
                )));
            }
            return Err(f);
        }
        self.users.push(newcomer);
        Ok(Attempt::In)
    }

    /// The failure for a newcomer whose first line nobody heard: what the
    /// first user expected, and what (if anything) arrived instead.
    pub fn unheard(&self, w: &Waiting) -> crate::Failure {
        self.unheard_because(
            w,
            "a chat server reads from a user as soon as it accepts the connection, and relays what it reads to every other user, unchanged",
        )
    }

    /// [`Room::unheard`] with other advice.
    pub fn unheard_because(&self, w: &Waiting, advice: &str) -> crate::Failure {
        let first = &self.users[0];
        let mut lines = vec![format!(
            "{} sent its first line {}; {} expected it to be relayed, but it did not arrive within {} s",
            w.client.name(),
            preview(&w.sync),
            first.name(),
            w.waited.as_secs_f64()
        )];
        if first.pending().is_empty() {
            lines.push(format!("{} received nothing", first.name()));
        } else {
            lines.push(format!("{} received something else:", first.name()));
            lines.extend(explain_difference(&w.sync, first.pending()));
        }
        lines.push(advice.to_string());
        first.fail(lines.join("\n"))
    }

    /// User `i` sends `bytes`; every other user must receive exactly them.
    pub fn say(&mut self, i: usize, bytes: &[u8]) -> Result<()> {
        self.users[i].send(bytes)?;
        for (j, u) in self.users.iter_mut().enumerate() {
            if j != i {
                u.expect_bytes(bytes)?;
            }
        }
        Ok(())
    }

    /// Nobody has anything unexpected waiting (the senders got nothing back).
    pub fn expect_quiet(&mut self) -> Result<()> {
        for (i, u) in self.users.iter_mut().enumerate() {
            u.expect_silence(if i == 0 {
                QUIET
            } else {
                Duration::from_millis(10)
            })?;
        }
        Ok(())
    }
}

impl From<Joined> for Attempt {
    fn from(j: Joined) -> Attempt {
        match j {
            Joined::In => Attempt::In,
            Joined::Full(line) => Attempt::Full(line),
        }
    }
}

/// The newcomer received something instead of being relayed: it must be a
/// "full" line followed by EOF.
fn refused(newcomer: &mut Client, first: Vec<u8>) -> Result<Joined> {
    let text = String::from_utf8_lossy(&first).to_lowercase();
    if !text.contains("full") {
        return Err(newcomer.fail(format!(
            "{} had just joined and sent nothing yet, but received {}\n(a chat server sends a new user nothing, or a line saying the room is full)",
            newcomer.name(),
            preview(&first)
        )));
    }
    let rest = newcomer.read_to_eof()?;
    let mut line = first;
    line.extend(rest);
    Ok(Joined::Full(line))
}

/// Three users; each one's message reaches the other two, never itself.
pub fn relays_each_message_to_every_other_user(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    for i in 0..3 {
        room.say(i, format!("message from user {}\n", i + 1).as_bytes())?;
    }
    room.expect_quiet()
}

/// Fill the room; the next 3 clients are each told it is full and
/// closed, the server keeps no descriptor of theirs, and the users inside
/// do not notice.
pub fn refuses_a_client_when_the_room_is_full(target: &Target) -> Result<()> {
    const REFUSED: usize = 3;
    let max = target.max_users();
    let mut room = Room::new(target);
    for _ in 0..max {
        room.join()?;
    }
    // Every user's join was relayed: the server holds their descriptors.
    let before = target.open_fds();
    for n in 1..=REFUSED {
        let mut extra = Client::connect(target)?.named(format!("user {} (one too many)", max + n));
        let line = extra.read_line().map_err(|f| {
            f.context(format!(
                "the room holds {max} users, so the next client should be told it is full"
            ))
        })?;
        if !String::from_utf8_lossy(&line)
            .to_lowercase()
            .contains("full")
        {
            return Err(extra.fail(format!(
                "expected a line saying the room is full, got {}",
                preview(&line)
            )));
        }
        extra.expect_eof()?;
    }
    expect_fds_back_because(
        target,
        before,
        &format!("{REFUSED} clients were refused (the room was full)"),
        "a refused client is a connection like any other: close it once it has its line",
    )?;
    room.say(0, b"still talking\n")?;
    room.say(max - 1, b"me too\n")?;
    room.expect_quiet()
}

/// Three users join and say nothing for a second: an event loop with
/// nothing to do sleeps in its wait. Then the room still talks.
pub fn stays_calm_while_the_room_is_quiet(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    expect_calm(
        target,
        Duration::from_secs(1),
        "with 3 users in the room and nobody talking",
        CALM_ADVICE,
    )?;
    room.say(1, b"still awake?\n")?;
    room.expect_quiet()
}

/// A full room, one user leaves, the next client gets in and is heard.
pub fn gives_a_freed_slot_to_the_next_client(target: &Target) -> Result<()> {
    let max = target.max_users();
    let mut room = Room::new(target);
    for _ in 0..max {
        room.join()?;
    }
    drop(room.users.remove(max / 2));
    room.join().map_err(|f| {
        f.context("a user of the full room left; the next client should get the slot")
    })?;
    let last = room.users.len() - 1;
    room.say(last, b"hello from the new user\n")?;
    room.expect_quiet()
}

/// A user resets (RST) after talking; the others keep talking, and their
/// slots and messages are unaffected.
pub fn removes_a_user_who_resets(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    room.say(1, b"I am about to vanish\n")?;
    room.users.remove(1).reset()?;
    room.say(0, b"did anyone notice?\n")?;
    room.say(1, b"no\n")?;
    room.expect_quiet()?;
    // The slot was freed: a newcomer is relayed to everyone left.
    room.join()?;
    room.say(2, b"welcome\n")
}

/// One 64 KiB message; the other two read concurrently and each gets it
/// whole.
pub fn relays_64_kib_whole(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    let mut big = payload(64 * 1024 - 1, 3)
        .into_iter()
        .map(|b| b'a' + b % 26)
        .collect::<Vec<u8>>();
    big.push(b'\n');
    room.users[0].send(&big)?;
    let (_, others) = room.users.split_at_mut(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = others
            .iter_mut()
            .map(|u| {
                let big = &big;
                s.spawn(move || u.expect_bytes(big))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader thread"))
            .collect::<Result<Vec<()>>>()
    })?;
    room.expect_quiet()
}

/// All 256 byte values, from one user to the others.
pub fn relays_binary_bytes_unchanged(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join()?;
    }
    let all: Vec<u8> = (0..=255u8).collect();
    room.say(2, &all)?;
    room.expect_quiet()
}

/// 500 users join (proven by their sync line) and leave, next to two who
/// stay; no descriptor is left behind.
pub fn survives_500_join_leave_cycles_without_leaking(target: &Target) -> Result<()> {
    let mut room = Room::new(target);
    // Nobody confirms the first user's join: the second's line reaching
    // the first proves the server has accepted both before the count.
    room.join()?;
    room.join()?;
    let baseline = target.open_fds();
    for _ in 0..500 {
        room.join()?;
        drop(room.users.pop());
    }
    expect_fds_back(target, baseline, "500 users joined and left")?;
    room.join()?;
    room.say(2, b"the room still works\n")
        .map_err(|f: Failure| f.context("after 500 join/leave cycles"))
}

/// Bytes sent right before leaving (data and FIN together) still reach
/// everyone: the server goes by read() returning 0, not by EV_EOF alone.
/// Six users say their last words and shut down writing in one burst, so
/// that for some of them bytes and FIN are surely read together.
pub fn relays_the_last_words_of_a_leaving_user(target: &Target) -> Result<()> {
    const LEAVING: usize = 6;
    let mut room = Room::new(target);
    for _ in 0..LEAVING + 2 {
        room.join()?;
    }
    let leaving: Vec<Client> = room.users.drain(2..).collect();
    let mut said = Vec::new();
    for (i, mut user) in leaving.into_iter().enumerate() {
        let words = format!("goodbye from leaver {i}\n");
        user.send(words.as_bytes())?;
        user.shutdown_write()?;
        said.push(words);
    }
    for u in &mut room.users {
        let mut heard = Vec::new();
        while heard.len() < LEAVING {
            let line = u.read_line().map_err(|f| {
                f.context(format!(
                    "{LEAVING} users each sent a line and shut down writing at once (data and FIN together); \
                     {} of their lines arrived: {heard:?}\n\
                     read what a leaving user sent before closing them: EV_EOF can come with bytes still to read",
                    heard.len()
                ))
            })?;
            heard.push(String::from_utf8_lossy(&line).into_owned());
        }
        heard.sort();
        let mut want = said.clone();
        want.sort();
        if heard != want {
            return Err(u.fail(format!(
                "{LEAVING} users each sent their last line and left; expected exactly those lines, got {heard:?}"
            )));
        }
    }
    room.say(0, b"and then there were two\n")?;
    room.expect_quiet()
}

/// `--max-users N` is the room size: the full-room and freed-slot checks
/// hold for a room of one and a room of three. (The room stage's: the C
/// original's room is NUSERS, fixed.)
pub fn honours_max_users(target: &Target) -> Result<()> {
    let launch = target.launch().ok_or_else(|| {
        Failure::new(
            "this check starts the server with --max-users 1 and 3, so the harness must start it: \
             give its command (harness check chat -- <command...>), not --addr",
        )
    })?;
    for size in [1usize, 3] {
        let sized = launch.on_port(0).with_arg("--max-users", &size.to_string());
        let server = crate::Server::start(&sized)?;
        let room = server.target().with_max_users(size);
        for check in [
            refuses_a_client_when_the_room_is_full,
            gives_a_freed_slot_to_the_next_client,
        ] {
            check(&room).map_err(|f| f.context(format!("started `{}`", sized.shown())))?;
        }
    }
    Ok(())
}
