//! Phase G: idle descriptors, after Jonathan Lemon's kqueue paper
//! ("Kqueue: A generic and scalable event notification facility", USENIX
//! 2001). Its best-known figure shows what a wait call costs when one
//! descriptor is active among many idle ones: `poll()` and `select()` grow
//! with every idle descriptor, because the whole set goes into the kernel
//! and is scanned on every call, while kqueue stays flat, because the
//! interest is registered once and the kernel hands back only what is ready.
//!
//! Here: N idle descriptors and one active, N = 10 .. 10,000 on a log
//! scale; the time of one wait call that finds the active one, for
//! `select` (only while every descriptor is below `FD_SETSIZE`), `poll`,
//! raw `epoll` and `kq` (on Linux the translation onto epoll, so its line
//! is epoll's plus what the translation adds). `select` and `poll` are
//! given the whole set on every call, as a program using them must, and the
//! caller then scans the result for the ready descriptor; `epoll` and `kq`
//! register every descriptor once, up front, and get the ready one back by
//! name.
//!
//! The descriptors are UDP sockets on loopback, one descriptor each: idle
//! ones are never sent anything, the active one holds one datagram that is
//! never read, so every call finds it ready again (level-triggered). A TCP
//! connection would cost two descriptors in this process (both ends), and
//! 10,000 of them would not fit under this machine's RLIMIT_NOFILE of
//! 20,000; an eventfd or a pipe has no FIONREAD-free `data` story on kq and
//! is not what a server watches. Sockets are what the paper's servers
//! watch.
//!
//! Mechanisms take turns in short rounds (this VM has fast and slow
//! spells), and each figure is the median of the rounds' ns per call, with
//! the 25th-75th percentiles as its spread. The check is deterministic:
//! every call of every mechanism returned exactly the active descriptor.
//! The full run writes the figures to `book/generated/bench/idle-fds.csv`,
//! from which `scripts/generate.sh` draws the book's plot.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

use kq::{ev_set, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD};

use crate::report::{Cell, Report, Table};
use crate::stats::{median, quantile, sorted_finite};
use crate::sys::cvt;

/// N, idle descriptors beside the active one: 10 .. 10,000, three per decade.
const SIZES: [usize; 10] = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];
/// `--quick`: enough to check every mechanism finds the active descriptor.
const SIZES_QUICK: [usize; 3] = [10, 100, 1000];

/// The data file the book's plot is drawn from, relative to the repository
/// root (its format: `book/tool/plot.rs`).
pub const DATA_FILE: &str = "book/generated/bench/idle-fds.csv";

/// The wait mechanisms, in the order they are shown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mech {
    Select,
    Poll,
    Epoll,
    Kq,
}

const MECHS: [Mech; 4] = [Mech::Select, Mech::Poll, Mech::Epoll, Mech::Kq];

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::Select => "select",
            Mech::Poll => "poll",
            Mech::Epoll => "epoll",
            Mech::Kq => "kq",
        }
    }
}

/// How long one wait may take before the phase gives up on it: the active
/// descriptor is always ready, so a wait that times out is a failure.
const WAIT_MS: i32 = 1000;

/// N idle sockets, one active, and each mechanism's registration of them.
struct Set {
    /// Kept open for their descriptors; never read or written.
    _idle: Vec<UdpSocket>,
    active: UdpSocket,
    /// Every descriptor, the active one last (it is the newest).
    fds: Vec<RawFd>,
    /// `poll`'s array, kept between calls as a program would keep it.
    pollfds: Vec<libc::pollfd>,
    epoll: RawFd,
    kq: Kqueue,
}

impl Set {
    fn new(n: usize) -> io::Result<Set> {
        // Unbound UDP sockets are idle: nothing can reach them.
        let idle = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        // The active one sends itself one datagram and never reads it.
        let active = UdpSocket::bind("127.0.0.1:0")?;
        active.send_to(b"ready", active.local_addr()?)?;
        let mut fds: Vec<RawFd> = idle.iter().map(AsRawFd::as_raw_fd).collect();
        fds.push(active.as_raw_fd());
        let pollfds = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // epoll and kq: every descriptor registered once, here.
        let kq = Kqueue::new()?;
        // SAFETY: epoll_create1 has no memory preconditions.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // From here on, dropping `set` closes `epoll`.
        let set = Set {
            _idle: idle,
            active,
            fds,
            pollfds,
            epoll,
            kq,
        };
        for &fd in &set.fds {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: fd as u64,
            };
            // SAFETY: `ev` is valid for the duration of the call.
            cvt(unsafe { libc::epoll_ctl(set.epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        }
        let changes: Vec<kq::kevent> = set
            .fds
            .iter()
            .map(|&fd| {
                let mut ev = kevent_zeroed();
                ev_set(
                    &mut ev,
                    fd as usize,
                    EVFILT_READ,
                    EV_ADD,
                    0,
                    0,
                    ptr::null_mut(),
                );
                ev
            })
            .collect();
        for chunk in changes.chunks(1024) {
            set.kq.kevent(chunk, &mut [], None)?;
        }
        Ok(set)
    }

    /// Whether `select` can watch the set: every descriptor below FD_SETSIZE.
    fn selectable(&self) -> bool {
        self.fds.iter().all(|&fd| (fd as usize) < libc::FD_SETSIZE)
    }

    /// One wait call of `mech`, then finding the ready descriptor as a
    /// program using it must; returns the descriptor found, if exactly one.
    fn wait_once(&mut self, mech: Mech) -> Option<RawFd> {
        match mech {
            Mech::Select => {
                // select() overwrites its sets: rebuild the whole set for
                // every call, then look at every bit.
                // SAFETY: fd_set is plain data; FD_ZERO initialises it.
                let mut read: libc::fd_set = unsafe { std::mem::zeroed() };
                // SAFETY: `read` is a valid fd_set.
                unsafe { libc::FD_ZERO(&mut read) };
                let mut max = 0;
                for &fd in &self.fds {
                    // SAFETY: `fd` < FD_SETSIZE (checked by `selectable`).
                    unsafe { libc::FD_SET(fd, &mut read) };
                    max = max.max(fd);
                }
                let mut tv = libc::timeval {
                    tv_sec: (WAIT_MS / 1000) as libc::time_t,
                    tv_usec: 0,
                };
                // SAFETY: `read` and `tv` are valid for the call; the other
                // sets are null, as select(2) allows.
                let n = unsafe {
                    libc::select(
                        max + 1,
                        &mut read,
                        ptr::null_mut(),
                        ptr::null_mut(),
                        &mut tv,
                    )
                };
                let mut found = None;
                for &fd in &self.fds {
                    // SAFETY: `fd` < FD_SETSIZE; `read` is a valid fd_set.
                    if unsafe { libc::FD_ISSET(fd, &read) } {
                        found = Some(fd);
                    }
                }
                found.filter(|_| n == 1)
            }
            Mech::Poll => {
                // SAFETY: the array is valid for its length.
                let n = unsafe {
                    libc::poll(
                        self.pollfds.as_mut_ptr(),
                        self.pollfds.len() as libc::nfds_t,
                        WAIT_MS,
                    )
                };
                let found = self
                    .pollfds
                    .iter()
                    .find(|p| p.revents & libc::POLLIN != 0)
                    .map(|p| p.fd);
                found.filter(|_| n == 1)
            }
            Mech::Epoll => {
                let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
                // SAFETY: `events` has room for its length.
                let n = unsafe {
                    libc::epoll_wait(
                        self.epoll,
                        events.as_mut_ptr(),
                        events.len() as i32,
                        WAIT_MS,
                    )
                };
                (n == 1).then(|| events[0].u64 as RawFd)
            }
            Mech::Kq => {
                let mut events = [kevent_zeroed(); 64];
                let wait = Some(Duration::from_millis(WAIT_MS as u64));
                match self.kq.kevent(&[], &mut events, wait) {
                    // By value: the struct is packed on macOS.
                    Ok(1) if { events[0].data } > 0 => Some({ events[0].ident } as RawFd),
                    _ => None,
                }
            }
        }
    }

    /// Times `calls` wait calls of `mech`: (ns per call, calls that did not
    /// return exactly the active descriptor).
    fn time(&mut self, mech: Mech, calls: u64) -> (f64, u64) {
        let active = self.active.as_raw_fd();
        let mut wrong = 0;
        let start = Instant::now();
        for _ in 0..calls {
            if self.wait_once(mech) != Some(active) {
                wrong += 1;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / calls as f64;
        (ns, wrong)
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        // SAFETY: the epoll descriptor is ours and not used again.
        unsafe { libc::close(self.epoll) };
    }
}

/// One measured point: N, a mechanism, ns per call (median and middle half).
struct Point {
    n: usize,
    mech: Mech,
    median: f64,
    q25: f64,
    q75: f64,
}

/// Runs the phase: prints its table, checks that every call found the
/// active descriptor, and (full size) writes the data file for the book.
pub fn run(quick: bool, hard_limit: u64, machine: &str, rep: &mut Report) -> Result<(), String> {
    let (sizes, rounds, round) = if quick {
        (&SIZES_QUICK[..], 5, Duration::from_millis(1))
    } else {
        (&SIZES[..], 31, Duration::from_millis(4))
    };
    let mut t = Table::new(
        &format!(
            "G. Idle descriptors (Lemon, USENIX 2001): ns per wait call that finds the one active descriptor among N idle UDP sockets; select/poll pass the whole set each call, epoll/kq registered once; median of {rounds} rounds of ~{} ms per mechanism in turn (middle half)",
            round.as_millis()
        ),
        &[
            "idle N", "select", "(q25-q75)", "poll", "(q25-q75)", "epoll", "(q25-q75)", "kq",
            "(q25-q75)",
        ],
    );
    let mut points = Vec::new();
    let mut calls = [0u64; MECHS.len()];
    let mut wrong = [0u64; MECHS.len()];
    for &n in sizes {
        // N idle + 1 active + epoll + kq's own few, under the soft limit
        // the bench raised to the hard one.
        if (n as u64) + 64 > hard_limit {
            t.row(vec![
                Cell::num(n as f64, 0),
                Cell::Text(format!("skipped: RLIMIT_NOFILE {hard_limit} is too low")),
            ]);
            continue;
        }
        let mut set = Set::new(n).map_err(|e| format!("phase G, {n} descriptors: {e}"))?;
        let mechs: Vec<Mech> = MECHS
            .into_iter()
            .filter(|&m| m != Mech::Select || set.selectable())
            .collect();
        // Calls per round: as many as fit in `round`, from a first guess.
        let per_round: Vec<u64> = mechs
            .iter()
            .map(|&m| {
                let (ns, _) = set.time(m, 8);
                ((round.as_nanos() as f64 / ns.max(1.0)) as u64).clamp(8, 200_000)
            })
            .collect();
        let mut ns: Vec<Vec<f64>> = mechs.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, &m) in mechs.iter().enumerate() {
                let (per_call, w) = set.time(m, per_round[i]);
                ns[i].push(per_call);
                let k = MECHS.iter().position(|&x| x == m).unwrap_or(0);
                calls[k] += per_round[i];
                wrong[k] += w;
            }
        }
        let mut cells = vec![Cell::num(n as f64, 0)];
        for m in MECHS {
            match mechs.iter().position(|&x| x == m) {
                Some(i) => {
                    let p = point(n, m, &ns[i]);
                    cells.push(Cell::num(p.median, 0));
                    cells.push(Cell::Text(format!("{:.0}-{:.0}", p.q25, p.q75)));
                    points.push(p);
                }
                None => {
                    cells.push(Cell::text("n/a"));
                    cells.push(Cell::text("fd >= FD_SETSIZE"));
                }
            }
        }
        t.row(cells);
    }
    rep.table(t);
    rep.note("n/a: select() cannot watch a descriptor numbered FD_SETSIZE (1024) or above");
    for (k, m) in MECHS.iter().enumerate() {
        rep.check(
            &format!(
                "G: every {} call found exactly the active descriptor",
                m.name()
            ),
            calls[k] > 0 && wrong[k] == 0,
            format!("{} of {} calls did not", wrong[k], calls[k]),
        );
    }
    if !quick {
        let path = write_data(&points, machine)?;
        rep.note(&format!(
            "wrote {}: run scripts/generate.sh to redraw the book's plot from it, then commit both",
            path.display()
        ));
    }
    Ok(())
}

/// The median and quartiles (nearest rank) of one mechanism's rounds at N.
fn point(n: usize, mech: Mech, rounds: &[f64]) -> Point {
    let sorted = sorted_finite(rounds);
    Point {
        n,
        mech,
        median: median(rounds.to_vec()),
        q25: quantile(&sorted, 0.25),
        q75: quantile(&sorted, 0.75),
    }
}

/// Writes the data file the book's plot is drawn from (format: see
/// `book/tool/plot.rs`): comment lines saying what and where, then one
/// row per N and mechanism.
fn write_data(points: &[Point], machine: &str) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the bench crate has no parent directory")?;
    let path = root.join(DATA_FILE);
    let mut out = String::new();
    out.push_str("# Phase G of the bench (bench/src/phases/idle.rs), after Lemon's kqueue paper (USENIX 2001):\n");
    out.push_str(
        "# ns per wait call that finds the one active descriptor among N idle UDP sockets.\n",
    );
    out.push_str(
        "# select and poll get the whole set on every call; epoll and kq register it once.\n",
    );
    out.push_str(
        "# Written by `cargo run --release -p bench --features refs` (or `-- --idle`); the plot\n",
    );
    out.push_str(
        "# book/generated/bench/idle-fds.svg is drawn from this file by scripts/generate.sh.\n",
    );
    out.push_str(&format!("# machine: {machine}; measured {}\n", today()));
    out.push_str("n,mechanism,median_ns,q25_ns,q75_ns\n");
    for p in points {
        out.push_str(&format!(
            "{},{},{:.0},{:.0},{:.0}\n",
            p.n,
            p.mech.name(),
            p.median,
            p.q25,
            p.q75
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.strip_prefix(root).unwrap_or(&path).to_path_buf())
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Day counts become calendar dates, leap years and centuries included.
    #[test]
    fn dates_follow_the_gregorian_calendar() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (11_016, (2000, 2, 29)),
            (19_782, (2024, 2, 29)),
            (20_789, (2026, 12, 2)),
        ] {
            assert_eq!(civil_from_days(days), want, "day {days}");
        }
    }

    /// With 100 idle sockets, each mechanism's wait call returns exactly
    /// the active one, every time.
    #[test]
    fn every_mechanism_finds_the_active_descriptor() {
        let mut set = Set::new(100).expect("100 UDP sockets");
        for m in MECHS {
            let (_, wrong) = set.time(m, 20);
            assert_eq!(wrong, 0, "{}: {wrong} of 20 calls missed", m.name());
        }
    }
}
