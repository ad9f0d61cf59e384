//! FreeBSD 14's EVFILT_VNODE notes about the use of a file, not its
//! content (kqueue(2); the VOP_OPEN, VOP_CLOSE and VOP_READ hints in
//! sys/kern/vfs_subr.c): NOTE_OPEN when it is opened, NOTE_CLOSE when a
//! descriptor that could not write closes it, NOTE_CLOSE_WRITE when one
//! that could write does, NOTE_READ when it is read. Each is reported only
//! to a knote that asked for it.
#![cfg(any(target_os = "linux", target_os = "freebsd"))]

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use common::*;

const USE_NOTES: u32 = NOTE_OPEN | NOTE_CLOSE | NOTE_CLOSE_WRITE | NOTE_READ;

/// Opening the file by its name is NOTE_OPEN; closing that read-only
/// descriptor is NOTE_CLOSE.
#[test]
fn open_and_close_of_a_reader_report_note_open_then_note_close() {
    let w = Watched::new("reader", USE_NOTES);
    let other = std::fs::File::open(w.dir.path("f")).expect("open again");
    assert_eq!(w.next("open()"), NOTE_OPEN, "sent open(O_RDONLY)");
    drop(other);
    assert_eq!(w.next("close()"), NOTE_CLOSE, "sent close() of a reader");
}

/// Closing a descriptor that could write is NOTE_CLOSE_WRITE (written or
/// not).
#[test]
fn close_of_a_writer_reports_note_close_write() {
    let w = Watched::new("writer", NOTE_CLOSE | NOTE_CLOSE_WRITE);
    let mut other = std::fs::OpenOptions::new()
        .write(true)
        .open(w.dir.path("f"))
        .expect("open for writing");
    other.write_all(b"x").expect("write");
    drop(other);
    assert_eq!(
        w.next("close()"),
        NOTE_CLOSE_WRITE,
        "sent open(O_WRONLY), write, close()"
    );
}

/// read() of the file, through any descriptor, is NOTE_READ; a knote that
/// did not ask for it hears nothing of reads.
#[test]
fn reading_the_file_reports_note_read_only_to_who_asked() {
    let w = Watched::new("read", NOTE_READ);
    let quiet = Watched::new("read-quiet", NOTE_WRITE);
    let mut buf = [0u8; 4];
    (&w.file).read_exact(&mut buf).expect("read");
    (&quiet.file).read_exact(&mut buf).expect("read");
    assert_eq!(w.next("read()"), NOTE_READ, "sent read() of 4 bytes");
    assert_quiet(
        &quiet.kq,
        quiet.file.as_raw_fd() as usize,
        EVFILT_VNODE,
        QUIET,
        "a NOTE_WRITE knote, the file only read",
    );
}

/// An EV_ENABLE-less modification that adds NOTE_OPEN to a knote asking for
/// NOTE_WRITE starts reporting opens.
#[test]
fn a_modification_can_ask_for_note_open() {
    let w = Watched::new("modify", NOTE_WRITE);
    let fd = w.file.as_raw_fd() as usize;
    add(
        &w.kq,
        &[change(
            fd,
            EVFILT_VNODE,
            EV_ADD,
            NOTE_WRITE | NOTE_OPEN,
            0,
            42,
        )],
    );
    let _other = std::fs::File::open(w.dir.path("f")).expect("open again");
    assert_eq!(
        w.next("open() after the re-add"),
        NOTE_OPEN,
        "sent open(O_RDONLY)"
    );
}
