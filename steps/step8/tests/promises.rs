//! The promises of steps 6 and 7 kept at the limits: with stderr a pipe
//! nobody reads the room goes on (also at 32 descriptors, with `--quiet`,
//! through 3,000 users leaving and joining), a user dropped for falling
//! behind is told why, and SIGHUP ends the server as SIGTERM does.

use harness::checks::chat::{Attempt, Room};
use harness::{house, Client, Server};

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

// The course's promises this step keeps, written once in harness::house.
harness::house_tests! { serves_though_its_stdout_is_full, tells_a_dropped_user_why, relays_10_000_lines_with_stderr_a_pipe_nobody_reads }

/// How many leave/join cycles the room goes through at the limit.
const CYCLES: usize = 3_000;

/// At 32 descriptors, with `--quiet` and stderr a pipe nobody reads: users
/// join until one waits in the listen queue; then, 3,000 times, a newcomer
/// connects and says a line (the server, out of descriptors, disables the
/// listener), a user leaves (it enables it again), and the newcomer gets
/// in: everyone hears its line. The room still talks after.
#[test]
fn survives_3000_leave_join_cycles_quietly_at_32_descriptors() -> harness::Result {
    let launch = STEP
        .launch(&["--quiet", "--max-users", "64"])
        .fd_limit(32)
        .stderr_unread();
    let server = Server::start(&launch)?;
    let mut room = Room::new(&server.target());
    let first = loop {
        if room.users.len() > 64 {
            return Err(server
                .target()
                .fail("65 users joined a server limited to 32 descriptors"));
        }
        match room.attempt(&Client::connect, house::DEADLINE / 5)? {
            Attempt::In => {}
            Attempt::Unheard(w) => break w,
            Attempt::Full(_) => {
                return Err(server
                    .target()
                    .fail("the room of 64 refused a client before 32 descriptors ran out"))
            }
        }
    };
    drop(room.users.pop());
    if !matches!(room.admit(*first, house::DEADLINE)?, Attempt::In) {
        return Err(server
            .target()
            .fail("a user left, but the client who waited was not heard"));
    }
    let mut users = room.users;
    for cycle in 0..CYCLES {
        let line = format!("newcomer {cycle} is here");
        let mut newcomer = Client::connect(&server.target())?.named(format!("newcomer {cycle}"));
        newcomer.send_line(&line)?;
        drop(users.remove(1));
        for u in &mut users {
            u.expect_line(&line).map_err(|f| {
                f.context(format!(
                    "cycle {cycle} of {CYCLES}: a user left for a newcomer waiting to be accepted"
                ))
            })?;
        }
        users.push(newcomer);
    }
    users[0].send_line("still talking")?;
    for u in &mut users[1..] {
        u.expect_line("still talking")?;
    }
    server.assert_running()
}

/// SIGHUP: a goodbye to everyone and exit status 0, as for SIGTERM.
#[test]
fn ends_on_sighup_as_on_sigterm() -> harness::Result {
    house::says_goodbye_and_exits_0_on(&STEP, libc::SIGHUP, "SIGHUP")
}
