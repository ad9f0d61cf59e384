//! What happens to a knote while it is disabled is kept and reported when
//! it is enabled again, even by an EV_ENABLE whose `fflags` are 0
//! (kqueue(2), FreeBSD `kqueue_register` and the filters' `f_event`): a
//! filter records an event in the knote (`kn_fflags`, `kn_data`) when it
//! happens, judged by the notes asked for at that time, and EV_ENABLE only
//! lets the knote be returned.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

use common::*;

/// A child that is killed and reaped when dropped, also while panicking.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that exits while its NOTE_EXIT knote is disabled is reported
/// when `EV_SET(pid, EVFILT_PROC, EV_ENABLE, 0, 0, NULL)` enables it:
/// NOTE_EXIT, its wait status, EV_EOF; then the knote is gone.
#[test]
fn reports_exit_on_enable_after_disabled_exit() {
    let mut kid = Kid(Command::new("sh")
        .args(["-c", "read _; exit 5"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh"));
    let pid = kid.0.id() as usize;
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 9)]);
    add(
        &kq,
        &[change(pid, EVFILT_PROC, EV_DISABLE, NOTE_EXIT, 0, 9)],
    );
    drop(kid.0.stdin.take()); // EOF: the child's read returns and it exits
    wait_until_exited(pid);
    assert_quiet(&kq, pid, EVFILT_PROC, QUIET, "the knote is disabled");
    add(&kq, &[change(pid, EVFILT_PROC, EV_ENABLE, 0, 0, 0)]);
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data, ev.has(EV_EOF)),
        (NOTE_EXIT, 5 << 8, true),
        "exit(5) while disabled, then EV_ENABLE with fflags 0: arrived {ev:?}"
    );
    assert_eq!(
        errno_of(&kq, change(pid, EVFILT_PROC, EV_DELETE, 0, 0, 0)),
        libc::ENOENT,
        "the knote is gone once the exit was delivered"
    );
}

/// The same when the exit happens before a changelist disables the knote
/// and nothing has collected it yet: the exit was recorded with the notes
/// in force when it happened, so enabling with fflags 0 reports it.
#[test]
fn reports_exit_on_enable_after_exit_before_disable() {
    let mut kid = Kid(Command::new("sh")
        .args(["-c", "read _; exit 6"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh"));
    let pid = kid.0.id() as usize;
    let kq = new_kq();
    add(&kq, &[change(pid, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, 0)]);
    drop(kid.0.stdin.take());
    wait_until_exited(pid);
    add(&kq, &[change(pid, EVFILT_PROC, EV_DISABLE, 0, 0, 0)]);
    assert_quiet(&kq, pid, EVFILT_PROC, QUIET, "the knote is disabled");
    add(&kq, &[change(pid, EVFILT_PROC, EV_ENABLE, 0, 0, 0)]);
    let ev = wait_for(&kq, pid, EVFILT_PROC);
    assert_eq!(
        (ev.fflags, ev.data),
        (NOTE_EXIT, 6 << 8),
        "exit(6), EV_DISABLE and EV_ENABLE with fflags 0: arrived {ev:?}"
    );
}

/// A write to a file while its vnode knote (NOTE_WRITE) is disabled is
/// reported as NOTE_WRITE when an EV_ENABLE with fflags 0 enables it,
/// although no kevent() call looked at the queue in between.
#[test]
fn reports_vnode_write_on_enable_after_disabled_write() {
    let dir = TempDir::new("enable-vnode");
    let path = dir.path("f");
    std::fs::write(&path, b"0123456789").expect("write the file");
    let file = std::fs::File::open(&path).expect("open the file");
    let fd = file.as_raw_fd() as usize;
    let kq = new_kq();
    add(
        &kq,
        &[change(
            fd,
            EVFILT_VNODE,
            EV_ADD | EV_CLEAR | EV_DISABLE,
            NOTE_WRITE,
            0,
            4,
        )],
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"abc"))
        .expect("write inside the file");
    add(&kq, &[change(fd, EVFILT_VNODE, EV_ENABLE, 0, 0, 4)]);
    let ev = wait_for(&kq, fd, EVFILT_VNODE);
    assert_eq!(
        (ev.fflags, ev.udata),
        (NOTE_WRITE, 4),
        "a write while disabled, then EV_ENABLE with fflags 0: arrived {ev:?}"
    );
}
