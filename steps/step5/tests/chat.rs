//! Step 5 over TCP, what is particular to this step: the refusal's line,
//! the removal, and the stall that blocking writes cause (documented, not
//! hidden); the harness's stages are in `stages.rs`. Each test starts its own server on a free port; the harness
//! kills it when the test ends, also on failure.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::checks::chat::Room;
use harness::checks::narration;
use harness::house;
use harness::{Client, Failure};

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

/// A refused client gets exactly chatserv.c's line and then EOF, and the
/// log names its address.
#[test]
fn tells_a_refused_client_the_room_is_full_and_logs_it() -> harness::Result {
    let server = STEP.spawn(&["--max-users", "1"])?;
    let mut room = Room::new(&server.target().with_max_users(1));
    room.join()?;
    let (_extra, _) = house::refused_newcomer(&server)?;
    server.wait_for_stderr("the room is full (1 user)", DEADLINE)?;
    room.users[0].send_line("I still have the room")?;
    room.users[0].expect_silence(Duration::from_millis(100))
}

/// A leaving user's knote goes with EV_DELETE, then close(), as chatserv.c
/// does, and the log says so (the room stage checks the rest).
#[test]
fn removes_a_leaving_user_with_ev_delete_then_close() -> harness::Result {
    let server = STEP.spawn(&[])?;
    narration::expect_removal_logged(&server.target(), "EV_DELETE, close({fd}); slot #0 is free")
}

/// The known limit, shown rather than hidden: the relay's writes block, so
/// a user who never reads stalls the whole room. User 3 stops reading
/// (with a small receive buffer); user 1 sends 16 MiB; user 2, who reads,
/// stops receiving once the server's write to user 3 is stuck, and a line
/// user 2 sends meanwhile reaches nobody. When user 3 leaves, the write
/// fails, the server moves on, and everything arrives, in order.
#[test]
fn a_user_who_never_reads_stalls_the_whole_room() -> harness::Result {
    const TOTAL: usize = 16 << 20;
    let (server, mut room) = house::room(&STEP, &[], 3)?;
    let stuck = room.users.pop().expect("user 3");
    let mut reader = room.users.pop().expect("user 2");
    let mut talker = room.users.pop().expect("user 1");
    shrink_receive_buffer(&stuck);

    // User 1 sends from one thread, user 2 reads (and checks) in another;
    // both with deadlines, so nothing here can hang.
    let sent = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let writer = {
        let mut out = talker.stream().try_clone().expect("clone user 1");
        out.set_write_timeout(Some(Duration::from_secs(30)))
            .expect("SO_SNDTIMEO");
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < TOTAL {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b = pattern(at + i);
                }
                out.write_all(&chunk)?;
                at += chunk.len();
                sent.store(at, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let reading = {
        let mut input = reader.stream().try_clone().expect("clone user 2");
        input
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("SO_RCVTIMEO");
        let received = Arc::clone(&received);
        std::thread::spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < TOTAL {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| format!("after {at} bytes: {e}"))?;
                if n == 0 {
                    return Err(format!("the server closed user 2 after {at} bytes"));
                }
                if let Some(i) = (0..n).find(|&i| buf[i] != pattern(at + i)) {
                    return Err(format!(
                        "byte {} should be {} (sent by user 1), got {}",
                        at + i,
                        pattern(at + i),
                        buf[i]
                    ));
                }
                at += n;
                received.store(at, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    // The stall: user 2's count stops growing well short of TOTAL.
    let stalled_at = wait_for_stall(&received, TOTAL).ok_or_else(|| {
        server.target().fail(format!(
            "user 3 never reads, so the server's blocking write to user 3 should stall the \
             room before {TOTAL} bytes reach user 2; but user 2 received {} of them without \
             a pause (user 1 sent {})",
            received.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed)
        ))
    })?;
    // While stalled, nobody hears anybody: user 2's line does not reach
    // user 1 (the server is stuck in write(), not reading anything).
    reader.send_line("is anyone there?")?;
    talker.expect_silence(Duration::from_millis(300))?;
    let still = received.load(Ordering::Relaxed);
    if still != stalled_at {
        return Err(server.target().fail(format!(
            "the room looked stalled at {stalled_at} bytes, but user 2 then received more \
             ({still}) while user 3 still was not reading"
        )));
    }

    // User 3 leaves with unread bytes (a reset): the stuck write fails,
    // the relay moves on, and the room recovers.
    drop(stuck);
    let wrote = writer.join().expect("writer thread");
    let read = reading.join().expect("reader thread");
    wrote.map_err(|e| Failure::new(format!("user 1 could not finish sending: {e}")))?;
    read.map_err(|e| {
        server
            .target()
            .fail(format!("user 2, after user 3 left: {e}"))
    })?;
    talker.expect_line("is anyone there?")?;
    server.wait_for_log("user #2 (", DEADLINE)?;
    server.assert_running()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The byte at `offset` of user 1's 16 MiB (every value, no period that
/// divides a chunk size, so a lost or repeated chunk shows).
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// Waits until `count` stops changing for a second while below `total`;
/// returns where it stopped, or None if it reached `total` (or the 30 s
/// deadline passed) without stopping.
fn wait_for_stall(count: &AtomicUsize, total: usize) -> Option<usize> {
    let start = Instant::now();
    let mut last = count.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        let now = count.load(Ordering::Relaxed);
        if now >= total {
            return None;
        }
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return Some(now);
        }
    }
    None
}

/// A few KiB of receive buffer, so the stall comes after the server's send
/// buffer fills (up to 4 MiB on Linux), not after tens of MiB.
fn shrink_receive_buffer(client: &Client) {
    let size: libc::c_int = 4096;
    // SAFETY: passes a live c_int and its exact size, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            client.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_RCVBUF): {}",
        std::io::Error::last_os_error()
    );
}
