//! EVFILT_VNODE (kqueue(2), FreeBSD `filt_vfsvnode` and the VFS calls that
//! feed it in sys/kern/vfs_subr.c): `ident` is an open descriptor of a file
//! or directory; `fflags` on input selects NOTE_DELETE, NOTE_WRITE,
//! NOTE_EXTEND, NOTE_ATTRIB, NOTE_LINK, NOTE_RENAME and NOTE_REVOKE; the
//! event's `fflags` are those of them that happened since the last
//! delivery. The knote watches the file the descriptor holds, not its name:
//! it follows renames, and close() ends it.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::Duration;

use common::*;

/// Every vnode note.
const ALL: u32 =
    NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME | NOTE_REVOKE;

/// Appending to a file is NOTE_WRITE | NOTE_EXTEND; writing inside it
/// without growing it is NOTE_WRITE alone.
#[test]
fn writing_reports_note_write_and_growing_note_extend() {
    let w = Watched::new("write", ALL);
    w.quiet("nothing happened yet");
    append(&w.dir.path("f"), b"abc");
    assert_eq!(
        w.next("appended 3 bytes"),
        NOTE_WRITE | NOTE_EXTEND,
        "appended 3 bytes: expected NOTE_WRITE | NOTE_EXTEND"
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(w.dir.path("f"))
        .expect("open for writing");
    f.write_all_at(b"XY", 0).expect("overwrite 2 bytes");
    assert_eq!(
        w.next("overwrote 2 bytes"),
        NOTE_WRITE,
        "overwrote 2 bytes in place: expected NOTE_WRITE only"
    );
}

/// Only the notes asked for are reported: a knote for NOTE_ATTRIB stays
/// quiet through writes and fires on chmod().
#[test]
fn only_the_notes_asked_for_are_reported() {
    let w = Watched::new("attrib", NOTE_ATTRIB);
    append(&w.dir.path("f"), b"abc");
    w.quiet("a write, but only NOTE_ATTRIB was asked for");
    std::fs::set_permissions(w.dir.path("f"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    assert_eq!(w.next("chmod"), NOTE_ATTRIB);
}

/// A new hard link is NOTE_LINK (the link count changed).
#[test]
fn a_new_hard_link_reports_note_link() {
    let w = Watched::new("link", ALL);
    std::fs::hard_link(w.dir.path("f"), w.dir.path("g")).expect("link");
    assert_eq!(w.next("link()"), NOTE_LINK);
}

/// rename() is NOTE_RENAME, and the knote stays on the file under its new
/// name: a write afterwards is reported.
#[test]
fn rename_reports_note_rename_and_the_knote_follows_the_file() {
    let w = Watched::new("rename", ALL);
    std::fs::rename(w.dir.path("f"), w.dir.path("renamed")).expect("rename");
    assert_eq!(w.next("rename()"), NOTE_RENAME);
    append(&w.dir.path("renamed"), b"!");
    assert_eq!(
        w.next("a write under the new name"),
        NOTE_WRITE | NOTE_EXTEND
    );
}

/// unlink() of the file's name is NOTE_DELETE, although the descriptor
/// keeps the file itself alive.
#[test]
fn unlink_reports_note_delete() {
    let w = Watched::new("unlink", ALL);
    std::fs::remove_file(w.dir.path("f")).expect("unlink");
    assert_eq!(w.next("unlink()"), NOTE_DELETE);
}

/// Notes that happen before the event is collected are merged into one
/// event (EV_CLEAR then starts again from nothing).
#[test]
fn notes_accumulate_until_the_event_is_collected() {
    let w = Watched::new("merge", ALL);
    std::fs::set_permissions(w.dir.path("f"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    append(&w.dir.path("f"), b"abc");
    // Let both reach the queue before it is read.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        w.next("chmod() then a write"),
        NOTE_ATTRIB | NOTE_WRITE | NOTE_EXTEND
    );
    w.quiet("EV_CLEAR: both were reported");
}

/// A chmod() followed by a link() or an unlink(), both before the event is
/// collected, reports both: NOTE_ATTRIB with NOTE_LINK, then NOTE_ATTRIB
/// with NOTE_DELETE (a link alone is NOTE_LINK alone).
#[test]
fn a_chmod_before_a_link_or_an_unlink_is_reported_with_it() {
    let w = Watched::new("chmod-link", ALL);
    let chmod = |mode| {
        std::fs::set_permissions(w.dir.path("f"), std::fs::Permissions::from_mode(mode))
            .expect("chmod")
    };
    chmod(0o600);
    std::fs::hard_link(w.dir.path("f"), w.dir.path("g")).expect("link");
    assert_eq!(
        w.next("chmod() then link()"),
        NOTE_ATTRIB | NOTE_LINK,
        "chmod() then link(): expected NOTE_ATTRIB | NOTE_LINK"
    );
    std::fs::hard_link(w.dir.path("f"), w.dir.path("h")).expect("link");
    assert_eq!(w.next("link() alone"), NOTE_LINK, "link() alone");
    chmod(0o644);
    std::fs::remove_file(w.dir.path("g")).expect("unlink");
    assert_eq!(
        w.next("chmod() then unlink()"),
        NOTE_ATTRIB | NOTE_DELETE,
        "chmod() then unlink(): expected NOTE_ATTRIB | NOTE_DELETE"
    );
}

/// rmdir() of a watched directory that is still open is NOTE_DELETE at
/// once (FreeBSD's VOP_RMDIR), and so is a rename() of another directory
/// over it; the removal of a sibling is not.
#[test]
fn removing_an_open_directory_reports_note_delete() {
    let dir = TempDir::new("vnode-rmdir");
    let watch = |name: &str| {
        std::fs::create_dir(dir.path(name)).expect("mkdir");
        let d = std::fs::File::open(dir.path(name)).expect("open the directory");
        let kq = new_kq();
        let fd = d.as_raw_fd() as usize;
        add(
            &kq,
            &[change(
                fd,
                EVFILT_VNODE,
                EV_ADD | EV_CLEAR,
                NOTE_DELETE,
                0,
                0,
            )],
        );
        (d, kq, fd)
    };
    let (_a, kq_a, a) = watch("a");
    let (_b, kq_b, b) = watch("b");
    std::fs::create_dir(dir.path("sibling")).expect("mkdir");
    std::fs::remove_dir(dir.path("sibling")).expect("rmdir");
    assert_quiet(&kq_a, a, EVFILT_VNODE, QUIET, "a sibling removed");
    std::fs::remove_dir(dir.path("a")).expect("rmdir");
    let ev = wait_for(&kq_a, a, EVFILT_VNODE);
    assert_eq!(ev.fflags, NOTE_DELETE, "rmdir() while open: got {ev:?}");
    std::fs::create_dir(dir.path("c")).expect("mkdir");
    std::fs::rename(dir.path("c"), dir.path("b")).expect("rename over b");
    let ev = wait_for(&kq_b, b, EVFILT_VNODE);
    assert_eq!(
        ev.fflags, NOTE_DELETE,
        "renamed over while open: got {ev:?}"
    );
}

/// Without EV_CLEAR a vnode knote is level-triggered like any other: what
/// happened is reported on every call until the knote is cleared or
/// deleted (FreeBSD keeps `kn_fflags` until then).
#[test]
fn a_level_vnode_knote_keeps_reporting_what_happened() {
    let dir = TempDir::new("vnode-level");
    std::fs::write(dir.path("f"), b"x").expect("write the file");
    let file = std::fs::File::open(dir.path("f")).expect("open the file");
    let fd = file.as_raw_fd() as usize;
    let kq = new_kq();
    add(&kq, &[change(fd, EVFILT_VNODE, EV_ADD, NOTE_ATTRIB, 0, 0)]);
    std::fs::set_permissions(dir.path("f"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for call in 0..2 {
        let ev = wait_for(&kq, fd, EVFILT_VNODE);
        assert_eq!(ev.fflags, NOTE_ATTRIB, "call {call}: got {ev:?}");
    }
    add(&kq, &[change(fd, EVFILT_VNODE, EV_DELETE, 0, 0, 0)]);
    assert_no_events(&kq, QUIET, "deleted");
}

/// A directory: creating or removing an entry is NOTE_WRITE; creating or
/// removing a subdirectory changes the directory's link count too
/// (NOTE_WRITE | NOTE_LINK); renaming an entry inside it is NOTE_WRITE.
#[test]
fn directory_entries_report_note_write_and_subdirectories_note_link() {
    let dir = TempDir::new("vnode-dir");
    let d = std::fs::File::open(&dir.0).expect("open the directory");
    let fd = d.as_raw_fd() as usize;
    let kq = new_kq();
    add(
        &kq,
        &[change(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, ALL, 0, 0)],
    );
    let next = |what: &str| {
        let ev = wait_for(&kq, fd, EVFILT_VNODE);
        assert!(!ev.has(EV_EOF), "{what}: got {ev:?}");
        assert_quiet(&kq, fd, EVFILT_VNODE, QUIET, &format!("{what}: one event"));
        ev.fflags
    };
    std::fs::write(dir.path("entry"), b"").expect("create a file");
    assert_eq!(next("a file created"), NOTE_WRITE);
    std::fs::rename(dir.path("entry"), dir.path("moved")).expect("rename");
    assert_eq!(next("a file renamed inside"), NOTE_WRITE);
    std::fs::remove_file(dir.path("moved")).expect("unlink");
    assert_eq!(next("a file removed"), NOTE_WRITE);
    std::fs::create_dir(dir.path("sub")).expect("mkdir");
    assert_eq!(next("a subdirectory created"), NOTE_WRITE | NOTE_LINK);
    std::fs::remove_dir(dir.path("sub")).expect("rmdir");
    assert_eq!(next("a subdirectory removed"), NOTE_WRITE | NOTE_LINK);
}

/// close() ends a vnode knote: changes to the file after it are never
/// reported, not even once the number is reused by another file.
#[test]
fn close_ends_a_vnode_knote() {
    let dir = TempDir::new("vnode-close");
    std::fs::write(dir.path("f"), b"x").expect("write the file");
    std::fs::write(dir.path("other"), b"y").expect("write the other file");
    let n = 3020;
    let f = move_to(
        OwnedFd::from(std::fs::File::open(dir.path("f")).expect("open")),
        n,
    );
    let kq = new_kq();
    add(
        &kq,
        &[change(
            n as usize,
            EVFILT_VNODE,
            EV_ADD | EV_CLEAR,
            ALL,
            0,
            1,
        )],
    );
    drop(f); // close(n)
    append(&dir.path("f"), b"after close");
    assert_no_events(&kq, QUIET, "the watched descriptor was closed");
    let _other = move_to(
        OwnedFd::from(std::fs::File::open(dir.path("other")).expect("open")),
        n,
    );
    append(&dir.path("f"), b"more");
    append(&dir.path("other"), b"to the new file, never registered");
    assert_no_events(&kq, QUIET, "the number now names a file never registered");
}

/// EVFILT_VNODE needs an open descriptor of a file (EBADF otherwise); a
/// socket or a pipe is not a vnode (EINVAL, as FreeBSD's socket and pipe
/// filters refuse it).
#[test]
fn vnode_knotes_need_a_file_descriptor() {
    let kq = new_kq();
    assert_eq!(
        errno_of(&kq, change(10_002, EVFILT_VNODE, EV_ADD, ALL, 0, 0)),
        libc::EBADF,
        "a descriptor that is not open"
    );
    let (a, _b) = socketpair();
    assert_eq!(
        errno_of(
            &kq,
            change(a.as_raw_fd() as usize, EVFILT_VNODE, EV_ADD, ALL, 0, 0)
        ),
        libc::EINVAL,
        "a socket"
    );
    let (r, _w) = pipe();
    assert_eq!(
        errno_of(
            &kq,
            change(r.as_raw_fd() as usize, EVFILT_VNODE, EV_ADD, ALL, 0, 0)
        ),
        libc::EINVAL,
        "a pipe"
    );
}

/// A READ and a VNODE knote on one file are independent: an append wakes
/// both, each with its own data.
#[test]
fn read_and_vnode_knotes_on_one_file_are_independent() {
    let dir = TempDir::new("vnode-and-read");
    std::fs::write(dir.path("f"), b"abc").expect("write the file");
    let mut f = std::fs::File::open(dir.path("f")).expect("open");
    f.seek(SeekFrom::End(0)).expect("seek");
    let fd = f.as_raw_fd() as usize;
    let kq = new_kq();
    add(
        &kq,
        &[
            change(fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 1),
            change(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE, 0, 2),
        ],
    );
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("f"))
        .expect("open for appending");
    w.write_all(b"12").expect("append");
    let (mut read, mut vnode) = (None, None);
    let start = std::time::Instant::now();
    while (read.is_none() || vnode.is_none()) && start.elapsed() < DEADLINE {
        for ev in wait(&kq, Duration::from_millis(50)) {
            match ev.filter {
                EVFILT_READ => read = Some(ev),
                EVFILT_VNODE => vnode = Some(ev),
                _ => panic!("unexpected {ev:?}"),
            }
        }
    }
    let (Some(read), Some(vnode)) = (read, vnode) else {
        panic!("appended 2 bytes: expected a READ and a VNODE event, got {read:?} and {vnode:?}");
    };
    assert_eq!((read.data, read.udata), (2, 1), "got {read:?}");
    // FreeBSD records a write's whole hint (NOTE_WRITE | NOTE_EXTEND) in a
    // knote that asked for any part of it.
    assert_eq!(
        (vnode.fflags, vnode.udata),
        (NOTE_WRITE | NOTE_EXTEND, 2),
        "got {vnode:?}"
    );
    add(&kq, &[change(fd, EVFILT_VNODE, EV_DELETE, 0, 0, 0)]);
    w.write_all(b"3").expect("append");
    let read = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(read.data, 3, "the READ knote lives on: got {read:?}");
}
