//! never-block (step6 on): one user who never reads must not stall anyone.
//!
//! The server writes to each user only what that user's socket takes now,
//! keeps the rest in a per-user queue, and bounds each queue with
//! `--max-queue BYTES`: a user whose queue would pass it is disconnected,
//! and nobody else notices. The harness starts the server with
//! `--max-queue 1048576`.
//!
//! Users who read are never given reason to be dropped: speakers send
//! through a window (see `flow`), so what the server holds for a reader
//! stays well under `--max-queue` however slowly the harness reads. The
//! user who never reads has a 4 KiB receive buffer, so the kernel soon
//! stops taking bytes for it and the server's queue for it grows.
//!
//! Values, not only presence: where the drop comes is measured against
//! what the kernel holds for that user (`harness/src/buffers.rs`: on Linux its
//! unread bytes and the server-side send queue), so the server must drop
//! it once it holds `--max-queue` bytes, neither before nor a write later;
//! the partial-writes check likewise measures the kernel's share first and
//! sends beyond it. A refused client leaves no descriptor behind. And the
//! log is part of the promise: started with its stderr a pipe that nobody
//! reads ([`crate::Launch::stderr_unread`]), the server must keep serving
//! once the pipe is full.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::chat::Room;
use super::flow::{keep_listening, listen, Ear, Ending, Flow, Mouth, Script, Voice, STALL};
use super::{millis, secs};
use crate::text::preview;
use crate::{Client, Closed, Failure, Result, Target};

super::declare! { $ CHECKS for NeverBlock, tests never_block:
    keeps_the_room_talking_while_a_user_never_reads: "user 4 never reads while user 1 sends megabytes: users 2 and 3 get every byte in order, their round trips stay under 2 s, user 1 is never kept waiting", [MaxQueue];
    drops_a_user_whose_queue_passes_max_queue: "a user who never reads is disconnected once more than --max-queue bytes wait for it; the others notice nothing", [MaxQueue];
    drops_a_user_near_max_queue: "a user who never reads is dropped once the server holds --max-queue bytes for it: not before, and not more than one write later, whatever the kernel buffers for it (measured)", [MaxQueue];
    relays_every_size_whole_through_partial_writes: "two users send writes of 1 B to 1 MiB at once to users with small receive buffers (the server's writes come up short): every byte arrives, in order", [MaxQueue];
    keeps_relaying_while_its_log_is_never_read: "started with its stderr a pipe that nobody reads, the server keeps joining, relaying and letting users go until it has tried to write twice what the pipe holds: its log never blocks it", [Command];
    refuses_politely_a_client_who_typed_first: "with the room full, a client who typed before it was refused still reads the whole 'full' line, then a clean end of file (no reset), and the server keeps no descriptor of it", [Pause, FdCount];
}

/// The receive buffer of users who read slowly or never.
const SMALL_RCVBUF: usize = 4096;

/// Every user of these checks connects like a client across a network
/// (see [`Client::connect_like_a_network`]): over loopback, the kernel
/// would otherwise hide megabytes in socket buffers, and Nagle's algorithm
/// would slow every relay down to a delayed acknowledgement.
fn user(target: &Target) -> Result<Client> {
    Client::connect_like_a_network(target)
}

/// How long a round trip between two reading users may take while another
/// user never reads. A server that waits for that user never completes it.
const RTT_DEADLINE: Duration = Duration::from_secs(2);

/// Round trips measured during the flood (at least MIN_PINGS, and on
/// until the flood has reached FLOOD_MIN), and the pause between them.
const MIN_PINGS: usize = 10;
const PINGS: usize = 1000;
const PING_GAP: Duration = Duration::from_millis(50);

/// The flood: at least this much, and on until the round trips are done,
/// but never more than the cap. The kernel takes some 80 KiB for a user
/// who does not read (its receive buffer, and the server's send buffer
/// for network-sized segments): the flood is far beyond that, so the
/// server's own queue, or a blocking server's write, soon comes into play.
const FLOOD_MIN: usize = 2 << 20;
const FLOOD_MAX: usize = 8 << 20;
/// The size of the flood's writes.
const PIECE: usize = 16 * 1024;

/// Write sizes of the partial-writes check, each sent by two users at once.
const SIZES: &[usize] = &[
    1,
    2,
    3,
    100,
    1000,
    4095,
    4096,
    4097,
    16383,
    16384,
    16385,
    65535,
    65536,
    100_000,
    1 << 20,
];

const NEVER_WAIT: &str = "a server must never wait for one user: write to each user only what its socket takes now, keep the rest in that user's queue, and write more when the socket is writable again (EVFILT_WRITE with kqueue, POLLOUT with poll)";

/// A user with a small receive buffer.
fn small(target: &Target) -> Result<Client> {
    Client::connect_with_receive_buffer(target, SMALL_RCVBUF)
}

/// The most bytes one speaker may have on their way: with `speakers`
/// talking at once, what the server holds for any reader stays under half
/// of `--max-queue`.
fn window(max_queue: usize, speakers: usize) -> usize {
    (max_queue / (2 * speakers)).clamp(1, MAX_WINDOW)
}

/// Windows above this gain nothing but memory.
const MAX_WINDOW: usize = 256 * 1024;

/// A window at least this large overflows what the kernel buffers for a
/// slow reader (some 80-100 KiB with network-sized segments), so the
/// server's writes to it must come up short.
const SURE_TO_OVERFLOW: usize = 128 * 1024;

/// "[PING 1][PING 2]...", and where each one ends.
fn texts(word: &str, n: usize) -> (Script, Vec<usize>) {
    let mut all = Vec::new();
    let mut ends = Vec::new();
    for i in 1..=n {
        all.extend(format!("[{word} {i}]").into_bytes());
        ends.push(all.len());
    }
    (Script::Text(Arc::new(all)), ends)
}

/// How much of a speaker's bytes a listener has heard, for messages.
fn progress(ear: &Ear, voice: Voice, of: usize) -> String {
    format!("{} received {} of {of}", ear.name, ear.heard(voice))
}

/// Users 1-3 read everything, user 4 never reads. User 1 floods; users 2
/// and 3 play ping-pong meanwhile, and each round trip must come back
/// within `RTT_DEADLINE` (2 s).
pub fn keeps_the_room_talking_while_a_user_never_reads(target: &Target) -> Result<()> {
    let max_queue = target.max_queue()?;
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join_with(&user)?;
    }
    room.join_with(&small)?;
    let flood = Script::Flood(Voice::Low);
    let (pings, ping_ends) = texts("PING", PINGS);
    let (pongs, pong_ends) = texts("PONG", PINGS);
    // User 1 hears pings and pongs interleaved (one voice): it counts them.
    let ear1 = Ear::new("user 1");
    let ear2 = Ear::new("user 2")
        .hears("user 1", &flood)
        .hears("user 3", &pongs);
    let ear3 = Ear::new("user 3")
        .hears("user 1", &flood)
        .hears("user 2", &pings);
    let window = window(max_queue, 1);
    let flow = Flow::default();
    let (u1, u2, u3) = (&room.users[0], &room.users[1], &room.users[2]);
    let mut mouth1 = Mouth::new(u1)?;
    let mut mouth2 = Mouth::new(u2)?;
    let mut mouth3 = Mouth::new(u3)?;
    let flooded = Arc::clone(&mouth1.sent);
    let pinged = AtomicBool::new(false);
    let pings_sent = AtomicUsize::new(0);
    let rtts = Mutex::new(Vec::new());
    let sent = std::thread::scope(|s| {
        let (flow, ear1, ear2, ear3) = (&flow, &ear1, &ear2, &ear3);
        let (pinged, pings_sent) = (&pinged, &pings_sent);
        let (rtts, ping_ends, pong_ends) = (&rtts, &ping_ends, &pong_ends);
        let flooded = &flooded;
        s.spawn(move || flow.run(|| keep_listening(flow, u1, ear1, || Ok(()))));
        s.spawn(move || flow.run(|| keep_listening(flow, u2, ear2, || Ok(()))));
        // User 3 answers each ping as soon as it has all of it.
        s.spawn(move || {
            let mut answered = 0;
            flow.run(|| {
                keep_listening(flow, u3, ear3, || {
                    while answered < PINGS && ear3.heard(Voice::High) >= ping_ends[answered] {
                        answered += 1;
                        mouth3.say(format!("[PONG {answered}]").as_bytes())?;
                    }
                    Ok(())
                })
            })
        });
        let pinger = s.spawn(move || {
            flow.run(|| {
                for i in 0..PINGS {
                    if i >= MIN_PINGS && flooded.load(Ordering::Acquire) >= FLOOD_MIN {
                        break;
                    }
                    let ping = format!("[PING {}]", i + 1);
                    mouth2.say(ping.as_bytes())?;
                    pings_sent.store(i + 1, Ordering::Release);
                    let start = Instant::now();
                    if !flow.wait_until(RTT_DEADLINE, || ear2.heard(Voice::High) >= pong_ends[i]) {
                        if flow.stopped() {
                            return Ok(());
                        }
                        let so_far = rtts.lock().unwrap_or_else(|p| p.into_inner());
                        let slowest = so_far.iter().max().copied().unwrap_or_default();
                        let sent = flooded.load(Ordering::Acquire);
                        let ping_from = if i == 0 { 0 } else { ping_ends[i - 1] };
                        return Err(target.fail(format!(
                            "user 2 sent {} and waited {} s for user 3's answer {}: it did not come back \
                             ({} earlier round trips took at most {})\n\
                             user 3 had received {} of the ping's {} bytes; meanwhile {}, {} of user 1's bytes\n{NEVER_WAIT}",
                            preview(ping.as_bytes()),
                            RTT_DEADLINE.as_secs(),
                            preview(format!("[PONG {}]", i + 1).as_bytes()),
                            so_far.len(),
                            millis(slowest),
                            ear3.heard(Voice::High).saturating_sub(ping_from).min(ping.len()),
                            ping.len(),
                            progress(ear2, Voice::Low, sent),
                            progress(ear3, Voice::Low, sent),
                        )));
                    }
                    rtts.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(start.elapsed());
                    std::thread::sleep(PING_GAP);
                }
                pinged.store(true, Ordering::Release);
                Ok(())
            })
        });
        let flooder = s.spawn(move || {
            let mut sent = 0;
            flow.run(|| {
                sent = mouth1.speak(
                    flow,
                    &flood,
                    std::iter::repeat(PIECE),
                    &[ear2, ear3],
                    window,
                    |sent| {
                        sent < FLOOD_MAX && (sent < FLOOD_MIN || !pinged.load(Ordering::Acquire))
                    },
                )?;
                Ok(())
            });
            sent
        });
        let sent = flooder.join().expect("flood thread");
        let _ = pinger.join();
        let n = pings_sent.load(Ordering::Acquire).max(1);
        let (pings_len, pongs_len) = (ping_ends[n - 1], pong_ends[n - 1]);
        let everything = || {
            ear2.heard(Voice::Low) >= sent
                && ear3.heard(Voice::Low) >= sent
                && ear2.heard(Voice::High) >= pongs_len
                && ear3.heard(Voice::High) >= pings_len
                && ear1.heard(Voice::High) >= pings_len + pongs_len
        };
        if !flow.wait_until(STALL, everything) && !flow.stopped() {
            flow.fail(target.fail(format!(
                "user 1 sent {sent} bytes and stopped; {} s later {}, {}, and user 1 received {} of the {} bytes of pings and pongs",
                STALL.as_secs(),
                progress(ear2, Voice::Low, sent),
                progress(ear3, Voice::Low, sent),
                ear1.heard(Voice::High),
                pings_len + pongs_len
            )));
        }
        flow.stop();
        sent
    });
    if let Some(f) = flow.failure() {
        return Err(f.context(format!(
            "users 1 to 3 read everything; user 4 (a {SMALL_RCVBUF}-byte receive buffer) never reads; \
             user 1 sends at least {} MiB in {PIECE}-byte writes while users 2 and 3 exchange pings \
             (the server runs with --max-queue {max_queue})",
            FLOOD_MIN >> 20
        )));
    }
    let rtts = rtts.into_inner().unwrap_or_else(|p| p.into_inner());
    let worst = rtts.iter().max().copied().unwrap_or_default();
    target.note(format!(
        "{} round trips between users 2 and 3 while user 1 sent {:.1} MiB and user 4 never read: the slowest took {}",
        rtts.len(),
        sent as f64 / f64::from(1 << 20),
        millis(worst)
    ));
    // User 4 goes (it may well have been dropped already); the rest talk on.
    drop(room.users.pop());
    room.say(1, b"that was a lot\n")?;
    room.say(0, b"sorry\n")?;
    room.expect_quiet()
}

/// User 4 never reads while user 1 sends far more than `--max-queue`; the
/// readers get everything; then user 4 reads what reached it: a correct
/// beginning of user 1's bytes, then end of file.
pub fn drops_a_user_whose_queue_passes_max_queue(target: &Target) -> Result<()> {
    let max_queue = target.max_queue()?;
    let total = FLOOD_MIN + 2 * max_queue;
    let start = Instant::now();
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join_with(&user)?;
    }
    room.join_with(&small)?;
    let flood = Script::Flood(Voice::Low);
    let ear2 = Ear::new("user 2").hears("user 1", &flood);
    let ear3 = Ear::new("user 3").hears("user 1", &flood);
    let flow = Flow::default();
    let (u2, u3) = (&room.users[1], &room.users[2]);
    let mut mouth1 = Mouth::new(&room.users[0])?;
    std::thread::scope(|s| {
        let (flow, ear2, ear3) = (&flow, &ear2, &ear3);
        s.spawn(move || flow.run(|| keep_listening(flow, u2, ear2, || Ok(()))));
        s.spawn(move || flow.run(|| keep_listening(flow, u3, ear3, || Ok(()))));
        flow.run(|| {
            // Exactly `total`: whole pieces, then what is left.
            let pieces = std::iter::repeat_n(PIECE, total / PIECE).chain(Some(total % PIECE));
            let window = window(max_queue, 1);
            mouth1.speak(flow, &flood, pieces, &[ear2, ear3], window, |n| n < total)?;
            let everything = || ear2.heard(Voice::Low) >= total && ear3.heard(Voice::Low) >= total;
            if flow.wait_until(STALL, everything) || flow.stopped() {
                return Ok(());
            }
            Err(target.fail(format!(
                "user 1 sent {total} bytes and stopped; {} s later {} and {}",
                STALL.as_secs(),
                progress(ear2, Voice::Low, total),
                progress(ear3, Voice::Low, total)
            )))
        });
        flow.stop();
    });
    let scene = format!(
        "users 1 to 3 read everything; user 4 (a {SMALL_RCVBUF}-byte receive buffer) never reads; \
         user 1 sends {total} bytes (the server runs with --max-queue {max_queue})"
    );
    if let Some(f) = flow.failure() {
        return Err(f.context(scene));
    }
    // Now user 4 reads what reached it.
    // It may be told why it is dropped, in one line after what it got.
    let ear4 = Ear::new("user 4")
        .hears("user 1", &flood)
        .then_a_parting_line();
    let flow4 = Flow::default();
    let u4 = &room.users[3];
    let ending = std::thread::scope(|s| {
        let (flow4, ear4) = (&flow4, &ear4);
        let reader = s.spawn(move || listen(flow4, u4, ear4, || Ok(())));
        // It must end: at once (user 4 reads what the kernel held), or at
        // the latest 1 s after everything arrived.
        let ended_or_all = flow4.wait_until(Duration::from_secs(5), || {
            reader.is_finished() || ear4.heard(Voice::Low) >= total
        });
        if !ended_or_all
            || (!reader.is_finished()
                && !flow4.wait_until(Duration::from_secs(1), || reader.is_finished()))
        {
            flow4.stop();
        }
        reader.join().expect("user 4's reader")
    });
    let heard = ear4.heard(Voice::Low);
    let parting = match ending {
        Ok(Ending::Closed(_)) => ear4.parting_line().map_err(|f| f.context(scene.clone()))?,
        _ => None,
    };
    let told = parting.map_or(String::new(), |line| format!(", then the line {line:?}"));
    match ending {
        Err(f) => return Err(f.context(scene)),
        Ok(Ending::Closed(how)) => target.note(format!(
            "user 4 was dropped: it received {heard} of user 1's {total} bytes{told}, then {} ({} in all)",
            match how {
                Closed::Eof => "end of file",
                Closed::Reset => "a reset",
            },
            secs(start.elapsed())
        )),
        Ok(Ending::Stopped) => {
            return Err(target
                .fail(format!(
                    "then user 4 read: it received {heard} of user 1's {total} bytes{}, and the server kept its connection open\n\
                     with --max-queue {max_queue}, a user whose queue would pass {max_queue} bytes must be disconnected: \
                     {total} bytes were sent to user 4, and at most the kernel's buffers and the queue could hold them",
                    if heard >= total { ", all of them" } else { "" },
                ))
                .context(scene));
        }
    }
    // Nobody else noticed.
    drop(room.users.pop());
    room.say(0, b"is user 4 gone?\n")?;
    room.say(1, b"yes, and we are still here\n")?;
    room.say(2, b"me too\n")?;
    room.expect_quiet()
}

/// How much the kernel buffers for users 3 and 4 of `room` (who have not
/// read yet): user 1 sends until the server holds bytes for both beyond
/// what the kernel does (`checks::hold_bytes`), the harness notes the
/// larger of the two kernels' shares, then users 3 and 4 read it all. None
/// where the OS cannot tell (nothing is sent then).
fn kernel_for_slow_readers(room: &mut Room, max_queue: usize) -> Result<Option<usize>> {
    if crate::buffers::on_the_way(&room.users[2]).is_none() {
        return Ok(None);
    }
    let scene = "to measure what the kernel buffers for users 3 and 4, user 1 sends until the server holds bytes for them; user 2 reads at once, users 3 and 4 afterwards";
    let sent = super::hold_bytes(room, &[2, 3], max_queue / 2, 0).map_err(|f| f.context(scene))?;
    let kernel = [2, 3]
        .iter()
        .filter_map(|&i| crate::buffers::on_the_way(&room.users[i]))
        .max();
    for u in &mut room.users[2..4] {
        let mut got = Vec::new();
        let deadline = Instant::now() + STALL;
        while got.len() < sent.len() && Instant::now() < deadline {
            got.extend(
                u.read_available(Duration::from_millis(100))
                    .map_err(|f| f.context(scene))?,
            );
        }
        let differs = got.iter().zip(&sent).position(|(a, b)| a != b);
        if got.len() != sent.len() || differs.is_some() {
            let right = differs.unwrap_or(got.len().min(sent.len()));
            return Err(u.fail(format!(
                "{} expected the {} bytes user 1 sent, in order; within {} s it received {}, of which the first {right} were right\n\
                 bytes were lost, repeated or reordered: when a write takes only part of the bytes, the rest must be written later, before anything newer",
                u.name(),
                sent.len(),
                STALL.as_secs(),
                got.len()
            )).context(scene));
        }
    }
    Ok(kernel)
}

/// Two speakers, every write size, two readers with small buffers. The
/// window each speaker keeps on its way is made larger than what the
/// kernel buffers for the slow readers (measured first, see
/// `kernel_for_slow_readers`), so the server's writes to them come up
/// short whatever the kernel's buffers.
pub fn relays_every_size_whole_through_partial_writes(target: &Target) -> Result<()> {
    let max_queue = target.max_queue()?;
    let mut room = Room::new(target);
    for _ in 0..2 {
        room.join_with(&user)?;
    }
    for _ in 0..2 {
        room.join_with(&small)?;
    }
    let low = Script::Flood(Voice::Low);
    let high = Script::Flood(Voice::High);
    // Users 3 and 4 read slowly, so their sockets fill and the server's
    // writes to them come up short (the window is beyond what the kernel
    // buffers for them).
    let ears = [
        Ear::new("user 1").hears("user 2", &high),
        Ear::new("user 2").hears("user 1", &low),
        Ear::new("user 3")
            .hears("user 1", &low)
            .hears("user 2", &high)
            .slowly(),
        Ear::new("user 4")
            .hears("user 1", &low)
            .hears("user 2", &high)
            .slowly(),
    ];
    // What the kernel buffers for a slow reader, measured: the window must
    // pass it for the server's writes to come up short.
    let kernel = kernel_for_slow_readers(&mut room, max_queue)?;
    let window = match kernel {
        // Both speakers together keep at most the kernel's share and half
        // of --max-queue on their way to a reader.
        Some(k) => ((k + max_queue / 2) / 2).max(window(max_queue, 2)),
        None => window(max_queue, 2),
    };
    let total: usize = SIZES.iter().sum();
    let flow = Flow::default();
    let mut mouths = [Mouth::new(&room.users[0])?, Mouth::new(&room.users[1])?];
    std::thread::scope(|s| {
        let flow = &flow;
        for (user, ear) in room.users.iter().zip(&ears) {
            s.spawn(move || flow.run(|| keep_listening(flow, user, ear, || Ok(()))));
        }
        let [m1, m2] = &mut mouths;
        let e = &ears;
        let one = s.spawn(move || {
            flow.run(|| {
                let to = [&e[1], &e[2], &e[3]];
                m1.speak(flow, &low, SIZES.iter().copied(), &to, window, |_| true)
                    .map(drop)
            })
        });
        let two = s.spawn(move || {
            flow.run(|| {
                let to = [&e[0], &e[2], &e[3]];
                m2.speak(flow, &high, SIZES.iter().copied(), &to, window, |_| true)
                    .map(drop)
            })
        });
        let _ = (one.join(), two.join());
        let everything = || {
            e[0].heard(Voice::High) >= total
                && e[1].heard(Voice::Low) >= total
                && e[2..]
                    .iter()
                    .all(|x| x.heard(Voice::Low) >= total && x.heard(Voice::High) >= total)
        };
        if !flow.wait_until(STALL, everything) && !flow.stopped() {
            let status: Vec<String> = e
                .iter()
                .map(|x| {
                    format!(
                        "{} received {} + {}",
                        x.name,
                        x.heard(Voice::Low),
                        x.heard(Voice::High)
                    )
                })
                .collect();
            flow.fail(target.fail(format!(
                "users 1 and 2 each sent {total} bytes and stopped; {} s later not everything had arrived: {}",
                STALL.as_secs(),
                status.join(", ")
            )));
        }
        flow.stop();
    });
    if let Some(f) = flow.failure() {
        return Err(f.context(format!(
            "users 1 and 2 each send writes of {} sizes from 1 B to 1 MiB ({total} bytes, at most {window} bytes per write), \
             both at once; users 3 and 4 have {SMALL_RCVBUF}-byte receive buffers and read slowly; everyone reads",
            SIZES.len()
        )));
    }
    target.note(format!(
        "users 1 and 2 each sent {total} bytes in writes of 1 to {window} bytes; all four users got every byte"
    ));
    if kernel.is_none() && window < SURE_TO_OVERFLOW {
        target.note(format!(
            "with --max-queue {max_queue}, at most {window} bytes per speaker can be on their way, which the kernel may buffer whole: \
             the server's writes may never have come up short (the harness starts servers with --max-queue 1048576 to make sure they do)"
        ));
    }
    room.say(3, b"all there\n")?;
    room.expect_quiet()
}

/// The room is full; one more client connects and types at once (while the
/// server is stopped, when its pid is known, so the bytes are certainly
/// there before it answers). It must read the whole "full" line and a clean
/// end of file.
pub fn refuses_politely_a_client_who_typed_first(target: &Target) -> Result<()> {
    const TYPED: &[u8] = b"hello? I typed this before the server answered\n";
    let max = target.max_users();
    let mut room = Room::new(target);
    for _ in 0..max {
        room.join_with(&user)?;
    }
    let name = format!("user {} (one too many)", max + 1);
    // Every user's join was relayed: the server holds their descriptors.
    let before = target.open_fds();
    // Without the pid, the client types right after connecting, which is
    // most likely, not certainly, before the server answers.
    let frozen = match target.pid() {
        Some(_) => {
            Some(target.stop("stops the server so a client can type before it is accepted")?)
        }
        None => None,
    };
    let mut extra = user(target)?.named(&name);
    extra.send(TYPED)?;
    if frozen.is_some() {
        // The bytes travel through loopback into the connection the
        // server has not accepted yet.
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(frozen);
    let (got, how) = extra.read_until_closed().map_err(|f| {
        f.context(format!(
            "the room holds {max} users, so {name} should be told it is full, then closed"
        ))
    })?;
    if how == Closed::Reset {
        let received = if got.is_empty() {
            "nothing".to_string()
        } else {
            preview(&got)
        };
        return Err(extra.fail(format!(
            "{name} typed right after connecting, before the server answered; it received {received}, \
             then a reset (ECONNRESET) instead of end of file\n\
             closing a socket with input still unread makes the kernel reset the connection, and the reset may destroy the line just written: \
             shut down writing (shutdown(SHUT_WR)) so the client gets the line and end of file, \
             read and discard what it sent until it closes or a short deadline passes, and only then close"
        )));
    }
    let text = String::from_utf8_lossy(&got).to_lowercase();
    let one_line = got.ends_with(b"\n") && got.iter().filter(|&&b| b == b'\n').count() == 1;
    if !one_line || !text.contains("full") {
        return Err(extra.fail(format!(
            "{name} expected one line saying the room is full, then end of file; it received {}, then end of file",
            if got.is_empty() { "nothing".to_string() } else { preview(&got) }
        )));
    }
    drop(extra);
    super::expect_fds_back_because(
        target,
        before,
        &format!("{name} was refused politely"),
        "once the refused client has its line and has closed (or the linger deadline has passed), close its descriptor too",
    )?;
    room.say(0, b"still talking\n")?;
    room.say(max - 1, b"me too\n")?;
    room.expect_quiet()
}

/// Join-and-leave rounds of the log check: at most this many, whatever the
/// pipe (a server that writes little log fills it slowly, or never).
const LOG_ROUNDS_MAX: usize = 3000;

/// Rounds without a byte more in the pipe after which it counts as full
/// (a server that drops what does not fit stops adding to it).
const LOG_FULL_AFTER: usize = 50;

const LOG_NEVER_BLOCKS: &str = "a server's log must never block it: stderr may be a pipe to a program that stopped reading (or a terminal on hold), \
     and once the pipe is full a blocking write() to it waits for ever, with the whole room; make stderr non-blocking (O_NONBLOCK) \
     and drop, or count, the lines that do not fit (or queue them and write them when EVFILT_WRITE says stderr has room)";

/// The server's stderr is a pipe that the harness holds and never reads.
/// Two users stay in the room; round after round a third joins, says a
/// line and leaves, which a narrating server logs. Once the pipe is full
/// (no byte more for `LOG_FULL_AFTER` (50) rounds), as many rounds again: the
/// server has tried to write at least twice what the pipe holds, and
/// must have gone on serving the room all along.
pub fn keeps_relaying_while_its_log_is_never_read(target: &Target) -> Result<()> {
    let launch = target.launch().ok_or_else(|| {
        Failure::new(
            "this check starts the server with its stderr a pipe that nobody reads, so the harness must start it: \
             give its command (harness check never-block -- <command...>), not --addr",
        )
    })?;
    let unread = launch.on_port(0).stderr_unread();
    let server = crate::Server::start(&unread)?;
    let target = server.target();
    let pipe = |server: &crate::Server| server.unread_stderr().unwrap_or((0, None));
    let scene = |round: usize, (held, size): (usize, Option<usize>)| {
        format!(
            "the server's stderr is a pipe that nobody reads{}; users 1 and 2 stay in the room, and round after round a newcomer joins, \
             says a line and leaves; in round {round}, with {held} bytes of log waiting in the pipe:",
            size.map_or(String::new(), |n| format!(" (it holds {n} bytes)"))
        )
    };
    let mut room = Room::new(&target);
    for _ in 0..2 {
        room.join()?;
    }
    let (mut last, mut still, mut full_at) = (0, 0, None);
    let mut round = 0;
    while round < LOG_ROUNDS_MAX {
        round += 1;
        let now = pipe(&server);
        let talk = room.join().map(drop).and_then(|()| {
            room.say(2, format!("round {round} and I am off\n").as_bytes())?;
            drop(room.users.pop());
            room.say(0, format!("bye, round {round}\n").as_bytes())
        });
        talk.map_err(|f| f.context(LOG_NEVER_BLOCKS).context(scene(round, now)))?;
        let (held, _) = pipe(&server);
        if held > last {
            (last, still) = (held, 0);
        } else {
            still += 1;
        }
        if full_at.is_none() && held > 0 && still >= LOG_FULL_AFTER {
            full_at = Some(round);
        }
        if full_at.is_some_and(|at| round >= 2 * at) {
            break;
        }
    }
    let (held, size) = pipe(&server);
    match full_at {
        Some(at) => target.note(format!(
            "the server's unread log filled its pipe ({held} bytes) by round {at}; it went on serving for {} more rounds",
            round - at
        )),
        None => target.note(format!(
            "after {round} rounds only {held} bytes of log waited in the pipe{}: the server logs too little to fill it, so this check proves little",
            size.map_or(String::new(), |n| format!(" of {n}"))
        )),
    }
    room.expect_quiet()
}

/// User 4 never reads; user 1 sends 16 KiB at a time, and users 2
/// and 3 read each piece whole, so by then the server has relayed it.
/// After each piece the harness measures what the kernel holds for user 4
/// (`harness/src/buffers.rs`: on Linux, user 4's unread bytes (SIOCINQ) plus the
/// server-side socket's send queue from /proc/net/tcp); what user 1 sent
/// less that is what the server itself holds for user 4. While the
/// server-side socket is still open, that may not pass `--max-queue` by
/// more than one piece; once the server closes or shuts it down, it must
/// have held more than `--max-queue` (counting the piece that did not fit).
/// A server that keeps a dropped user's connection open to tell them why
/// (steps 7 and 8) is given `LINGER_WAIT`, with nothing more sent, to
/// close it once it passes the late bound; its early bound goes unchecked.
///
/// Where the OS cannot tell what the kernel holds (no /proc/net/tcp), only
/// the late bound is checked, allowing the kernel `buffers::GUESS`
/// (1 MiB): user 1 sends `--max-queue` + 1 MiB + one piece, and user 4 must
/// then read end of file after what reached it.
pub fn drops_a_user_near_max_queue(target: &Target) -> Result<()> {
    const STEP: usize = 16 * 1024;
    let max_queue = target.max_queue()?;
    let mut room = Room::new(target);
    for _ in 0..3 {
        room.join_with(&user)?;
    }
    room.join_with(&small)?;
    let scene = format!(
        "users 1 to 3 read everything; user 4 (a {SMALL_RCVBUF}-byte receive buffer) never reads; user 1 sends {STEP} bytes at a time, \
         and users 2 and 3 read each piece before the next (the server runs with --max-queue {max_queue})"
    );
    let mut sent = 0;
    let limit = max_queue + crate::buffers::GUESS + STEP;
    while sent < limit {
        let piece = super::payload(STEP, sent as u64);
        let [u1, u2, u3, _] = &mut room.users[..] else {
            unreachable!("four users joined")
        };
        u1.send(&piece)
            .and_then(|()| u2.expect_bytes(&piece))
            .and_then(|()| u3.expect_bytes(&piece))
            .map_err(|f| f.context(scene.clone()))?;
        sent += STEP;
        let u4 = &room.users[3];
        let (Some(side), Some(kernel)) = (
            crate::buffers::server_side(u4),
            crate::buffers::on_the_way(u4),
        ) else {
            continue;
        };
        let held = sent.saturating_sub(kernel);
        if !side.open {
            if held <= max_queue {
                return Err(target
                    .fail(format!(
                        "user 1 had sent {sent} bytes, of which the kernel held {kernel} for user 4 (unread at user 4, or unacknowledged at the server): \
                         the server dropped user 4 while it held at most {held} bytes for it\n\
                         with --max-queue {max_queue}, a user is dropped only when its queue would pass {max_queue} bytes: \
                         count the bytes waiting in that user's own queue, not what its socket has taken"
                    ))
                    .context(scene));
            }
            target.note(format!(
                "user 4 was dropped when the server held {held} bytes for it (--max-queue {max_queue}; the kernel held {kernel} more)"
            ));
            return the_others_notice_nothing(room);
        }
        if held > max_queue + STEP {
            // A server that tells a dropped user why keeps the connection
            // open while that line waits for room (steps 7 and 8: up to 2 s,
            // checked by a 1 s tick), so "open" may mean "dropped, saying
            // goodbye". Send nothing more: a server that dropped user 4 by
            // this piece closes in time (the tolerance of a server that
            // closes at once, above); one that would drop only later, or
            // never, does not, with no more bytes to relay.
            if let Some(after) = closes_within(u4, LINGER_WAIT) {
                target.note(format!(
                    "user 4 was dropped by the time the server held {held} bytes for it (--max-queue {max_queue}; the kernel held {kernel} more): \
                     its connection stayed open {} more, with nothing more sent (a goodbye line waiting), then closed; \
                     the early bound could not be checked",
                    secs(after)
                ));
                return the_others_notice_nothing(room);
            }
            return Err(target
                .fail(format!(
                    "user 1 had sent {sent} bytes, of which the kernel held {kernel} for user 4 (unread at user 4, or unacknowledged at the server), \
                     so the server held {held} bytes for user 4, and still had its connection open\n\
                     with --max-queue {max_queue}, a user whose queue would pass {max_queue} bytes is disconnected then, not some bytes later: \
                     compare the queue's length plus what is to be appended with --max-queue itself"
                ))
                .context(scene));
        }
    }
    // Where the OS cannot tell what its kernel holds: user 4 must have
    // been dropped by now.
    let u4 = &mut room.users[3];
    u4.set_timeout(Duration::from_secs(5));
    match u4.read_until_closed() {
        Ok((got, _)) => {
            target.note(format!(
                "user 4 was dropped; it received {} of user 1's {sent} bytes (this OS cannot tell what its kernel held: \
                 only the late bound was checked, allowing {} bytes of kernel buffers)",
                got.len(),
                crate::buffers::GUESS
            ));
            the_others_notice_nothing(room)
        }
        Err(f) => Err(f
            .context(format!(
                "user 1 sent {sent} bytes, --max-queue {max_queue} and {} more than the kernel could hold for user 4; \
                 user 4 should have been disconnected",
                crate::buffers::GUESS + STEP
            ))
            .context(scene)),
    }
}

/// How long `drops_a_user_near_max_queue` waits, with nothing more sent,
/// for a server that keeps a dropped user's connection open to tell them
/// why (steps 7 and 8 give them 2 s, checked by a 1 s tick).
const LINGER_WAIT: Duration = Duration::from_secs(5);

/// Whether the server's side of `client`'s connection stops being
/// ESTABLISHED (closed or shut down) within `limit`, and when.
fn closes_within(client: &Client, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if crate::buffers::server_side(client).is_none_or(|side| !side.open) {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User 4 is gone (or going): the rest of the room talks on.
fn the_others_notice_nothing(mut room: Room) -> Result<()> {
    drop(room.users.pop());
    room.say(0, b"is user 4 gone?\n")?;
    room.say(1, b"yes, and we are still here\n")?;
    room.expect_quiet()
}
