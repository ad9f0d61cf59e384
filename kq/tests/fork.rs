//! fork() (kqueue(2): "The queue is not inherited by a child created with
//! fork(2)"): in the child the parent's kqueue number names nothing, so
//! kevent() on it is EBADF and cannot take the parent's events; the
//! parent's queue is untouched.
//!
//! One test in its own binary, with a real fork(): the test harness runs
//! tests in threads, and a child forked from a threaded process may only
//! make async-signal-safe calls. The child makes system calls only
//! (kevent() on a number no queue owns any more, fcntl(), write(),
//! _exit()), and reports through a pipe.

mod common;

use std::os::fd::AsRawFd;
use std::time::Instant;

use common::*;

/// What the child saw: kevent()'s result and errno, fcntl(F_GETFD)'s result
/// and errno, on the parent's kqueue number.
fn child_report(kq: i32) -> [i32; 4] {
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let mut out = [kevent_zeroed(); 4];
    let zero = timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `out` holds 4 entries, `zero` is a live timespec.
    let n = unsafe { kq::kevent(kq, std::ptr::null(), 0, out.as_mut_ptr(), 4, &zero) };
    let kevent_errno = if n < 0 { errno() } else { 0 };
    // SAFETY: F_GETFD takes no pointer.
    let f = unsafe { libc::fcntl(kq, libc::F_GETFD) };
    let fcntl_errno = if f < 0 { errno() } else { 0 };
    [n, kevent_errno, f, fcntl_errno]
}

/// A forked child finds the parent's kqueue closed (kevent() and fcntl()
/// are EBADF), so it cannot take the parent's EV_CLEAR event, which the
/// parent still gets afterwards.
#[test]
fn a_forked_child_does_not_inherit_the_kqueue() {
    let kq = new_kq();
    let (r, w) = pipe();
    let fd = r.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 9)]);
    write_fd(w.as_raw_fd(), b"x").expect("write");
    let (report_r, report_w) = pipe();
    let kqfd = kq.as_raw_fd();
    // SAFETY: the child makes only system calls (child_report, write,
    // _exit) before it ends; nothing it touches needs another thread.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let report = child_report(kqfd);
        // SAFETY: `report` is 16 live bytes; _exit ends the child at once.
        unsafe {
            libc::write(report_w.as_raw_fd(), report.as_ptr().cast(), 16);
            libc::_exit(0);
        }
    }
    drop(report_w);
    let got = read_fd_within(report_r.as_raw_fd(), 16);
    reap(pid);
    let report: Vec<i32> = got
        .chunks_exact(4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(
        report,
        [-1, libc::EBADF, -1, libc::EBADF],
        "in the child, kevent() and fcntl(F_GETFD) on the parent's kqueue: \
         expected [-1, EBADF, -1, EBADF], arrived [result, errno, result, errno]"
    );
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        (ev.data, ev.udata),
        (1, 9),
        "the parent's EV_CLEAR event survived the child: got {ev:?}"
    );
}

/// Reads `n` bytes from `fd`, failing after DEADLINE.
fn read_fd_within(fd: i32, n: usize) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n {
        let left = DEADLINE.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "the child reported {got:?} of {n} bytes");
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
        match read_fd(fd, n - got.len()) {
            Ok(b) if b.is_empty() => panic!("the child ended after {got:?} of {n} bytes"),
            Ok(b) => got.extend(b),
            Err(_) => {} // not readable yet
        }
    }
    got
}

/// Waits for the child to end (it exits right after its report), killing
/// it after DEADLINE.
fn reap(pid: libc::pid_t) {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the child ended with status {status:#x}"
            );
            return;
        }
        if start.elapsed() > DEADLINE {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child did not end within {DEADLINE:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
