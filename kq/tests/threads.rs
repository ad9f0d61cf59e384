//! Several threads on one kqueue: concurrent kevent() calls are safe, each
//! event is delivered to exactly one caller, and changes made by one thread
//! while others wait take effect.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;

/// Four threads wait on one queue while a fifth triggers 200 EV_ONESHOT
/// user events: every event is delivered exactly once, to one of them.
#[test]
fn concurrent_waiters_receive_each_oneshot_event_exactly_once() {
    const N: usize = 200;
    let kq = Arc::new(new_kq());
    let changes: Vec<kevent> = (1..=N)
        .map(|i| change(i, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, i))
        .collect();
    add(&kq, &changes);
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (kq, done, tx) = (Arc::clone(&kq), Arc::clone(&done), tx.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    for ev in wait(&kq, Duration::from_millis(20)) {
                        assert!(ev.is(ev.udata, EVFILT_USER), "got {ev:?}");
                        got.push(ev.ident);
                    }
                }
                let _ = tx.send(got);
            })
        })
        .collect();
    drop(tx);
    for chunk in (1..=N).collect::<Vec<_>>().chunks(10) {
        let triggers: Vec<kevent> = chunk
            .iter()
            .map(|&i| change(i, EVFILT_USER, 0, NOTE_TRIGGER, 0, i))
            .collect();
        add(&kq, &triggers);
        std::thread::yield_now();
    }
    // Wait until every trigger was consumed (the queue is then empty).
    let start = Instant::now();
    let mut counts: HashMap<usize, usize> = HashMap::new();
    let mut finished = 0;
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    while finished < 4 {
        let got = rx
            .recv_timeout(DEADLINE.saturating_sub(start.elapsed()))
            .expect("a waiter did not finish in time");
        for id in got {
            *counts.entry(id).or_default() += 1;
        }
        finished += 1;
    }
    for w in waiters {
        w.join().expect("waiter panicked");
    }
    // Anything left (not picked up before `done`) must still be pending once.
    for ev in poll(&kq) {
        *counts.entry(ev.ident).or_default() += 1;
    }
    let missing: Vec<usize> = (1..=N).filter(|i| !counts.contains_key(i)).collect();
    let doubled: Vec<(&usize, &usize)> = counts.iter().filter(|(_, &c)| c != 1).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
}

/// Threads registering and deleting their own knotes concurrently, while
/// another thread waits on the same queue, all succeed.
#[test]
fn concurrent_changes_and_waits_are_safe() {
    let kq = Arc::new(new_kq());
    let stop = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (kq, stop) = (Arc::clone(&kq), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += wait(&kq, Duration::from_millis(5)).len();
            }
            n
        })
    };
    let changers: Vec<_> = (0..3)
        .map(|t| {
            let kq = Arc::clone(&kq);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let id = t * 10_000 + i;
                    let (a, _b) = socketpair();
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
                    for ch in [
                        change(id, EVFILT_USER, EV_ADD, 0, 0, 0),
                        change(id, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0),
                        fd_change(fd, EVFILT_WRITE, EV_ADD),
                        fd_change(fd, EVFILT_READ, EV_ADD),
                        fd_change(fd, EVFILT_WRITE, EV_DELETE),
                        fd_change(fd, EVFILT_READ, EV_DELETE),
                        change(id, EVFILT_USER, EV_DELETE, 0, 0, 0),
                    ] {
                        let r = receipt_of(&kq, ch);
                        assert_eq!(r, 0, "thread {t} change {:?} failed with {r}", show(&[ch]));
                    }
                }
            })
        })
        .collect();
    for c in changers {
        c.join().expect("changer panicked");
    }
    stop.store(true, Ordering::Relaxed);
    waiter.join().expect("waiter panicked");
    assert_no_events(&kq, Duration::ZERO, "every knote was deleted");
}
