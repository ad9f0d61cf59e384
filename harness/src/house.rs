//! Helpers for a step's own tests: what several steps check of their own
//! narration (the course's log lines, `data=N connection(s) waiting`,
//! `accepted fd N from PEER`), written once. The stage checks
//! ([`crate::checks`]) are for any server; these read a step's log.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Failure, Result, Server};

/// How long any single wait of these helpers may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A plain `TcpStream` to `addr`, for a test that needs its local address
/// or raw bytes, with a deadline on every read and write.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("SO_RCVTIMEO");
    stream
        .set_write_timeout(Some(DEADLINE))
        .expect("SO_SNDTIMEO");
    stream
}

/// Freezes the server, queues `waiting` connections in the kernel, then
/// lets it run: its next kevent() sees all of them at once, and it must
/// say so (`data=N connection(s) waiting`). Returns the connections.
pub fn queue_connections(server: &Server, waiting: usize) -> Result<Vec<TcpStream>> {
    let mut clients = Vec::new();
    {
        let _frozen = server.freeze()?;
        for _ in 0..waiting {
            clients.push(connect(server.addr()));
        }
        server.wait_for_accept_queue(waiting)?;
    }
    server.wait_for_stderr(&format!("data={waiting} connection(s) waiting"), DEADLINE)?;
    Ok(clients)
}

/// How many `accepted fd` lines follow the line `data=N connection(s)
/// waiting` before the listener is reported again: the accepts that one
/// event led to.
fn accepts_after(stderr: &str, waiting: usize) -> usize {
    let mark = format!("data={waiting} connection(s) waiting");
    stderr
        .lines()
        .skip_while(|l| !l.contains(&mark))
        .skip(1)
        .take_while(|l| !l.contains("connection(s) waiting"))
        .filter(|l| l.contains(": accepted fd "))
        .count()
}

/// After [`queue_connections`]: the server accepted exactly `waiting`
/// clients for the one event that reported them, then went back to
/// kevent(): a client connecting after them is accepted for an event of
/// its own (a `connection(s) waiting` line before its `accepted fd`).
pub fn expect_accepts_after(server: &Server, waiting: usize) -> Result<()> {
    // The server's stderr reaches us through a pipe: wait until the
    // accepts of that batch are all in (or the deadline passes).
    let mut stderr = server.stderr();
    crate::checks::settle(DEADLINE, || {
        stderr = server.stderr();
        (accepts_after(&stderr, waiting) >= waiting).then_some(())
    });
    let accepted = accepts_after(&stderr, waiting);
    if accepted != waiting {
        return Err(server.target().fail(format!(
            "one event said data={waiting}; the server should accept that many before \
             waiting again, but accepted {accepted}:\n{stderr}"
        )));
    }
    // A server that accepts until accept() fails sits in the blocking call
    // after the last of them, and accepts the next client there, without
    // a kevent(): it serves everyone, and only its log tells.
    let later = connect(server.addr());
    let peer = later.local_addr().expect("local_addr");
    accepted_fd(server, peer)?;
    if accepts_after(&server.stderr(), waiting) == waiting {
        return Ok(());
    }
    Err(server.target().fail(format!(
        "one event said data={waiting} and the server accepted {waiting}; then a client \
         connected from {peer}, and the server accepted it without a new listener event \
         (no `connection(s) waiting` line before it): it never went back to kevent(). \
         Accept exactly `data` connections for each event, then wait again: on a blocking \
         listener, accepting until accept() fails blocks in the call after the last \
         waiting connection, until the next client comes"
    )))
}

/// The fd the server logged for the client whose local address is `peer`
/// (`stepN: accepted fd N from PEER`).
pub fn accepted_fd(server: &Server, peer: SocketAddr) -> Result<i32> {
    let tail = format!(" from {peer}");
    server.wait_for_stderr(&format!("{tail}\n"), DEADLINE)?;
    let stderr = server.stderr();
    stderr
        .lines()
        .filter_map(|l| l.strip_suffix(&tail))
        .find_map(|l| l.rsplit_once("accepted fd ")?.1.parse().ok())
        .ok_or_else(|| {
            Failure::new(format!(
                "expected a line 'accepted fd N{tail}' in the server's log:\n{stderr}"
            ))
        })
}

/// The number after `prefix` in the log (`... (fd 6)` gives 6).
pub fn number_after(stderr: &str, prefix: &str) -> Result<i32> {
    let line = stderr
        .lines()
        .find_map(|l| Some(&l[l.find(prefix)? + prefix.len()..]))
        .ok_or_else(|| Failure::new(format!("no line with {prefix:?} in:\n{stderr}")))?;
    line.trim_end_matches(')')
        .parse()
        .map_err(|_| Failure::new(format!("expected '{prefix}N)', got {line:?}")))
}

/// A room of one (`--max-users 1`) with its one user in, the join logged,
/// and the server's descriptor count then: where a test of what a full
/// room does with a refused client starts.
pub fn full_room_of_one(
    step: &crate::Step,
) -> Result<(Server, crate::checks::chat::Room, Option<usize>)> {
    let server = step.spawn(&["--max-users", "1"])?;
    let mut room = crate::checks::chat::Room::new(&server.target().with_max_users(1));
    let first = room.join()?.local_addr();
    // Nobody confirms the first user's join: count descriptors once the
    // server has accepted it.
    server.wait_for_log(&format!("user #0 joined from {first} (fd "), DEADLINE)?;
    let before = server.open_fds();
    Ok((server, room, before))
}

/// Waits until the server holds at most `before` descriptors again (when
/// they could be counted); fails saying `when`.
pub fn expect_fds_back(server: &Server, before: Option<usize>, when: &str) -> Result<()> {
    let Some(before) = before else {
        return Ok(());
    };
    if crate::checks::settle(DEADLINE, || server.open_fds().filter(|&n| n <= before)).is_some() {
        return Ok(());
    }
    Err(server.target().fail(format!(
        "the server had {before} descriptors open before {when}, and {:?} after",
        server.open_fds()
    )))
}

/// With nothing happening, the server sleeps for a second: its CPU use and
/// how often it is running stay under the stages' limits. `now` says what
/// has just happened, `advice` what a server that spins here got wrong.
pub fn expect_calm(server: &Server, now: &str, advice: &str) -> Result<()> {
    let target = server.target();
    crate::checks::expect_calm(&target, Duration::from_secs(1), now, advice).map(|_| ())
}

/// Makes the server hold bytes for the user in slot `slow` (the last of
/// `room`, who never reads), whatever the kernel's buffers: user 0 sends
/// 64 KiB at a time, every other user reads each piece, until the server
/// has logged that `slow` is not keeping up (its queue has bytes) and, a
/// further MiB later, has not logged that they caught up (the kernel's
/// send buffer, which grows as TCP autotunes it, did not take the queue
/// after all). A fixed amount would not do: on a machine whose kernel has
/// cached TCP metrics for loopback (after a benchmark, say), a quarter of
/// a MiB fits in the socket buffers and the server holds nothing. Gives up
/// after 16 MiB.
pub fn hold_bytes_for(
    server: &Server,
    room: &mut crate::checks::chat::Room,
    slow: usize,
) -> Result<()> {
    const PIECE: usize = 64 * 1024;
    const MORE: usize = 1 << 20;
    const MOST: usize = 16 << 20;
    let who = format!("user #{slow} (fd ");
    // Whether the last thing the log says of `slow`'s queue is that it has
    // bytes waiting.
    let holding = || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains(&who))
            .rfind(|l| l.contains("is not keeping up") || l.contains("caught up"))
            .is_some_and(|l| l.contains("is not keeping up"))
    };
    let mut sent = 0;
    let mut since_holding: Option<usize> = None;
    while sent < MOST {
        let piece = crate::checks::payload(PIECE, sent as u64);
        room.users[0].send(&piece)?;
        let last = room.users.len() - 1;
        for u in &mut room.users[1..last] {
            u.expect_bytes(&piece)?;
        }
        sent += PIECE;
        since_holding = match (holding(), since_holding) {
            (true, Some(from)) if sent - from >= MORE => return Ok(()),
            (true, Some(from)) => Some(from),
            (true, None) => Some(sent),
            (false, _) => None,
        };
    }
    Err(server.target().fail(format!(
        "user 0 sent {sent} bytes and the others read them all, but the server never logged \
         that user #{slow} (who never reads) is not keeping up, or kept saying they caught up"
    )))
}
