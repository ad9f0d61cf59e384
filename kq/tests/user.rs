//! EVFILT_USER (kqueue(2), `filt_usertouch`): triggered by NOTE_TRIGGER;
//! the low 24 bits of `fflags` are combined into the stored value by
//! NOTE_FFNOP/FFAND/FFOR/FFCOPY and reported; `data` is passed through; a
//! trigger from another thread wakes a kevent() blocked in a third.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rstest::rstest;

/// An added user event stays silent until NOTE_TRIGGER, then reports.
#[test]
fn user_event_fires_only_when_triggered() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 9)]);
    assert_quiet(&kq, 1, EVFILT_USER, QUIET, "not triggered yet");
    add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 9)]);
    let ev = wait_for(&kq, 1, EVFILT_USER);
    assert_eq!(ev.udata, 9, "got {ev:?}");
    assert_eq!(
        ev.fflags & NOTE_TRIGGER,
        0,
        "NOTE_TRIGGER is an action, not reported: {ev:?}"
    );
}

/// The fflags operations combine the low 24 bits into the stored value:
/// FFCOPY replaces, FFOR adds bits, FFAND keeps only common bits, FFNOP
/// leaves them; the event reports the result.
#[rstest]
#[case::copy(0x0f, NOTE_FFCOPY | 0x30, 0x30)]
#[case::or(0x0f, NOTE_FFOR | 0xf0, 0xff)]
#[case::and(0xff, NOTE_FFAND | 0x3c, 0x3c)]
#[case::nop(0x0f, NOTE_FFNOP | 0xf0, 0x0f)]
#[case::only_low_24_bits(0, NOTE_FFCOPY | 0x3fff_ffff, NOTE_FFLAGSMASK)]
fn fflags_operations_combine_into_the_stored_value(
    #[case] initial: u32,
    #[case] op: u32,
    #[case] expected: u32,
) {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    add(
        &kq,
        &[change(1, EVFILT_USER, 0, NOTE_FFCOPY | initial, 0, 0)],
    );
    assert_quiet(
        &kq,
        1,
        EVFILT_USER,
        Duration::ZERO,
        "fflags changed but not triggered",
    );
    add(&kq, &[change(1, EVFILT_USER, 0, op | NOTE_TRIGGER, 0, 0)]);
    let ev = wait_for(&kq, 1, EVFILT_USER);
    assert_eq!(
        ev.fflags, expected,
        "stored {initial:#x}, applied {op:#x}: got {ev:?}"
    );
}

/// Bits set with FFOR by several triggers before a delivery accumulate,
/// and the triggers coalesce into one event.
#[test]
fn triggers_coalesce_and_ffor_bits_accumulate() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    for bit in [0x1, 0x4, 0x10] {
        add(
            &kq,
            &[change(
                1,
                EVFILT_USER,
                0,
                NOTE_FFOR | NOTE_TRIGGER | bit,
                0,
                0,
            )],
        );
    }
    let evs = poll(&kq);
    assert_eq!(evs.len(), 1, "three triggers, one event: {evs:?}");
    assert_eq!(evs[0].fflags, 0x15, "got {:?}", evs[0]);
}

/// `data` given with the trigger is reported.
#[test]
fn user_data_is_passed_through() {
    let kq = new_kq();
    add(&kq, &[change(1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 4242, 0)]);
    let ev = wait_for(&kq, 1, EVFILT_USER);
    assert_eq!(ev.data, 4242, "got {ev:?}");
}

/// Without EV_CLEAR a triggered user event stays triggered (reported on
/// every call); with EV_CLEAR it is reported once per trigger.
#[test]
fn user_event_without_clear_stays_triggered() {
    let kq = new_kq();
    add(
        &kq,
        &[
            change(1, EVFILT_USER, EV_ADD, 0, 0, 0),
            change(2, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0),
        ],
    );
    add(
        &kq,
        &[
            change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
            change(2, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
        ],
    );
    let mut first: Vec<usize> = poll(&kq).iter().map(|e| e.ident).collect();
    first.sort();
    assert_eq!(first, vec![1, 2]);
    for _ in 0..2 {
        let again: Vec<usize> = poll(&kq).iter().map(|e| e.ident).collect();
        assert_eq!(again, vec![1], "only the level-triggered one stays");
    }
}

/// A trigger while the knote is disabled is not reported while it stays
/// disabled, but it is remembered: EV_ENABLE reports it at once (FreeBSD
/// `filt_usertouch` sets the triggered state whatever the knote's status,
/// and `kqueue_register` re-evaluates the filter on enable; XNU does the
/// same).
#[test]
fn trigger_while_disabled_is_reported_on_enable() {
    let kq = new_kq();
    add(
        &kq,
        &[change(
            1,
            EVFILT_USER,
            EV_ADD | EV_CLEAR | EV_DISABLE,
            0,
            0,
            0,
        )],
    );
    add(&kq, &[change(1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
    assert_quiet(&kq, 1, EVFILT_USER, QUIET, "disabled");
    add(&kq, &[change(1, EVFILT_USER, EV_ENABLE, 0, 0, 0)]);
    let evs = poll(&kq);
    assert!(
        evs.iter().any(|e| e.is(1, EVFILT_USER)),
        "triggered while disabled, then enabled: {evs:?}"
    );
    assert_quiet(&kq, 1, EVFILT_USER, QUIET, "EV_CLEAR: reported once");
}

/// A trigger from one thread wakes a kevent() blocked in another (with a
/// NULL timeout), and a third thread does the triggering.
#[test]
fn trigger_from_another_thread_wakes_a_blocked_kevent() {
    let kq = Arc::new(new_kq());
    add(&kq, &[change(7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let kq = Arc::clone(&kq);
        std::thread::spawn(move || {
            let mut out = [kevent_zeroed(); 4];
            let r = kq.kevent(&[], &mut out, None);
            let _ = tx.send((
                r.map(|n| out[..n].iter().map(Ev::from_kevent).collect::<Vec<_>>()),
                Instant::now(),
            ));
        })
    };
    std::thread::sleep(Duration::from_millis(50)); // let it block
    let trigger = {
        let kq = Arc::clone(&kq);
        std::thread::spawn(move || {
            let sent = Instant::now();
            add(&kq, &[change(7, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0)]);
            sent
        })
    };
    let sent = trigger.join().expect("trigger thread");
    let (got, woke) = rx
        .recv_timeout(DEADLINE)
        .expect("the blocked kevent() was not woken by the trigger");
    let evs = got.expect("kevent");
    assert!(evs.iter().any(|e| e.is(7, EVFILT_USER)), "got {evs:?}");
    assert!(woke.duration_since(sent) < Duration::from_secs(1));
    waiter.join().expect("waiter");
}
