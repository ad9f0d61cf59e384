//! EVFILT_READ (kqueue(2), FreeBSD `filt_soread`, pipes, vnodes): `data` is
//! the accept-queue length on a listener and the bytes readable elsewhere;
//! EV_EOF on FIN or reset with `fflags` = the socket error, possibly with
//! bytes still readable; regular files are always readable; NOTE_LOWAT.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use rstest::rstest;

/// Waits (up to DEADLINE) until the READ event of `ident` reports `data`
/// == `want`; the connections behind a listener complete asynchronously.
fn wait_for_data(kq: &Kqueue, ident: usize, want: i64) -> Ev {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < DEADLINE {
        for ev in wait(kq, Duration::from_millis(20)) {
            if ev.is(ident, EVFILT_READ) {
                if ev.data == want {
                    return ev;
                }
                last = Some(ev);
            }
        }
    }
    panic!("expected a READ event on {ident} with data {want}, last one was {last:?}");
}

/// On a listening socket `data` is the number of connections waiting to be
/// accepted, and it goes down as they are accepted.
#[test]
fn listener_data_is_the_accept_queue_length() {
    let kq = new_kq();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fd = listener.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "no connection yet");
    let addr = listener.local_addr().expect("addr");
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    wait_for_data(&kq, fd, 3);
    let (_one, _) = listener.accept().expect("accept");
    wait_for_data(&kq, fd, 2);
    drop(clients);
}

/// On a connected stream socket `data` is the number of bytes readable.
#[rstest]
fn stream_data_is_the_bytes_readable(#[values("unix", "tcp")] kind: &str) {
    let kq = new_kq();
    let (mut a, mut b): (Box<dyn ReadWrite>, Box<dyn ReadWrite>) = pair(kind);
    let fd = a.fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "nothing written yet");
    b.write_all(&[7u8; 1000]).expect("write");
    let ev = wait_for_data(&kq, fd, 1000);
    assert!(!ev.has(EV_EOF), "peer is still open, got {ev:?}");
    let mut buf = [0u8; 400];
    a.read_exact(&mut buf).expect("read");
    wait_for_data(&kq, fd, 600);
}

/// A clean FIN sets EV_EOF with `fflags` 0 (no socket error) and `data` 0.
#[rstest]
fn fin_sets_eof_with_no_error(#[values("unix", "tcp")] kind: &str) {
    let kq = new_kq();
    let (a, b) = pair(kind);
    let fd = a.fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    b.shutdown_write();
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert!(ev.has(EV_EOF), "peer shut down its write side, got {ev:?}");
    assert_eq!(ev.fflags, 0, "a clean FIN has no socket error, got {ev:?}");
    assert_eq!(ev.data, 0, "nothing to read, got {ev:?}");
}

/// EOF can arrive with bytes still readable: EV_EOF and `data` = those
/// bytes, and they can still be read.
#[rstest]
fn eof_can_come_with_bytes_still_readable(#[values("unix", "tcp")] kind: &str) {
    let kq = new_kq();
    let (mut a, mut b) = pair(kind);
    let fd = a.fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    b.write_all(b"last words").expect("write");
    drop(b);
    let start = Instant::now();
    let ev = loop {
        let ev = wait_for(&kq, fd, EVFILT_READ);
        if ev.has(EV_EOF) || start.elapsed() > DEADLINE {
            break ev;
        }
    };
    assert!(ev.has(EV_EOF), "peer closed, got {ev:?}");
    assert_eq!(ev.data, 10, "10 bytes still readable, got {ev:?}");
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).expect("read");
    assert_eq!(rest, b"last words");
}

/// A reset sets EV_EOF with `fflags` = ECONNRESET (the socket error).
#[test]
fn reset_sets_eof_with_the_socket_error() {
    let kq = new_kq();
    let (client, server) = tcp_pair();
    let fd = client.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    reset(server);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert!(ev.has(EV_EOF), "peer reset the connection, got {ev:?}");
    assert_eq!(
        ev.fflags,
        libc::ECONNRESET as u32,
        "fflags must be the socket error, got {ev:?}"
    );
    drop(client);
}

/// A reset seen by two kqueues watching one socket gives both EV_EOF with
/// `fflags` = the socket error (the error belongs to the socket, not to
/// whichever queue looked first).
#[test]
fn a_reset_seen_by_two_kqueues_gives_both_the_socket_error() {
    let (kq1, kq2) = (new_kq(), new_kq());
    let (client, server) = tcp_pair();
    let fd = client.as_raw_fd() as usize;
    add(&kq1, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 1)]);
    add(&kq2, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 2)]);
    reset(server);
    let first = wait_for(&kq1, fd, EVFILT_READ);
    let second = wait_for(&kq2, fd, EVFILT_READ);
    for ev in [first, second] {
        assert!(
            ev.has(EV_EOF) && ev.fflags == libc::ECONNRESET as u32,
            "the peer reset the connection: expected EV_EOF with fflags ECONNRESET ({}) in \
             both queues, got {first:?} and {second:?}",
            libc::ECONNRESET
        );
    }
    drop(client);
}

/// Sends `bytes` as urgent (out-of-band) data: the last byte becomes the
/// urgent byte, as with `send(fd, bytes, len, MSG_OOB)` in C.
fn send_urgent(stream: &TcpStream, bytes: &[u8]) {
    // SAFETY: `bytes` is valid for reading bytes.len() bytes.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_OOB,
        )
    };
    assert_eq!(
        n,
        bytes.len() as isize,
        "send(MSG_OOB): {}",
        std::io::Error::last_os_error()
    );
}

/// One urgent byte (MSG_OOB) followed by ordinary bytes: the socket is
/// reported readable with `data` = the ordinary bytes (the urgent byte is
/// out of band), kevent() returns instead of spinning, and read() gets the
/// bytes after the mark.
#[test]
fn an_urgent_byte_does_not_stop_the_ordinary_bytes_after_it() {
    let (mut client, server) = tcp_pair();
    send_urgent(&client, b"!");
    client.write_all(b"hello").expect("write");
    let kq = new_kq();
    let fd = server.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    // kevent() must return: a hang fails the test instead of blocking it.
    let (kq, ev, spent) = within(DEADLINE * 2, "kevent() after an urgent byte", move || {
        let cpu = thread_cpu();
        let ev = wait_for(&kq, fd, EVFILT_READ);
        (kq, ev, thread_cpu() - cpu)
    });
    assert_eq!(
        ev.data, 5,
        "sent 1 urgent byte then \"hello\": expected data 5, got {ev:?}"
    );
    assert!(
        spent < Duration::from_millis(500),
        "kevent() used {spent:?} of CPU to report it"
    );
    let mut server = server;
    let mut buf = [0u8; 16];
    let n = server.read(&mut buf).expect("read");
    assert_eq!(&buf[..n], b"hello", "the bytes after the urgent mark");
    client.write_all(b"more").expect("write");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 4, "later bytes are reported too, got {ev:?}");
}

/// A lone urgent byte is not ordinary data: nothing is reported, and
/// kevent() sleeps until its timeout without spinning; ordinary bytes sent
/// afterwards are reported.
#[test]
fn a_lone_urgent_byte_reports_nothing_and_does_not_spin() {
    let (mut client, server) = tcp_pair();
    let kq = new_kq();
    let fd = server.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    send_urgent(&client, b"#");
    let kq = within(DEADLINE, "kevent() with a lone urgent byte", move || {
        assert_quiet_and_asleep(
            &kq,
            fd,
            EVFILT_READ,
            Duration::from_millis(300),
            "only an urgent byte arrived",
        );
        kq
    });
    client.write_all(b"abc").expect("write");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        ev.data, 3,
        "3 ordinary bytes after the urgent one, got {ev:?}"
    );
    drop(server);
}

/// The error EV_EOF reports in `fflags` stays the socket's: the next
/// read() still fails with ECONNRESET (FreeBSD's filter only looks at
/// `so_error`; on Linux reading SO_ERROR would clear it).
#[test]
fn the_reset_error_in_fflags_is_left_for_the_next_read() {
    let kq = new_kq();
    let (mut client, server) = tcp_pair();
    let fd = client.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    reset(server);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.fflags, libc::ECONNRESET as u32, "got {ev:?}");
    let again = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        again.fflags,
        libc::ECONNRESET as u32,
        "a level knote reports the error again: got {again:?}"
    );
    let mut buf = [0u8; 8];
    let got = client.read(&mut buf);
    assert_eq!(
        got.as_ref().map_err(|e| e.raw_os_error()),
        Err(Some(libc::ECONNRESET)),
        "read() after EV_EOF reported the reset: expected ECONNRESET, got {got:?}"
    );
}

/// A reset after the peer's FIN: the FIN is EV_EOF with no error, the
/// reset then gives `fflags` the error the socket holds, which SO_ERROR
/// then still says (read() returns 0 after a FIN). It is EPIPE on Linux,
/// whose `tcp_reset` says so for a connection in CLOSE_WAIT.
#[test]
fn a_reset_after_a_fin_reports_the_error_so_error_then_says() {
    let kq = new_kq();
    let (client, server) = tcp_pair();
    let fd = client.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    server
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let fin = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        (fin.has(EV_EOF), fin.fflags),
        (true, 0),
        "the FIN: got {fin:?}"
    );
    reset(server);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    let error = getsockopt_int(fd as i32, libc::SOL_SOCKET, libc::SO_ERROR);
    assert!(
        ev.has(EV_EOF) && ev.fflags != 0 && error == ev.fflags as i32,
        "the reset: expected EV_EOF with fflags = the error SO_ERROR then says; \
         got {ev:?}, then SO_ERROR {error}"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        ev.fflags,
        libc::EPIPE as u32,
        "Linux's error for it: got {ev:?}"
    );
    drop(client);
}

/// Pipes: `data` is the bytes in the pipe; EV_EOF when the last writer
/// closes, with the bytes still readable.
#[test]
fn pipe_reports_bytes_then_eof_when_the_writer_closes() {
    let kq = new_kq();
    let (r, w) = pipe();
    let fd = r.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "empty pipe");
    write_fd(w.as_raw_fd(), b"12345").expect("write");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 5, "got {ev:?}");
    assert!(!ev.has(EV_EOF), "writer still open, got {ev:?}");
    drop(w);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert!(
        ev.has(EV_EOF) && ev.data == 5,
        "writer closed with 5 bytes left, got {ev:?}"
    );
    assert_eq!(read_fd(r.as_raw_fd(), 16).expect("read"), b"12345");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert!(ev.has(EV_EOF) && ev.data == 0, "drained, got {ev:?}");
}

/// A regular file is readable while there are bytes between the file offset
/// and the end of the file; `data` is that count, reported again (level)
/// while it stays so.
#[test]
fn regular_file_is_readable_with_bytes_to_end_of_file() {
    let kq = new_kq();
    let path = std::env::temp_dir().join(format!("kq-read-regular-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    std::fs::remove_file(&path).expect("unlink");
    f.write_all(&[0u8; 100]).expect("write");
    f.seek(SeekFrom::Start(30)).expect("seek");
    let fd = f.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 70, "offset 30 of 100 bytes, got {ev:?}");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 70, "level-triggered: reported again, got {ev:?}");
    f.seek(SeekFrom::Start(90)).expect("seek");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 10, "offset 90, got {ev:?}");
}

/// A file holding `contents` in a directory of its own, opened for reading
/// with the offset at its end.
#[cfg(not(target_os = "macos"))]
fn file_at_its_end(tag: &str, contents: &[u8]) -> (TempDir, std::path::PathBuf, std::fs::File) {
    let dir = TempDir::new(tag);
    let path = dir.path("file");
    std::fs::write(&path, contents).expect("write the file");
    let mut f = std::fs::File::open(&path).expect("open the file");
    f.seek(SeekFrom::End(0)).expect("seek to the end");
    (dir, path, f)
}

/// A regular file follows FreeBSD's vnode filter (`filt_vfsread`): `data`
/// is the file size minus the descriptor's offset, and the knote is active
/// only while that is not 0, so a reader at the end of the file gets
/// nothing (no event with `data` 0, no spinning). macOS reports such a file
/// readable with `data` 0; this test is not built there.
#[cfg(not(target_os = "macos"))]
#[test]
fn regular_file_at_its_end_reports_nothing() {
    let (_dir, _path, f) = file_at_its_end("read-at-end", b"0123456789");
    let kq = new_kq();
    let fd = f.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    assert_quiet_and_asleep(
        &kq,
        fd,
        EVFILT_READ,
        Duration::from_millis(200),
        "the offset is at the end of the file",
    );
}

/// NOTE_FILE_POLL (FreeBSD): a file is reported readable even at its end,
/// with `data` 0, as poll(2) would say.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn note_file_poll_reports_a_file_at_its_end() {
    let (_dir, _path, f) = file_at_its_end("read-file-poll", b"abc");
    let kq = new_kq();
    let fd = f.as_raw_fd() as usize;
    add(
        &kq,
        &[change(fd, EVFILT_READ, EV_ADD, NOTE_FILE_POLL, 0, 0)],
    );
    for call in 0..2 {
        let ev = wait_for(&kq, fd, EVFILT_READ);
        assert_eq!(ev.data, 0, "call {call}: at the end, got {ev:?}");
    }
}

/// A reader at the end of a file is woken when another writer appends, with
/// `data` = the bytes appended, in both modes; reading them to the end
/// makes it quiet again (FreeBSD: the vnode's writes run the filter).
#[cfg(not(target_os = "macos"))]
#[rstest]
fn regular_file_fires_again_when_another_writer_appends(#[values(0, EV_CLEAR)] mode: Flags) {
    let (_dir, path, mut reader) = file_at_its_end(&format!("read-append-{mode}"), b"old");
    let kq = new_kq();
    let fd = reader.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD | mode, 0, 0, 9)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "at the end of the file");
    append(&path, b"12345");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        (ev.data, ev.udata),
        (5, 9),
        "another writer appended 5 bytes: got {ev:?}"
    );
    let mut five = [0u8; 5];
    reader.read_exact(&mut five).expect("read the 5 bytes");
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "read to the end again");
    append(&path, b"abc");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 3, "3 more bytes appended: got {ev:?}");
}

/// The knote follows the open file, not its name: after the file is
/// renamed, and after it is unlinked, appends through another descriptor
/// still wake the reader.
#[cfg(not(target_os = "macos"))]
#[test]
fn regular_file_knote_survives_rename_and_unlink() {
    let dir = TempDir::new("read-rename");
    let path = dir.path("a");
    std::fs::write(&path, b"").expect("create the file");
    let reader = std::fs::File::open(&path).expect("open the file");
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open the file for appending");
    let kq = new_kq();
    let fd = reader.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 0)]);
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "empty file");
    std::fs::rename(&path, dir.path("b")).expect("rename");
    writer.write_all(b"xy").expect("append");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 2, "renamed, then 2 bytes appended: got {ev:?}");
    std::fs::remove_file(dir.path("b")).expect("unlink");
    writer.write_all(b"z").expect("append");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 3, "unlinked, then 1 more byte: got {ev:?}");
}

/// /dev/null is always readable with `data` 0 (kq crate docs, item 9).
/// Only built on Linux: on the BSDs what a device reports is up to its
/// driver.
#[cfg(target_os = "linux")]
#[test]
fn dev_null_is_always_readable() {
    let kq = new_kq();
    let f = std::fs::File::open("/dev/null").expect("open /dev/null");
    let fd = f.as_raw_fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 0)]);
    for _ in 0..2 {
        let ev = wait_for(&kq, fd, EVFILT_READ);
        assert_eq!(ev.data, 0, "got {ev:?}");
    }
}

/// NOTE_LOWAT: the knote fires only once `data` reaches the low-water mark
/// given in the registration's `data`; below it, kevent() sleeps (it does
/// not spin on the CPU); once reached the knote is level-triggered as
/// usual; and the socket's own SO_RCVLOWAT is left alone (the mark belongs
/// to the knote).
#[rstest]
fn note_lowat_waits_for_the_low_water_mark(#[values("unix", "tcp")] kind: &str) {
    let kq = new_kq();
    let (mut a, mut b) = pair(kind);
    let fd = a.fd() as usize;
    add(&kq, &[change(fd, EVFILT_READ, EV_ADD, NOTE_LOWAT, 10, 0)]);
    b.write_all(b"12345").expect("write");
    assert_quiet_and_asleep(
        &kq,
        fd,
        EVFILT_READ,
        Duration::from_millis(300),
        "5 bytes < mark 10",
    );
    let rcvlowat = getsockopt_int(a.fd(), libc::SOL_SOCKET, libc::SO_RCVLOWAT);
    assert_eq!(
        rcvlowat, 1,
        "NOTE_LOWAT must not change the socket's SO_RCVLOWAT"
    );
    b.write_all(b"67890").expect("write");
    let ev = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(ev.data, 10, "mark reached, got {ev:?}");
    let again = wait_for(&kq, fd, EVFILT_READ);
    assert_eq!(
        again.data, 10,
        "level-triggered: still 10 unread, got {again:?}"
    );
    let mut five = [0u8; 5];
    a.read_exact(&mut five).expect("read 5");
    assert_quiet(&kq, fd, EVFILT_READ, QUIET, "5 left < mark 10");
}

/// Two kqueues watching one descriptor both see its events.
#[test]
fn two_kqueues_both_see_the_same_descriptor() {
    let (kq1, kq2) = (new_kq(), new_kq());
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd() as usize;
    add(&kq1, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 1)]);
    add(&kq2, &[change(fd, EVFILT_READ, EV_ADD, 0, 0, 2)]);
    send(&mut b, b"x");
    assert_eq!(wait_for(&kq1, fd, EVFILT_READ).udata, 1);
    assert_eq!(wait_for(&kq2, fd, EVFILT_READ).udata, 2);
}

// --- a connected stream of either family --------------------------------------

trait ReadWrite: Read + Write {
    fn fd(&self) -> i32;
    fn shutdown_write(&self);
}

impl ReadWrite for std::os::unix::net::UnixStream {
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
    fn shutdown_write(&self) {
        self.shutdown(Shutdown::Write).expect("shutdown");
    }
}

impl ReadWrite for TcpStream {
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
    fn shutdown_write(&self) {
        self.shutdown(Shutdown::Write).expect("shutdown");
    }
}

fn pair(kind: &str) -> (Box<dyn ReadWrite>, Box<dyn ReadWrite>) {
    match kind {
        "unix" => {
            let (a, b) = socketpair();
            (Box::new(a), Box::new(b))
        }
        _ => {
            let (a, b) = tcp_pair();
            (Box::new(a), Box::new(b))
        }
    }
}

/// A TCP socket registered before connect() reports nothing (no EV_EOF)
/// while unconnected, without spinning, then its data once connected, and
/// EV_EOF only when the peer closes.
#[test]
fn socket_registered_before_connect_reports_only_after_it() {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket() call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket(): {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor we just created and nobody else owns.
    let sock = unsafe { TcpStream::from_raw_fd(fd) };
    let kq = new_kq();
    add(&kq, &[fd_change(fd, EVFILT_READ, EV_ADD)]);
    assert_quiet_and_asleep(
        &kq,
        fd as usize,
        EVFILT_READ,
        Duration::from_millis(200),
        "not connected yet",
    );

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let std::net::SocketAddr::V4(v4) = addr else {
        unreachable!("bound to 127.0.0.1")
    };
    // SAFETY: a zeroed sockaddr_in filled in below.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = v4.port().to_be();
    sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    // SAFETY: `sin` is a live sockaddr_in of the size passed.
    let rc = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect(): {}", std::io::Error::last_os_error());
    let (mut peer, _) = listener.accept().expect("accept");
    peer.write_all(b"hello").expect("write");
    let ev = wait_for(&kq, fd as usize, EVFILT_READ);
    assert_eq!(ev.data, 5, "connected, 5 bytes sent: got {ev:?}");
    assert!(
        !ev.has(EV_EOF),
        "connected and open: expected no EV_EOF, got {ev:?}"
    );
    drop(peer);
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        let ev = wait_for(&kq, fd as usize, EVFILT_READ);
        if ev.has(EV_EOF) {
            assert_eq!(ev.data, 5, "EOF with the 5 bytes still unread: got {ev:?}");
            drop(sock);
            return;
        }
        seen.push(ev);
    }
    panic!("the peer closed: expected EV_EOF, got only {seen:?}");
}
