//! EVFILT_PROC (kqueue(2), FreeBSD `filt_procattach` / `filt_proc` in
//! sys/kern/kern_event.c): `ident` is a process id; with NOTE_EXIT the
//! process's exit is reported once, with `fflags` NOTE_EXIT, `data` its
//! wait status (what waitpid() would return) and EV_EOF, and the knote is
//! then gone (EV_ONESHOT). It works on any process, a child or not; the
//! kqueue does not reap a child, so its parent can still wait for it. A
//! process id that does not exist is ESRCH.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A child that is killed and reaped when dropped, also while panicking.
struct Kid(Child);

impl Kid {
    fn spawn(script: &str) -> Kid {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("sh -c {script:?}: {e}"));
        Kid(child)
    }

    fn pid(&self) -> usize {
        self.0.id() as usize
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What waitpid() reports for a process that called exit(code).
fn exited(code: i64) -> i64 {
    (code & 0xff) << 8
}

/// A child's exit is reported with NOTE_EXIT, EV_EOF and its wait status in
/// `data`; the knote is gone afterwards, and the child can still be reaped
/// by its parent with the same status.
#[test]
fn a_child_exit_is_reported_with_its_wait_status() {
    let mut kid = Kid::spawn("sleep 0.2; exit 7");
    let pid = kid.pid();
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 5)]);
    assert_quiet(&kq, pid, EVFILT_PROC, QUIET, "the child is still running");
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data, ev.udata),
        (NOTE_EXIT, exited(7), 5),
        "the child called exit(7): expected fflags NOTE_EXIT, data {:#x}, udata 5, got {ev:?}",
        exited(7)
    );
    assert!(
        ev.has(EV_EOF) && ev.has(EV_ONESHOT),
        "FreeBSD marks the exit EV_EOF | EV_ONESHOT: got {ev:?}"
    );
    assert_eq!(
        errno_of(&kq, change(pid, EVFILT_PROC, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "the knote is deleted once the exit was delivered"
    );
    let status = kid.0.wait().expect("the parent can still reap the child");
    assert_eq!(status.code(), Some(7), "waitpid() after the event");
}

/// A child killed by a signal: `data` is that wait status (the signal
/// number).
#[test]
fn a_child_killed_by_a_signal_reports_the_signal() {
    let kid = Kid::spawn("exec sleep 30");
    let pid = kid.pid();
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 0)]);
    // SAFETY: kill() of our own child, which is still running (not reaped).
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data),
        (NOTE_EXIT, libc::SIGTERM as i64),
        "killed by SIGTERM: got {ev:?}"
    );
}

/// A child that exited before the knote was added (a zombie) is reported at
/// once.
#[test]
fn a_child_that_already_exited_is_reported_at_once() {
    let kid = Kid::spawn("exit 3");
    let pid = kid.pid();
    // Wait until it is a zombie, without reaping it.
    wait_until_exited(pid);
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 0)]);
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!((ev.fflags, ev.data), (NOTE_EXIT, exited(3)), "got {ev:?}");
}

/// A process that is not our child: its exit is reported too. Here it is a
/// grandchild whose parent never reaps it, so it stays a zombie until the
/// test ends; `data` is its wait status.
#[test]
fn a_non_child_exit_is_reported() {
    // The child forks the target, prints its pid and waits for ever without
    // reaping it.
    let mut parent = Command::new("sh")
        .args(["-c", "sh -c 'sleep 0.2; exit 9' & echo $!; exec sleep 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = parent.stdout.take().expect("piped stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("read the target's pid");
    }
    let parent = Kid(parent);
    let pid: usize = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid {line:?}: {e}"));
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 8)]);
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data, ev.udata),
        (NOTE_EXIT, exited(9), 8),
        "a grandchild called exit(9): got {ev:?}"
    );
    assert!(ev.has(EV_EOF), "got {ev:?}");
    drop(parent);
}

/// A knote without NOTE_EXIT is not reported when the process exits (there
/// is nothing it asked for), and it is gone afterwards.
#[test]
fn an_exit_nobody_asked_for_is_not_reported() {
    let kid = Kid::spawn("sleep 0.1");
    let pid = kid.pid();
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, 0, 0, 0)]);
    assert_quiet(
        &kq,
        pid,
        EVFILT_PROC,
        Duration::from_millis(400),
        "registered without NOTE_EXIT",
    );
    assert_eq!(
        errno_of(&kq, change(pid, EVFILT_PROC, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "the knote went with the process"
    );
}

/// A process id that does not exist is ESRCH.
#[test]
fn a_process_that_does_not_exist_is_esrch() {
    let mut kid = Kid::spawn("exit 0");
    let pid = kid.pid();
    kid.0.wait().expect("reap the child");
    // SAFETY: kill() with signal 0 only checks that the process exists.
    let gone = unsafe { libc::kill(pid as libc::pid_t, 0) } == -1;
    assert!(gone, "pid {pid} was reused already; run the test again");
    let kq = new_kq();
    assert_eq!(
        errno_of(&kq, change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 0)),
        libc::ESRCH,
        "pid {pid} was reaped"
    );
}

/// Two kqueues watching one child both see its exit.
#[test]
fn two_kqueues_both_see_an_exit() {
    let kid = Kid::spawn("sleep 0.1; exit 4");
    let pid = kid.pid();
    let (kq1, kq2) = (new_kq(), new_kq());
    add(&kq1, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 1)]);
    add(&kq2, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 2)]);
    let a = wait_for(&kq1, pid, EVFILT_PROC);
    let b = wait_for(&kq2, pid, EVFILT_PROC);
    assert_eq!((a.data, a.udata), (exited(4), 1), "got {a:?}");
    assert_eq!((b.data, b.udata), (exited(4), 2), "got {b:?}");
}
