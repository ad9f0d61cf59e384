//! The knote lifecycle that step 4 teaches, straight from kq: what
//! EV_DELETE and close() each do, in either order, and twice. These are
//! kqueue(2) rules; they hold on FreeBSD, macOS and (through kq) Linux.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::ptr;
use std::time::Duration;

use kq::{ev_set, kevent, kevent_zeroed, Kqueue, EVFILT_READ, EV_ADD, EV_DELETE};

fn change(fd: i32, flags: kq::Flags) -> kevent {
    let mut ev = kevent_zeroed();
    ev_set(
        &mut ev,
        fd as usize,
        EVFILT_READ,
        flags,
        0,
        0,
        ptr::null_mut(),
    );
    ev
}

fn apply(kq: &Kqueue, fd: i32, flags: kq::Flags) -> io::Result<usize> {
    kq.kevent(&[change(fd, flags)], &mut [], None)
}

fn errno(r: io::Result<usize>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// A connected socket pair: the server side's descriptor, and the client.
fn connection() -> (i32, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (server, _) = l.accept().expect("accept");
    (server.into_raw_fd(), client)
}

/// Moves descriptor `fd` to number `to` (dup2, then close the original).
fn move_to(fd: i32, to: i32) -> i32 {
    // SAFETY: dup2 onto a number only this test uses; `fd` is ours.
    let rc = unsafe { libc::dup2(fd, to) };
    assert_eq!(rc, to, "dup2: {}", io::Error::last_os_error());
    close(fd);
    to
}

fn close(fd: i32) {
    // SAFETY: closes a descriptor this test owns and does not use again.
    unsafe { libc::close(fd) };
}

/// EV_DELETE, then close(): both succeed; the order chatserv.c uses.
#[test]
fn ev_delete_then_close_succeeds() {
    let kq = Kqueue::new().expect("kqueue");
    let (fd, _client) = connection();
    apply(&kq, fd, EV_ADD).expect("EV_ADD");
    assert_eq!(apply(&kq, fd, EV_DELETE).ok(), Some(0), "EV_DELETE");
    close(fd);
}

/// Removing the same knote twice: the second EV_DELETE finds nothing
/// (ENOENT).
#[test]
fn deleting_twice_gives_enoent() {
    let kq = Kqueue::new().expect("kqueue");
    let (fd, _client) = connection();
    apply(&kq, fd, EV_ADD).expect("EV_ADD");
    apply(&kq, fd, EV_DELETE).expect("first EV_DELETE");
    assert_eq!(
        errno(apply(&kq, fd, EV_DELETE)),
        Some(libc::ENOENT),
        "a second EV_DELETE of the same knote"
    );
    close(fd);
}

/// close() alone removes the knote: data arriving later is never reported.
#[test]
fn close_alone_removes_the_knote() {
    let kq = Kqueue::new().expect("kqueue");
    let (fd, mut client) = connection();
    apply(&kq, fd, EV_ADD).expect("EV_ADD");
    close(fd);
    use std::io::Write;
    let _ = client.write_all(b"anyone?");
    let mut events = [kevent_zeroed(); 4];
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_millis(100)))
        .expect("kevent");
    assert_eq!(
        n,
        0,
        "a closed descriptor's knote fired: {:?}",
        &events[..n]
    );
}

/// The wrong order: close(), then EV_DELETE: the number names nothing, so
/// EBADF.
#[test]
fn ev_delete_after_close_gives_ebadf() {
    let kq = Kqueue::new().expect("kqueue");
    let (fd, _client) = connection();
    apply(&kq, fd, EV_ADD).expect("EV_ADD");
    close(fd);
    assert_eq!(errno(apply(&kq, fd, EV_DELETE)), Some(libc::EBADF));
}

/// The wrong order once the number is reused: EV_DELETE names the new
/// file, which has no knote: ENOENT. The old knote is gone regardless.
#[test]
fn ev_delete_after_the_number_is_reused_gives_enoent() {
    // A server's accept() would hand the closed number to the next client;
    // tests run in parallel threads, so make the reuse certain with dup2()
    // onto a number no other test uses.
    const NUMBER: i32 = 950;
    let kq = Kqueue::new().expect("kqueue");
    let (first, _client) = connection();
    let fd = move_to(first, NUMBER);
    apply(&kq, fd, EV_ADD).expect("EV_ADD");
    close(fd);
    let (second, _other) = connection();
    let reused = move_to(second, NUMBER);
    assert_eq!(errno(apply(&kq, reused, EV_DELETE)), Some(libc::ENOENT));
    close(reused);
}

/// Closing twice: the second close() fails with EBADF, which is why a
/// server must forget a descriptor the moment it closes it.
#[test]
fn closing_twice_gives_ebadf() {
    let (fd, client) = connection();
    close(fd);
    // SAFETY: closing a number we no longer own; that is the point.
    let rc = unsafe { libc::close(fd) };
    let err = io::Error::last_os_error();
    assert_eq!((rc, err.raw_os_error()), (-1, Some(libc::EBADF)));
    drop(client);
}
