//! EVFILT_SIGNAL (kqueue(2)): `ident` is the signal number, `data` the
//! number of times it was delivered since the last kevent().
//!
//! How these tests stay out of each other's way: every test uses its own
//! signal and sends it with `raise()`, which directs it at the calling
//! thread only. Linux's signalfd sees a signal only while it is blocked; kq
//! blocks it in the thread that registers it (kq crate docs, item 6), which
//! is the test's thread. As a safety net, every signal used here has a no-op
//! handler, so a signal that somehow is not blocked is lost, failing the
//! test, instead of killing the whole test process.

mod common;

use std::sync::Once;

use common::*;

extern "C" fn ignore(_: libc::c_int) {}

fn install_noop_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGPROF,
            libc::SIGWINCH,
            libc::SIGURG,
            libc::SIGVTALRM,
            rt_signal(),
        ] {
            // SAFETY: a zeroed sigaction with a handler that does nothing
            // (async-signal-safe) and an empty mask.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
            }
        }
    });
}

/// A signal that is queued, not merged, when sent repeatedly: a real-time
/// signal on Linux (standard signals merge while pending, so `data` there
/// counts deliveries to kq; kq crate docs, item 6). The BSDs count every
/// send of any signal.
#[cfg(target_os = "linux")]
fn rt_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}
#[cfg(not(target_os = "linux"))]
fn rt_signal() -> libc::c_int {
    libc::SIGUSR2
}

fn raise(sig: libc::c_int) {
    // SAFETY: raise() sends `sig` to this thread; a handler is installed
    // and kq blocked the signal here.
    let rc = unsafe { libc::raise(sig) };
    assert_eq!(rc, 0, "raise({sig})");
}

/// A registered signal is reported with ident = the signal number and
/// `data` = 1 after one delivery.
#[test]
fn signal_is_reported_under_its_number() {
    install_noop_handlers();
    let kq = new_kq();
    let sig = libc::SIGUSR1;
    add(&kq, &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 5)]);
    assert_quiet(&kq, sig as usize, EVFILT_SIGNAL, QUIET, "not raised yet");
    raise(sig);
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert_eq!((ev.data, ev.udata), (1, 5), "raised once, got {ev:?}");
    assert_quiet(
        &kq,
        sig as usize,
        EVFILT_SIGNAL,
        QUIET,
        "EV_CLEAR is implied: reported once",
    );
    raise(sig);
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert_eq!(ev.data, 1, "raised once more, got {ev:?}");
}

/// `data` counts the deliveries since the last kevent().
#[test]
fn signal_data_counts_deliveries() {
    install_noop_handlers();
    let kq = new_kq();
    let sig = rt_signal();
    add(&kq, &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 0)]);
    for _ in 0..3 {
        raise(sig);
    }
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert_eq!(ev.data, 3, "raised 3 times, got {ev:?}");
}

/// A signal already blocked by the thread works the same (the portable way
/// on Linux: block it first, in every thread that might receive it).
#[test]
fn signal_blocked_beforehand_is_reported() {
    install_noop_handlers();
    let sig = libc::SIGPROF;
    // SAFETY: blocks one signal in this thread only (sigset built in place).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    let kq = new_kq();
    add(&kq, &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 0)]);
    raise(sig);
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert_eq!(ev.data, 1, "got {ev:?}");
    add(
        &kq,
        &[change(sig as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0, 0)],
    );
}

/// After EV_DELETE the signal is no longer reported.
#[test]
fn deleted_signal_is_not_reported() {
    install_noop_handlers();
    let kq = new_kq();
    let sig = libc::SIGALRM;
    add(&kq, &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 0)]);
    add(
        &kq,
        &[change(sig as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0, 0)],
    );
    raise(sig);
    assert_quiet(
        &kq,
        sig as usize,
        EVFILT_SIGNAL,
        QUIET,
        "deleted before the signal",
    );
    assert_eq!(
        errno_of(&kq, change(sig as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0, 0)),
        libc::ENOENT
    );
}

/// A disabled signal knote does not report; enabled again, it reports the
/// next delivery.
#[test]
fn disabled_signal_is_not_reported_until_enabled() {
    install_noop_handlers();
    let kq = new_kq();
    let sig = libc::SIGUSR2;
    add(
        &kq,
        &[change(
            sig as usize,
            EVFILT_SIGNAL,
            EV_ADD | EV_DISABLE,
            0,
            0,
            0,
        )],
    );
    raise(sig);
    assert_quiet(&kq, sig as usize, EVFILT_SIGNAL, QUIET, "knote disabled");
    add(
        &kq,
        &[change(sig as usize, EVFILT_SIGNAL, EV_ENABLE, 0, 0, 0)],
    );
    raise(sig);
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert!(ev.data >= 1, "got {ev:?}");
}

/// Whether `sig` is blocked in this thread.
fn is_blocked(sig: libc::c_int) -> bool {
    // SAFETY: queries this thread's mask into a live sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set),
            0
        );
        libc::sigismember(&set, sig) == 1
    }
}

/// Two kqueues watch one signal; when one deletes its knote, the other
/// still reports the signal, and once the last knote is gone the signal is
/// back to how it was (on Linux kq unblocks it only then).
#[test]
fn deleting_a_signal_in_one_kqueue_leaves_it_to_the_other() {
    install_noop_handlers();
    let sig = libc::SIGWINCH;
    let was_blocked = is_blocked(sig);
    let (kq1, kq2) = two_kqueues_watching(sig);
    add(
        &kq1,
        &[change(sig as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0, 0)],
    );
    raise(sig);
    let ev = wait_for(&kq2, sig as usize, EVFILT_SIGNAL);
    assert_eq!(
        (ev.data, ev.udata),
        (1, 2),
        "kq1 deleted its knote, kq2 still watches: got {ev:?}"
    );
    drop(kq2); // closing a kqueue removes its knotes
    assert_eq!(
        is_blocked(sig),
        was_blocked,
        "after the last knote went, the signal's mask is as before"
    );
    drop(kq1);
}

/// Two kqueues watching one signal both report each delivery (kqueue(2):
/// every knote for the signal records it), and each with its own count.
#[test]
fn one_signal_watched_by_two_kqueues_is_reported_by_both() {
    install_noop_handlers();
    let sig = libc::SIGURG;
    let (kq1, kq2) = two_kqueues_watching(sig);
    raise(sig);
    let first = wait_for(&kq1, sig as usize, EVFILT_SIGNAL);
    let second = wait_for(&kq2, sig as usize, EVFILT_SIGNAL);
    assert_eq!(
        ((first.data, first.udata), (second.data, second.udata)),
        ((1, 1), (1, 2)),
        "raised once with two kqueues watching: kq1 got {first:?}, kq2 got {second:?}"
    );
    raise(sig);
    raise(sig);
    let wait = std::time::Duration::from_millis(200);
    for (name, kq) in [("kq1", &kq1), ("kq2", &kq2)] {
        let total: i64 = wait_all(kq, wait)
            .iter()
            .filter(|e| e.is(sig as usize, EVFILT_SIGNAL))
            .map(|e| e.data)
            .sum();
        // Linux merges a standard signal raised twice before it is read
        // (crate docs, item 6): one or two deliveries, never none.
        assert!(
            (1..=2).contains(&total),
            "raised twice more: {name} counted {total}"
        );
    }
}

/// A kevent() blocked on one kqueue in another thread wakes up and reports
/// a signal that this thread's kqueue read first.
#[test]
fn a_kqueue_waiting_in_another_thread_sees_the_signal_too() {
    install_noop_handlers();
    let sig = libc::SIGVTALRM;
    let (kq1, kq2) = two_kqueues_watching(sig);
    let waiter = std::thread::spawn(move || {
        let mut out = [kevent_zeroed(); 1];
        let n = kq2
            .kevent(&[], &mut out, Some(DEADLINE))
            .expect("kevent() in the waiting thread");
        (n, Ev::from_kevent(&out[0]))
    });
    std::thread::sleep(std::time::Duration::from_millis(50)); // let it block
    raise(sig);
    let ev = wait_for(&kq1, sig as usize, EVFILT_SIGNAL);
    assert_eq!(
        (ev.data, ev.udata),
        (1, 1),
        "this thread's kqueue: got {ev:?}"
    );
    let (n, other) = waiter.join().expect("waiting thread");
    assert_eq!(
        (n, other.ident, other.data, other.udata),
        (1, sig as usize, 1, 2),
        "the kqueue waiting in another thread: got {n} event(s), {other:?}"
    );
}

/// Two kqueues with a knote for `sig` each, udata 1 and 2.
fn two_kqueues_watching(sig: libc::c_int) -> (Kqueue, Kqueue) {
    let (kq1, kq2) = (new_kq(), new_kq());
    add(
        &kq1,
        &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 1)],
    );
    add(
        &kq2,
        &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 2)],
    );
    (kq1, kq2)
}

/// Every event one kqueue reports within `limit`.
fn wait_all(kq: &Kqueue, limit: std::time::Duration) -> Vec<Ev> {
    let start = std::time::Instant::now();
    let mut all = Vec::new();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        all.extend(wait(kq, left));
        if left.is_zero() {
            return all;
        }
    }
}

/// Linux-only documented limitation (kq crate docs, "Signals"): a signal
/// whose default action is to terminate the process (SIGHUP here; no
/// handler installed), registered in a kqueue and raised, does not
/// terminate it: kq blocks the signal so signalfd can see it, and a blocked
/// signal's default action never runs. It is reported instead. On FreeBSD
/// the filter only records the signal and its default action still runs,
/// so the process would end.
#[cfg(target_os = "linux")]
#[test]
fn a_registered_signal_whose_default_is_to_terminate_does_not_on_linux() {
    let kq = new_kq();
    let sig = libc::SIGHUP;
    add(&kq, &[change(sig as usize, EVFILT_SIGNAL, EV_ADD, 0, 0, 0)]);
    raise(sig);
    let ev = wait_for(&kq, sig as usize, EVFILT_SIGNAL);
    assert_eq!(ev.data, 1, "SIGHUP raised once: got {ev:?}");
    add(
        &kq,
        &[change(sig as usize, EVFILT_SIGNAL, EV_DELETE, 0, 0, 0)],
    );
}
