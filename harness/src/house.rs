//! Helpers for a step's own tests, and the course's promises that several
//! steps keep, written once: a step names the promises it keeps with
//! [`house_tests!`](crate::house_tests), one `#[test]` each. What several
//! steps check of their own narration (the course's log lines, `data=N connection(s) waiting`,
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

/// A batch of `waiting` connections queued while the server is frozen
/// ([`queue_connections`]), each then served as `serve` checks (a greeting
/// read, a line echoed), and the server accepting exactly that many for
/// the one event ([`expect_accepts_after`]).
pub fn serves_a_batch_of(
    step: &crate::Step,
    waiting: usize,
    mut serve: impl FnMut(usize, &mut TcpStream),
) -> Result<Server> {
    let server = step.spawn(&[])?;
    let mut clients = queue_connections(&server, waiting)?;
    for (i, client) in clients.iter_mut().enumerate() {
        serve(i, client);
    }
    expect_accepts_after(&server, waiting)?;
    Ok(server)
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

/// The step's server started with `args`, and a room of `users` users
/// joined in it: where most of a chat step's own tests start.
pub fn room(
    step: &crate::Step,
    args: &[&str],
    users: usize,
) -> Result<(Server, crate::checks::chat::Room)> {
    let server = step.spawn(args)?;
    let mut room = crate::checks::chat::Room::new(&server.target());
    for _ in 0..users {
        room.join()?;
    }
    Ok((server, room))
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

/// A newcomer to a full room: it gets chatserv.c's line, then end of
/// file, and the server logs the refusal with its address. Returns the
/// client (still open on its side) and its address.
pub fn refused_newcomer(server: &Server) -> Result<(crate::Client, std::net::SocketAddr)> {
    let mut extra = server.client()?.named("user 2 (one too many)");
    let peer = extra.local_addr();
    extra.expect_line("server is full, try again later")?;
    extra.expect_eof()?;
    server.wait_for_log(&format!("refused {peer} (fd "), DEADLINE)?;
    Ok((extra, peer))
}

/// `n` clients of the server connected at once.
pub fn clients(server: &Server, n: usize) -> Result<Vec<crate::Client>> {
    (0..n).map(|_| server.client()).collect()
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

/// The promise of steps 6 on: with stderr a pipe nobody reads, the room
/// relays 10,000 lines, one at a time; the log is dropped, not waited for.
pub fn relays_10_000_lines_with_stderr_a_pipe_nobody_reads(step: &crate::Step) -> Result<()> {
    relays_lines_with_stderr_unread(step, &[], 10_000)
}

/// Starts `step` with `args` and its stderr a pipe nobody reads
/// ([`crate::Launch::stderr_unread`]), and relays `lines` lines from one
/// user to another, one at a time (each read, relayed and logged on its
/// own): a server whose log blocks stops once the pipe is full, some
/// 64 KiB of log in, and the next line never arrives.
pub fn relays_lines_with_stderr_unread(
    step: &crate::Step,
    args: &[&str],
    lines: usize,
) -> Result<()> {
    let server = Server::start(&step.launch(args).stderr_unread())?;
    let mut room = crate::checks::chat::Room::new(&server.target());
    room.join()?;
    room.join()?;
    for i in 0..lines {
        let line = format!("line {i} of {lines}, while nobody reads the server's stderr");
        room.users[0].send_line(&line)?;
        room.users[1]
            .expect_line(&line)
            .map_err(|f| f.context(format!("{i} lines had arrived, each in turn")))?;
    }
    room.say(1, b"and back\n")?;
    server.assert_running()
}

/// SIGINT, SIGTERM or SIGHUP (`sig`, named `name`) with two users in the
/// room: each gets the goodbye line and end of file, the server exits with
/// status 0, and its log names the signal.
pub fn says_goodbye_and_exits_0_on(step: &crate::Step, sig: libc::c_int, name: &str) -> Result<()> {
    let server = step.spawn(&[])?;
    let mut room = crate::checks::chat::Room::new(&server.target());
    room.join()?;
    room.join()?;
    server.signal(sig)?;
    for u in &mut room.users {
        u.expect_line("server is shutting down, goodbye")
            .map_err(|f| f.context(format!("the server was sent {name}")))?;
        u.expect_eof()?;
    }
    let status = crate::checks::settle(DEADLINE, || server.exit_status());
    server.wait_for_log(
        &format!("{name}: shutting down; goodbye to 2 user(s)"),
        DEADLINE,
    )?;
    match status {
        Some(st) if st.success() => Ok(()),
        other => Err(server.target().fail(format!(
            "after {name}, expected the server to exit with status 0 within {} s; it {}",
            DEADLINE.as_secs(),
            match other {
                Some(st) => format!("exited with {st}"),
                None => "was still running".to_string(),
            }
        ))),
    }
}

/// The line a user dropped for falling behind is told: `you are N bytes
/// behind (more than --max-queue M): disconnected`.
fn behind_line(behind: usize, max_queue: usize) -> String {
    format!("you are {behind} bytes behind (more than --max-queue {max_queue}): disconnected\n")
}

/// With `--max-queue 100000`, user 3 (a small receive buffer, not reading)
/// falls behind while user 1 sends 1 MiB and user 2 reads it. Once the
/// server logs the drop, user 3 reads: a beginning of user 1's bytes, then
/// the line saying why on a line of its own (the number it says is the
/// one logged), then end of file; the log says the last line was taken.
pub fn tells_a_dropped_user_why(step: &crate::Step) -> Result<()> {
    const MAX_QUEUE: usize = 100_000;
    let server = step.spawn(&["--max-queue", &MAX_QUEUE.to_string()])?;
    let mut room = crate::checks::chat::Room::new(&server.target());
    room.join()?;
    room.join()?;
    room.join_with(&|t| crate::Client::connect_with_receive_buffer(t, 4096))?;
    let mut slow = room.users.pop().expect("user 3");
    let peer = slow.local_addr();
    let flood = crate::checks::payload(1 << 20, 8);
    let dropped = format!("user #2 ({peer}) dropped: ");
    let (sent, read, told) = std::thread::scope(|s| {
        let (sender, reader) = room.users.split_at_mut(1);
        let (sender, reader) = (&mut sender[0], &mut reader[0]);
        sender.set_timeout(Duration::from_secs(20));
        reader.set_timeout(Duration::from_secs(20));
        let sending = s.spawn(|| sender.send(&flood));
        let reading = s.spawn(|| reader.expect_bytes(&flood));
        // User 3 reads as soon as it is dropped: it has LINGER (2 s) to
        // take its last line.
        let told = server
            .wait_for_log(&dropped, Duration::from_secs(20))
            .and_then(|()| slow.read_until_closed());
        let sent = sending.join().expect("user 1's sender");
        let read = reading.join().expect("user 2's reader");
        (sent, read, told)
    });
    sent?;
    read?;
    let (got, how) = told?;
    let stderr = server.stderr();
    let logged = stderr
        .lines()
        .find_map(|l| l.split_once(&dropped))
        .and_then(|(_, rest)| rest.split(' ').next()?.parse::<usize>().ok());
    let Some(behind) = logged else {
        return Err(server.target().fail(format!(
            "expected a line '{dropped}N bytes wait for them, ...' in the log"
        )));
    };
    let line = behind_line(behind, MAX_QUEUE);
    let before = got.strip_suffix(line.as_bytes());
    let whole = before.is_some_and(|b| {
        flood.starts_with(b)
            || b.strip_suffix(b"\n")
                .is_some_and(|b| flood.starts_with(b) && !b.ends_with(b"\n"))
    });
    if !whole || how != crate::Closed::Eof {
        let tail = &got[got.len().saturating_sub(120)..];
        return Err(slow.fail(format!(
            "user 3 fell behind and was dropped; it should read a beginning of user 1's bytes, \
             then {:?} on a line of its own, then end of file; it read {} bytes ending in {:?}, then {how:?}",
            line,
            got.len(),
            String::from_utf8_lossy(tail)
        )));
    }
    server.wait_for_log(
        &format!("user #2 ({peer}) has their last line: shutdown(SHUT_WR)"),
        DEADLINE,
    )?;
    room.say(0, b"is user 3 gone?\n")?;
    room.say(1, b"yes, and told why\n")
}

/// A server the test started by hand: killed and reaped when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets or clears `O_NONBLOCK` on `fd`.
fn set_nonblocking(fd: std::os::fd::RawFd, on: bool) -> Result<()> {
    use crate::sys::cvt;
    let fail = |e: std::io::Error| Failure::new(format!("fcntl(O_NONBLOCK) on a pipe: {e}"));
    // SAFETY: F_GETFL on a descriptor we own; no memory is passed.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) }).map_err(fail)?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL with an int argument; no memory is passed.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) })
        .map(drop)
        .map_err(fail)
}

/// Starts `step` with its stdout a pipe that is already full, as under a
/// reader that stopped reading before the server started. The server must
/// go on past its `listening on` line (it logs the room's size after it);
/// then the pipe is read (the filler, then `listening on HOST:PORT`) and
/// two users talk.
pub fn serves_though_its_stdout_is_full(step: &crate::Step) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    use std::sync::{mpsc, Arc, Mutex};
    let (mut stdout, mut filler) =
        std::io::pipe().map_err(|e| Failure::new(format!("pipe(): {e}")))?;
    set_nonblocking(filler.as_raw_fd(), true)?;
    let mut filled = 0usize;
    while filler.write(&[b'x'; 4096]).is_ok_and(|n| n > 0) {
        filled += 4096;
    }
    // Blocking again: the server's writes wait, as on any full pipe.
    set_nonblocking(filler.as_raw_fd(), false)?;
    let mut cmd = Command::new(step.bin);
    cmd.args(step.args)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(filler))
        .stderr(Stdio::piped());
    crate::start_clean(&mut cmd, None);
    let mut child = cmd
        .spawn()
        .map(Killed)
        .map_err(|e| Failure::new(format!("cannot start {}: {e}", step.bin)))?;
    let mut stderr = child.0.stderr.take().expect("piped");
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut buf) {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(&buf[..n]);
        }
    });
    let text =
        || String::from_utf8_lossy(&log.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let sized = format!("{}: the room has ", step.name);
    if crate::checks::settle(DEADLINE, || text().contains(&sized).then_some(())).is_none() {
        return Err(Failure::new(format!(
            "started {} with its stdout a pipe already full ({filled} bytes nobody read); within {} s it should go on past \
             'listening on' and log {sized:?}, but its stderr has:\n{}\n\
             a server that already listens must not wait for stdout",
            step.bin,
            DEADLINE.as_secs(),
            text()
        )));
    }
    // Now read the pipe: the filler, then the line.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
            got.extend(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(at) = text.find("listening on ") {
                if let Some(line) = text[at..]
                    .lines()
                    .next()
                    .filter(|_| text[at..].contains('\n'))
                {
                    let _ = tx.send(line.to_string());
                    return;
                }
            }
        }
    });
    let line = rx.recv_timeout(DEADLINE).map_err(|_| {
        Failure::new(format!(
            "read the server's stdout: no 'listening on HOST:PORT' line after the {filled} bytes of filler within {} s",
            DEADLINE.as_secs()
        ))
    })?;
    let addr = crate::parse_listening_line(&line).map_err(Failure::new)?;
    let mut room = crate::checks::chat::Room::new(&crate::Target::addr(addr));
    room.join()?;
    room.join()?;
    room.say(0, b"stdout was full, and still\n")?;
    drop(child);
    Ok(())
}

/// One `#[test]` per promise named, each calling the `harness::house`
/// function of that name with the step under test:
///
/// ```text
/// harness::house_tests! { serves_though_its_stdout_is_full, tells_a_dropped_user_why }
/// ```
///
/// The steps that keep a promise name it, rather than each writing the
/// same test (the book's table of tests shows each with the function's
/// doc comment).
#[macro_export]
macro_rules! house_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[doc = concat!("The course's promise `harness::house::", stringify!($name), "`.")]
            #[test]
            fn $name() -> $crate::Result {
                $crate::house::$name(&$crate::this_step!())
            }
        )+
    };
}
