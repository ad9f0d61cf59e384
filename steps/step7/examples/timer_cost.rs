//! What step 7's two idle-timer designs cost at 10,000 users, measured on
//! this machine (the chapter's figures):
//!
//! - one `EVFILT_TIMER` per user: registered at join, re-armed (`EV_ADD` of
//!   the same ident, which restarts it) at each message the user sends, so
//!   it fires only after a silence;
//! - one periodic tick, and at each tick a sweep over every user's
//!   `last_heard`.
//!
//! ```sh
//! (ulimit -n 20000 && cargo run --release -p step7 --example timer_cost)
//! cargo run --release -p step7 --example timer_cost -- 100000   # other sizes
//! ```
//!
//! On Linux, kq gives each timer a timerfd: 10,000 timers are 10,000
//! descriptors, past the usual limit of 1024 (hence the `ulimit`). On
//! macOS and the BSDs a timer is a kernel callout, not a descriptor.

use std::hint::black_box;
use std::ptr;
use std::time::{Duration, Instant};

use kq::{
    ev_set, kevent, kevent_zeroed, Flags, Kqueue, EVFILT_TIMER, EV_ADD, EV_DELETE, EV_ONESHOT,
};

/// The idle timeout the timers are set to: long, so none fires meanwhile.
const TIMEOUT_MS: i64 = 60_000;

fn timer(ident: usize, flags: Flags) -> kevent {
    let mut ev = kevent_zeroed();
    ev_set(
        &mut ev,
        ident,
        EVFILT_TIMER,
        flags,
        0,
        TIMEOUT_MS as _,
        ptr::null_mut(),
    );
    ev
}

/// Descriptors this process has open (Linux), for the timerfds' share.
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

fn per(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of users"))
        .unwrap_or(10_000);
    let kq = Kqueue::new().expect("kqueue()");
    let before = open_fds();

    // One timer per user: all registered (one kevent() call per join, as
    // step 7 registers a newcomer), then each re-armed once (a message).
    let t = Instant::now();
    for i in 0..n {
        if let Err(e) = kq.kevent(&[timer(i, EV_ADD | EV_ONESHOT)], &mut [], None) {
            eprintln!(
                "timer_cost: registering timer {} of {n} failed: {e}\n\
                 (on Linux each timer is a timerfd, one descriptor: raise the limit, e.g. ulimit -n {})",
                i + 1,
                n + 100
            );
            std::process::exit(1);
        }
    }
    let added = t.elapsed();
    let fds = open_fds();
    let t = Instant::now();
    for i in 0..n {
        kq.kevent(&[timer(i, EV_ADD | EV_ONESHOT)], &mut [], None)
            .expect("re-arm a timer");
    }
    let rearmed = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        kq.kevent(&[timer(i, EV_DELETE)], &mut [], None)
            .expect("delete a timer");
    }
    let deleted = t.elapsed();

    // One sweep: each user's last message time, compared with the timeout,
    // once per tick. Averaged over many ticks.
    let now = Instant::now();
    let last_heard: Vec<Instant> = (0..n)
        .map(|i| now - Duration::from_millis(i as u64 % 50_000))
        .collect();
    let timeout = Duration::from_millis(TIMEOUT_MS as u64);
    let ticks = 1000;
    let t = Instant::now();
    let mut idle = 0;
    for _ in 0..ticks {
        let now = Instant::now();
        idle += black_box(&last_heard)
            .iter()
            .filter(|&&h| now - h >= timeout)
            .count();
    }
    let swept = t.elapsed() / ticks;
    black_box(idle);

    println!("{n} users, idle timeout {} s", TIMEOUT_MS / 1000);
    println!("one EVFILT_TIMER per user:");
    println!("  register (at join)      {} per user", per(added, n));
    println!(
        "  re-arm (at a message)   {} per message, one kevent() call",
        per(rearmed, n)
    );
    println!("  delete (at leave)       {} per user", per(deleted, n));
    match (before, fds) {
        (Some(b), Some(a)) => println!(
            "  descriptors            {} for {n} timers ({:.2} per timer)",
            a - b,
            (a - b) as f64 / n as f64
        ),
        _ => println!("  descriptors            none (the kernel's timers)"),
    }
    println!("one periodic tick and a sweep:");
    println!(
        "  sweep of {n} users      {:.1} µs per tick ({} per user); nothing per message but storing the time",
        swept.as_secs_f64() * 1e6,
        per(swept, n)
    );
}
