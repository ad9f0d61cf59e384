//! EVFILT_TIMER (kqueue(2)): periodic unless EV_ONESHOT, the period in
//! `data` in the unit named by NOTE_SECONDS/MSECONDS/USECONDS/NSECONDS
//! (milliseconds by default), `data` returned = expirations since the last
//! delivery (so always >= 1), and re-adding a timer restarts it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rstest::rstest;

/// A periodic timer keeps firing, each event with `data` >= 1.
#[test]
fn periodic_timer_fires_repeatedly() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 20, 77)]);
    for round in 0..3 {
        let ev = wait_for(&kq, 1, EVFILT_TIMER);
        assert!(
            ev.data >= 1,
            "round {round}: data counts expirations, got {ev:?}"
        );
        assert_eq!(ev.udata, 77, "udata comes back, got {ev:?}");
    }
}

/// `data` is the number of expirations since the last delivery: a 10 ms
/// timer left alone for 150 ms reports several at once.
#[test]
fn timer_data_counts_expirations_since_last_delivery() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 10, 0)]);
    std::thread::sleep(Duration::from_millis(150));
    let first = Instant::now();
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    assert!(ev.data >= 5, "about 15 expirations in 150 ms, got {ev:?}");
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    // At most one expiration per 10 ms since the first delivery (plus the
    // one in progress): usually 1, more only if this thread was kept off
    // the CPU between the two calls. Counting on from the first delivery
    // would add its 15 or so.
    let most = 5.max(first.elapsed().as_millis() as i64 / 10 + 1);
    assert!(
        ev.data >= 1 && ev.data <= most,
        "counting restarts after delivery: expected 1 to {most} expirations, got {ev:?}"
    );
}

/// EV_ONESHOT: the timer fires once and is then deleted.
#[test]
fn oneshot_timer_fires_once_then_is_deleted() {
    let kq = new_kq();
    add(
        &kq,
        &[change(1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10, 0)],
    );
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    assert_eq!(ev.data, 1, "got {ev:?}");
    assert_quiet(
        &kq,
        1,
        EVFILT_TIMER,
        Duration::from_millis(60),
        "EV_ONESHOT timer fired already",
    );
    assert_eq!(
        errno_of(&kq, change(1, EVFILT_TIMER, EV_DELETE, 0, 0, 0)),
        libc::ENOENT
    );
}

/// Every unit: the timer fires after the period expressed in that unit, not
/// before it.
#[rstest]
#[case::default_is_milliseconds(0, 150, 150)]
#[case::seconds(NOTE_SECONDS, 1, 1000)]
#[case::milliseconds(NOTE_MSECONDS, 150, 150)]
#[case::microseconds(NOTE_USECONDS, 150_000, 150)]
#[case::nanoseconds(NOTE_NSECONDS, 150_000_000, 150)]
fn timer_period_is_in_the_unit_given(#[case] unit: u32, #[case] period: i64, #[case] ms: u64) {
    let kq = new_kq();
    let start = Instant::now();
    add(
        &kq,
        &[change(
            5,
            EVFILT_TIMER,
            EV_ADD | EV_ONESHOT,
            unit,
            period,
            0,
        )],
    );
    let ev = wait_for(&kq, 5, EVFILT_TIMER);
    let took = start.elapsed();
    let want = Duration::from_millis(ms);
    // A little slack below: BSD callouts may round the deadline.
    assert!(
        took >= want.mul_f64(0.9),
        "period {period} unit {unit:#x}: fired after {took:?}, expected {want:?}"
    );
    assert!(
        took < want + Duration::from_secs(2),
        "fired after {took:?}, expected {want:?}"
    );
    assert_eq!(ev.data, 1, "got {ev:?}");
}

/// Re-adding a timer restarts it: a 200 ms timer re-added after 120 ms does
/// not fire at 200 ms, but 200 ms after the re-add.
#[test]
fn readding_a_timer_restarts_it() {
    let kq = new_kq();
    let start = Instant::now();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 200, 1)]);
    std::thread::sleep(Duration::from_millis(120));
    let readd = Instant::now();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 200, 2)]);
    // The first event, whenever this thread gets to wait for it: one that
    // arrives sooner than 200 ms after the re-add (less a little slack)
    // came from the old timer. (A quiet window of its own would start
    // late on a loaded machine and run into the new timer.)
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    let since = readd.elapsed();
    assert!(
        since >= Duration::from_millis(180),
        "restarted at 120 ms, due at 320 ms: fired {since:?} after the re-add ({:?} after start)",
        start.elapsed()
    );
    assert_eq!(ev.udata, 2, "udata replaced by the re-add, got {ev:?}");
    // One expiration, unless this thread came to wait more than a period
    // late: never one of the old timer's.
    let most = 1.max(since.as_millis() as i64 / 200);
    assert!(
        ev.data >= 1 && ev.data <= most,
        "expirations of the old timer are gone: expected 1 to {most} in {since:?}, got {ev:?}"
    );
}

/// Re-adding throws away expirations that were not delivered yet, and the
/// new period applies.
#[test]
fn readding_a_timer_discards_undelivered_expirations() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 10, 0)]);
    std::thread::sleep(Duration::from_millis(60));
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 10_000, 0)]);
    assert_quiet(&kq, 1, EVFILT_TIMER, QUIET, "re-added with a 10 s period");
    // And the other way round: a long timer re-added short fires soon.
    add(&kq, &[change(1, EVFILT_TIMER, EV_ADD, 0, 20, 0)]);
    let start = Instant::now();
    wait_for(&kq, 1, EVFILT_TIMER);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// A negative period is invalid.
#[test]
fn negative_timer_period_gives_einval() {
    let kq = new_kq();
    assert_eq!(
        errno_of(&kq, change(1, EVFILT_TIMER, EV_ADD, 0, -1, 0)),
        libc::EINVAL
    );
}

/// Disabled timers do not report; deleted ones never again.
#[test]
fn disabled_and_deleted_timers_do_not_fire() {
    let kq = new_kq();
    add(
        &kq,
        &[
            change(1, EVFILT_TIMER, EV_ADD | EV_DISABLE, 0, 10, 0),
            change(2, EVFILT_TIMER, EV_ADD, 0, 10, 0),
        ],
    );
    wait_for(&kq, 2, EVFILT_TIMER);
    add(&kq, &[change(2, EVFILT_TIMER, EV_DELETE, 0, 0, 0)]);
    assert_no_events(&kq, QUIET, "timer 1 disabled, timer 2 deleted");
    add(&kq, &[change(1, EVFILT_TIMER, EV_ENABLE, 0, 0, 0)]);
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    assert!(ev.data >= 1, "got {ev:?}");
}

/// Many timers in one queue are independent: each reports under its ident.
#[test]
fn timers_are_identified_by_ident() {
    let kq = new_kq();
    let changes: Vec<kevent> = (1..=5)
        .map(|i| change(i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10 * i as i64, i))
        .collect();
    add(&kq, &changes);
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 5 && start.elapsed() < DEADLINE {
        for ev in wait(&kq, Duration::from_millis(100)) {
            assert!(
                ev.is(ev.udata, EVFILT_TIMER),
                "udata is the ident here, got {ev:?}"
            );
            seen.push(ev.ident);
        }
    }
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
}

/// Now on the realtime clock, in microseconds since the Epoch (what
/// NOTE_ABSTIME | NOTE_USECONDS takes).
#[cfg(not(target_os = "macos"))]
fn epoch_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as i64
}

/// An absolute timer (NOTE_ABSTIME) keeps the flags it was registered with
/// (FreeBSD adds no EV_CLEAR and no EV_ONESHOT), fires once its time has
/// come with `data` 1, and stays registered: level-triggered it is
/// reported again, with EV_CLEAR only once; EV_DELETE finds it either way.
/// (macOS names the flag NOTE_ABSOLUTE and has no NOTE_ABSTIME.)
#[cfg(not(target_os = "macos"))]
#[rstest]
fn an_absolute_timer_keeps_its_flags_and_stays_registered(#[values(0, EV_CLEAR)] mode: Flags) {
    let kq = new_kq();
    let at = epoch_us() + 50_000;
    let fflags = NOTE_ABSTIME | NOTE_USECONDS;
    add(
        &kq,
        &[change(1, EVFILT_TIMER, EV_ADD | mode, fflags, at, 4)],
    );
    let ev = wait_for(&kq, 1, EVFILT_TIMER);
    assert!(
        epoch_us() >= at,
        "fired {} us before its time: {ev:?}",
        at - epoch_us()
    );
    assert_eq!((ev.data, ev.udata), (1, 4), "got {ev:?}");
    assert!(
        !ev.has(EV_ONESHOT) && ev.has(EV_CLEAR) == (mode == EV_CLEAR),
        "registered with EV_ADD | {mode:#x}: the returned flags must be those (no EV_ONESHOT, \
         EV_CLEAR only if asked), got {:#x}",
        ev.flags
    );
    if mode == EV_CLEAR {
        assert_quiet(&kq, 1, EVFILT_TIMER, QUIET, "EV_CLEAR: reported once");
    } else {
        let again = wait_for(&kq, 1, EVFILT_TIMER);
        assert_eq!(
            again.data, 1,
            "level-triggered: reported again, got {again:?}"
        );
    }
    assert_eq!(
        errno_of(&kq, change(1, EVFILT_TIMER, EV_DELETE, 0, 0, 0)),
        0,
        "a fired absolute timer is still registered"
    );
}

/// Timer fflags other than the units and NOTE_ABSTIME are invalid
/// (FreeBSD `filt_timervalidate`).
#[cfg(not(target_os = "macos"))]
#[test]
fn unknown_timer_fflags_give_einval() {
    let kq = new_kq();
    assert_eq!(
        errno_of(&kq, change(1, EVFILT_TIMER, EV_ADD, 0x100, 10, 0)),
        libc::EINVAL
    );
}
