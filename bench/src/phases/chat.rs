//! Phase E: chat fan-out. E: one sender and 100 or 1000 receivers (step5,
//! and any `--chat NAME=PATH`). E2: the same room of 100 readers with one
//! more user who never reads (steps 5 to 8, and `--chat` servers), beside
//! the room without that user: step 5 stalls, steps 6 to 8 keep serving.

use std::time::{Duration, Instant};

use crate::client::{NeverReader, Pool, MSG};
use crate::report::{Cell, Report, Table};
use crate::run::{ChatSpec, Ctx};
use crate::stats::{median, middle_half, pct};
use crate::sys::{self, SyscallCount};

/// `--max-queue` for steps 6 to 8 in E2: 4 MiB, their default, given
/// explicitly so the figures do not move if the default does. What it must
/// be is large enough for the never-reader to stay in the room for the
/// whole measurement: the figures are then those of a room with a stuck
/// user in it, not of the room after the server dropped that user (the
/// drop itself is what the steps' own tests check). At the ~1,500 lines a
/// second a room of 100 readers carries here, a few seconds leave a few
/// hundred KB waiting for it, far below 4 MiB.
pub const MAX_QUEUE: usize = 4 << 20;
/// The readers of E2, besides the sender and the never-reader.
const READERS: usize = 100;
/// The never-reader's SO_RCVBUF, set before it connects (with 1400-byte
/// segments, as across a network: see `NeverReader`). Linux doubles it
/// (8 KiB) and advertises about half of that. A suspended `nc` has the
/// default 128 KiB, which autotuning grows towards 32 MiB (tcp_rmem), and
/// over loopback the server's send buffer to it grows to some 3 MiB: the
/// room would talk for half a minute before they filled. Like this they
/// are full after some 70 KiB: step 5 stalls within the first second, and
/// steps 6 to 8 hold the rest in their own queue for nearly all of the
/// measurement. (The same size as the harness's never-block check.)
const NEVER_RCVBUF: usize = 4096;
/// In E2, a line that has not reached every reader within this long means
/// the room has stalled (a reader's line takes well under a millisecond).
const STALL: Duration = Duration::from_secs(1);

pub fn run(
    ctx: &Ctx,
    chat: &[ChatSpec],
    skipped: &[(String, String, bool)],
    rep: &mut Report,
) -> Result<(), String> {
    if !ctx.quick {
        fanout(ctx, chat, skipped, rep);
    }
    never_reader(ctx, chat, skipped, rep);
    Ok(())
}

/// E: one sender, 100 or 1000 receivers, closed loop per broadcast.
fn fanout(ctx: &Ctx, chat: &[ChatSpec], skipped: &[(String, String, bool)], rep: &mut Report) {
    let mut t = Table::new(
        "E. Chat fan-out: one sender, every other user receives each 64 B line; closed loop per broadcast, 2 s",
        &[
            "server",
            "receivers",
            "deliveries/s",
            "fan-out p50 us",
            "fan-out p99 us",
            "srv CPU us/delivery",
            "syscalls/delivery",
            "writes/delivery",
            "reads/delivery",
            "lost",
        ],
    );
    for (name, why, _) in skipped.iter().filter(|s| s.2) {
        t.row(vec![
            Cell::text(name),
            Cell::Text(format!("skipped: {why}")),
        ]);
    }
    for c in chat.iter().filter(|c| c.fanout) {
        let spec = &c.spec;
        for receivers in [100usize, 1000] {
            let users = receivers + 1;
            let extra = ["--max-users".to_string(), (users + 8).to_string()];
            let row = (|| -> Result<Vec<Cell>, String> {
                let mut server = ctx.place.start(spec, &extra)?;
                let (mut pool, _) = Pool::connect(server.addr, users, Duration::from_secs(20))
                    .map_err(|e| e.to_string())?;
                pool.drain_quiet(Duration::from_secs(3));
                if pool.dead() > 0 {
                    return Err(format!(
                        "the server closed {} of {users} connections before the first line (is --max-users honoured?)",
                        pool.dead()
                    ));
                }
                let give_up = Duration::from_secs(5);
                let r = pool.chat(server.pid(), Duration::from_secs(2), u64::MAX, give_up);
                let sys = if ctx.perf && r.lost == 0 {
                    let sc = SyscallCount::start(server.pid(), Duration::from_millis(1000)).ok();
                    std::thread::sleep(Duration::from_millis(250));
                    let w = pool.chat(server.pid(), Duration::from_millis(400), u64::MAX, give_up);
                    sc.and_then(SyscallCount::finish)
                        .filter(|_| w.lost == 0 && w.deliveries > 0)
                        .map(|c| {
                            let per = |n: u64| n as f64 / w.deliveries as f64;
                            (per(c.total), per(c.kinds[1]), per(c.kinds[0]))
                        })
                } else {
                    None
                };
                if server.exited() {
                    return Err("the server exited".into());
                }
                rep.check(
                    &format!(
                        "{}: every line reached all {receivers} receivers intact (phase E)",
                        spec.name
                    ),
                    r.lost == 0 && pool.corrupt == 0 && r.deliveries > 0,
                    format!(
                        "{} deliveries, {} lost, {} reads with bytes other than those sent",
                        r.deliveries, r.lost, pool.corrupt
                    ),
                );
                let mut fan = r.fan_ns;
                fan.sort_unstable();
                Ok(vec![
                    Cell::num(r.deliveries as f64 / r.secs, 0),
                    Cell::num(pct(&fan, 0.5), 0),
                    Cell::num(pct(&fan, 0.99), 0),
                    Cell::num(r.cpu_ns as f64 / r.deliveries.max(1) as f64 / 1000.0, 2),
                    Cell::opt(sys.map(|s| s.0), 3),
                    Cell::opt(sys.map(|s| s.1), 3),
                    Cell::opt(sys.map(|s| s.2), 3),
                    Cell::num(r.lost as f64, 0),
                ])
            })();
            let mut cells = vec![Cell::text(&spec.name), Cell::num(receivers as f64, 0)];
            match row {
                Ok(c) => cells.extend(c),
                Err(e) => cells.push(Cell::Text(format!("failed: {e}"))),
            }
            t.row(cells);
        }
    }
    rep.table(t);
}

/// Lines and deliveries of a part of a room's life, with their fan-out
/// times.
#[derive(Default)]
struct Tally {
    deliveries: u64,
    secs: f64,
    cpu_ns: u64,
    fan: Vec<u32>,
}

impl Tally {
    fn add(&mut self, r: &crate::client::Chat) {
        self.deliveries += r.deliveries;
        self.secs += r.secs;
        self.cpu_ns += r.cpu_ns;
        self.fan.extend_from_slice(&r.fan_ns);
    }
    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.secs
    }
}

/// What one server did in the room with a user who never reads.
struct Room {
    /// From the first line until the never-reader's kernel buffers were
    /// full (the server first kept bytes for it itself, or stopped): the
    /// time, the lines sent, and the bytes in the kernel's buffers then.
    full_after: Option<(f64, u64, u64)>,
    /// The room stopped: when (from its first line) the line that reached
    /// nobody was sent, and the deliveries before.
    stalled: Option<(f64, u64)>,
    /// Before the never-reader's buffers were full (the only figures a
    /// room that stalls has).
    filling: Tally,
    /// The measured slices, with the never-reader, and of the same room
    /// without it (the paired slices' ratios of deliveries/s).
    with: Tally,
    without: Option<Tally>,
    ratios: Vec<f64>,
    /// Bytes the server held in its own memory for the never-reader at
    /// the end: sent to it, less what its receive buffer and the server's
    /// send buffer hold (for step 5: what is left of the line its blocked
    /// write() is writing).
    held: u64,
    /// Every line the sender sent, and what the never-reader received of
    /// them when it read at last (and whether each byte was right).
    lines: u64,
    nr_got: u64,
    nr_intact: bool,
    lost: u64,
    corrupt: u64,
    dead: usize,
}

/// E2: a room of 100 readers and one more user who never reads (quick:
/// step 6 alone, one short slice, for the checks).
fn never_reader(
    ctx: &Ctx,
    chat: &[ChatSpec],
    skipped: &[(String, String, bool)],
    rep: &mut Report,
) {
    let (cycles, slice) = if ctx.quick {
        (1, Duration::from_millis(300))
    } else {
        (4, Duration::from_millis(500))
    };
    let mut t = Table::new(
        &format!(
            "E2. Chat fan-out with one user who never reads: one sender, {READERS} readers, and a user with SO_RCVBUF {NEVER_RCVBUF} who reads nothing (steps 6-8: --max-queue {MAX_QUEUE}); once its buffers are full, {}; figures for the readers",
            if ctx.quick {
                format!("one {:.1} s slice", slice.as_secs_f64())
            } else {
                format!(
                    "{cycles} cycles of one {:.1} s slice of this room and of the same room without it, in turn",
                    slice.as_secs_f64()
                )
            }
        ),
        &[
            "server",
            "readers",
            "deliveries/s",
            "without it",
            "x without",
            "fan-out p50 us",
            "fan-out p99 us",
            "srv CPU us/delivery",
            "full after s",
            "kernel KB",
            "server holds KB",
            "stalled",
        ],
    );
    for (name, why, _) in skipped {
        t.row(vec![
            Cell::text(name),
            Cell::Text(format!("skipped: {why}")),
        ]);
    }
    let mut ratio_spread = Vec::new();
    for c in chat {
        let name = &c.spec.name;
        let mut cells = vec![Cell::text(name), Cell::num(READERS as f64, 0)];
        let room = match room(ctx, c, cycles, slice) {
            Ok(r) => r,
            Err(e) => {
                cells.push(Cell::Text(format!("failed: {e}")));
                t.row(cells);
                rep.check(
                    &format!("{name}: the room with a user who never reads ran (phase E2)"),
                    false,
                    e,
                );
                continue;
            }
        };
        let kb = |b: u64| b as f64 / 1024.0;
        let measured = if room.stalled.is_none() {
            &room.with
        } else {
            &room.filling
        };
        let mut fan = measured.fan.clone();
        fan.sort_unstable();
        cells.push(match room.stalled {
            Some(_) => Cell::text("stalled"),
            None => Cell::num(room.with.rate(), 0),
        });
        cells.push(Cell::opt(room.without.as_ref().map(Tally::rate), 0));
        cells.push(if room.ratios.is_empty() {
            Cell::na()
        } else {
            Cell::num(median(room.ratios.clone()), 3)
        });
        cells.push(Cell::num(pct(&fan, 0.5), 0));
        cells.push(Cell::num(pct(&fan, 0.99), 0));
        cells.push(Cell::num(
            measured.cpu_ns as f64 / measured.deliveries.max(1) as f64 / 1000.0,
            2,
        ));
        cells.push(Cell::opt(room.full_after.map(|f| f.0), 3));
        cells.push(Cell::opt(room.full_after.map(|f| kb(f.2)), 1));
        cells.push(Cell::num(kb(room.held), 1));
        cells.push(Cell::Text(match room.stalled {
            None => "no".into(),
            Some((at, deliveries)) => format!(
                "after {at:.3} s: {deliveries} deliveries, then none within {} s",
                STALL.as_secs()
            ),
        }));
        t.row(cells);
        if room.ratios.len() > 1 {
            ratio_spread.push(format!(
                "{name} {}",
                match middle_half(&room.ratios, 2) {
                    Cell::Text(s) => s,
                    _ => String::new(),
                }
            ));
        }
        let nr = format!(
            "reading at last, the never-reader got {} of the {} bytes sent to it{}",
            room.nr_got,
            room.lines * MSG as u64,
            if room.nr_intact {
                ", every line in order"
            } else {
                ""
            }
        );
        if c.blocks {
            // The classic server stops: shown, not checked. What is checked
            // is that it only stopped: nothing was lost.
            rep.check(
                &format!("{name}: once the user who never reads reads, every line reaches them (phase E2)"),
                room.nr_intact,
                nr,
            );
            continue;
        }
        rep.check(
            &format!("{name}: a user who never reads stalls nobody: every line reached all {READERS} readers intact (phase E2)"),
            room.stalled.is_none()
                && room.lost == 0
                && room.corrupt == 0
                && room.dead == 0
                && room.with.deliveries > 0,
            format!(
                "{} deliveries measured, {} lost, {} reads with bytes other than those sent, {} readers dropped{}",
                room.with.deliveries + room.without.as_ref().map_or(0, |w| w.deliveries),
                room.lost,
                room.corrupt,
                room.dead,
                match room.stalled {
                    Some((at, _)) => format!(", stalled after {at:.3} s"),
                    None => String::new(),
                }
            ),
        );
        if c.max_queue {
            // The queue is large enough that the never-reader stays: the
            // server held its lines (the point of the room) and hands all of
            // them over once it reads.
            rep.check(
                &format!("{name}: the server keeps what a user who never reads has not taken, and hands all of it over (phase E2)"),
                room.held > 0 && room.nr_intact,
                format!("the server held {} bytes for it at the end; {nr}", room.held),
            );
        }
    }
    rep.table(t);
    rep.note(&format!(
        "deliveries/s, fan-out and CPU: the readers, in the measured slices (for a room that stalled: until it stalled); without it = the same room with no never-reader, in the slices between; x without = median of per-cycle ratios{}; full after = from the first line until the never-reader's kernel buffers (its receive queue and the server's send queue, kernel KB) were full; server holds = bytes the server kept for it in its own memory at the end (sent, less both kernel queues, from FIONREAD and /proc/net/tcp)",
        if ratio_spread.is_empty() {
            String::new()
        } else {
            format!(" (middle half: {})", ratio_spread.join(", "))
        }
    ));
}

/// One server's room with a never-reader: fill its buffers, then measured
/// slices against the same room without it, then let it read.
fn room(ctx: &Ctx, c: &ChatSpec, cycles: usize, slice: Duration) -> Result<Room, String> {
    let users = READERS + 1;
    // The sender, the readers and the never-reader, and room to spare.
    let extra = ["--max-users".to_string(), (users + 1 + 8).to_string()];
    let mut server = ctx.place.start(&c.spec, &extra)?;
    let pid = server.pid();
    let (mut pool, _) =
        Pool::connect(server.addr, users, Duration::from_secs(20)).map_err(|e| e.to_string())?;
    // Last, so step 5 relays to every reader before it blocks on this user.
    let mut nr = NeverReader::connect(server.addr, NEVER_RCVBUF)
        .map_err(|e| format!("the never-reader: {e}"))?;
    pool.drain_quiet(Duration::from_secs(3));
    nr.settle();
    if pool.dead() > 0 || nr.closed() {
        return Err(format!(
            "the server closed {} of {} connections before the first line (is --max-users honoured?)",
            pool.dead() + usize::from(nr.closed()),
            users + 1
        ));
    }
    let base = pool.chat_base();
    let kernel =
        |nr: &NeverReader| nr.unread() + sys::tcp_queues(server.addr, nr.local).map_or(0, |q| q.0);
    let mut room = Room {
        full_after: None,
        stalled: None,
        filling: Tally::default(),
        with: Tally::default(),
        without: None,
        ratios: Vec::new(),
        held: 0,
        lines: 0,
        nr_got: 0,
        nr_intact: false,
        lost: 0,
        corrupt: 0,
        dead: 0,
    };
    // Fill: 50 lines at a time until the server keeps bytes for the
    // never-reader itself (its buffers are full), or stops.
    let t0 = Instant::now();
    while room.full_after.is_none() && room.stalled.is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "after 10 s and {} lines the never-reader's buffers were still not full (did the server drop it?)",
                room.lines
            ));
        }
        let at = t0.elapsed();
        let r = pool.chat(pid, Duration::from_secs(1), 50, STALL);
        room.lines += r.broadcasts;
        room.lost += r.lost;
        room.filling.add(&r);
        let in_kernel = kernel(&nr);
        if let Some(s) = r.stalled {
            room.stalled = Some(((at + s).as_secs_f64(), room.filling.deliveries));
            room.full_after = Some(((at + s).as_secs_f64(), room.lines, in_kernel));
        } else if room.lines * MSG as u64 > in_kernel {
            room.full_after = Some((t0.elapsed().as_secs_f64(), room.lines, in_kernel));
        }
    }
    if room.stalled.is_none() {
        // The same room without a never-reader, for the paired ratio.
        let mut plain = if ctx.quick {
            None
        } else {
            let s = ctx.place.start(&c.spec, &extra)?;
            let (mut p, _) =
                Pool::connect(s.addr, users, Duration::from_secs(20)).map_err(|e| e.to_string())?;
            p.drain_quiet(Duration::from_secs(3));
            Some((s, p, Tally::default()))
        };
        for cycle in 0..cycles {
            // Which room goes first alternates, so neither always follows
            // the other's slice.
            let mut rates = [f64::NAN; 2];
            for k in 0..2 {
                if (k + cycle) % 2 == 0 {
                    let at = t0.elapsed();
                    let r = pool.chat(pid, slice, u64::MAX, STALL);
                    room.lines += r.broadcasts;
                    room.lost += r.lost;
                    rates[0] = r.deliveries as f64 / r.secs;
                    room.with.add(&r);
                    if let Some(s) = r.stalled {
                        room.stalled = Some(((at + s).as_secs_f64(), room.with.deliveries));
                    }
                } else if let Some((s, p, tally)) = plain.as_mut() {
                    let r = p.chat(s.pid(), slice, u64::MAX, STALL);
                    room.lost += r.lost;
                    rates[1] = r.deliveries as f64 / r.secs;
                    tally.add(&r);
                }
            }
            room.ratios.push(rates[0] / rates[1]);
            if room.stalled.is_some() {
                break;
            }
        }
        room.ratios.retain(|r| r.is_finite());
        if let Some((mut s, p, tally)) = plain {
            room.corrupt += p.corrupt;
            room.dead += p.dead();
            if s.exited() {
                return Err("the server of the room without a never-reader exited".into());
            }
            room.without = Some(tally);
        }
    }
    // A room that stalled never read the line that reached nobody: the
    // never-reader was sent the lines before it.
    let to_it = room.lines - u64::from(room.stalled.is_some());
    room.held = (to_it * MSG as u64).saturating_sub(kernel(&nr));
    room.corrupt += pool.corrupt;
    room.dead += pool.dead();
    if server.exited() {
        return Err("the server exited".into());
    }
    // At last the never-reader reads: everything sent to it should come.
    let (got, intact) = nr.read_all(base, room.lines, Duration::from_secs(10));
    room.nr_got = got;
    room.nr_intact = intact;
    Ok(room)
}
