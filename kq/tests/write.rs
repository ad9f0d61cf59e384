//! EVFILT_WRITE (kqueue(2), FreeBSD `filt_sowrite`, `filt_pipewrite`):
//! `data` is the free space in the send buffer; it fires only while there is
//! room, never on a listening socket, and with EV_EOF once the peer is gone.
//! A READ and a WRITE knote on one descriptor are independent.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use rstest::rstest;

/// A fresh socket's `data` is its free send space: positive and at most
/// SO_SNDBUF; it goes down by at least what is written and not yet read.
#[test]
fn socket_data_is_the_free_send_space() {
    let kq = new_kq();
    let (mut a, _b) = socketpair();
    let fd = a.as_raw_fd();
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let before = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    let sndbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF) as i64;
    assert!(
        before > 0 && before <= sndbuf,
        "free space {before}, SO_SNDBUF {sndbuf}"
    );
    send(&mut a, &[1u8; 1000]);
    let after = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    assert!(
        after <= before - 1000,
        "wrote 1000 unread bytes: free space {before} -> {after}"
    );
}

/// A WRITE knote added to a socket already watched for reading reports the
/// free send space too, and re-adding it after SO_SNDBUF grew reports the
/// larger space (EV_ADD on an existing knote modifies it).
#[test]
fn write_data_follows_the_send_buffer_when_added_or_re_added() {
    let kq = new_kq();
    let (a, _b) = tcp_pair();
    let fd = a.as_raw_fd();
    // Fixed sizes, well under the system maxima, so the kernel's own
    // buffer tuning cannot move them (Linux doubles what is asked).
    let small = set_sndbuf(fd, 8 * 1024);
    add(&kq, &[fd_change(fd, EVFILT_READ, EV_ADD)]);
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let first = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    assert!(
        first > 0 && first <= small,
        "WRITE added after READ: free space {first}, expected 1..={small}"
    );
    let large = set_sndbuf(fd, 64 * 1024);
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let second = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    assert!(
        second > first && second <= large,
        "SO_SNDBUF {small} -> {large}, re-added WRITE: free space {first} -> {second}, expected more, at most {large}"
    );
}

/// Sets SO_SNDBUF and returns what the kernel made of it.
fn set_sndbuf(fd: std::os::fd::RawFd, size: libc::c_int) -> i64 {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size);
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF) as i64
}

/// A pipe's `data` is exactly the free space in the pipe buffer.
#[test]
fn pipe_data_is_the_free_space_in_the_pipe() {
    let kq = new_kq();
    let (_r, w) = pipe();
    let fd = w.as_raw_fd();
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let before = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    assert!(before >= 512, "an empty pipe has room, got {before}");
    assert_eq!(write_fd(fd, &[0u8; 100]).expect("write"), 100);
    let after = wait_for(&kq, fd as usize, EVFILT_WRITE).data;
    assert_eq!(
        after,
        before - 100,
        "wrote 100 bytes into a pipe with {before} free"
    );
}

/// WRITE fires only while there is room: not once the buffer is full, and
/// again once the reader drained it.
#[rstest]
#[case::socketpair("unix")]
#[case::pipe("pipe")]
fn write_fires_only_while_there_is_room(#[case] kind: &str) {
    let kq = new_kq();
    let (wfd, rfd, _keep) = match kind {
        "unix" => {
            let (a, b) = socketpair();
            a.set_nonblocking(true).expect("nonblocking");
            let fds = (a.as_raw_fd(), b.as_raw_fd());
            (fds.0, fds.1, Box::new((a, b)) as Box<dyn std::any::Any>)
        }
        _ => {
            let (r, w) = pipe();
            let fds = (w.as_raw_fd(), r.as_raw_fd());
            (fds.0, fds.1, Box::new((r, w)) as Box<dyn std::any::Any>)
        }
    };
    add(&kq, &[fd_change(wfd, EVFILT_WRITE, EV_ADD)]);
    wait_for(&kq, wfd as usize, EVFILT_WRITE);
    let written = fill(wfd);
    assert!(written > 0);
    assert_quiet(&kq, wfd as usize, EVFILT_WRITE, QUIET, "send buffer full");
    set_nonblocking(rfd);
    let mut drained = 0;
    while drained < written {
        match read_fd(rfd, 65536) {
            Ok(b) => drained += b.len(),
            Err(e) => panic!("draining {written} bytes, got {drained}: {e}"),
        }
    }
    let ev = wait_for(&kq, wfd as usize, EVFILT_WRITE);
    assert!(ev.data > 0, "room again, got {ev:?}");
}

/// A listening socket is never writable.
#[test]
fn write_never_fires_on_a_listening_socket() {
    let kq = new_kq();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fd = listener.as_raw_fd();
    add(
        &kq,
        &[
            fd_change(fd, EVFILT_WRITE, EV_ADD),
            fd_change(fd, EVFILT_READ, EV_ADD),
        ],
    );
    let _client =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    wait_for(&kq, fd as usize, EVFILT_READ); // the listener is live
    assert_quiet(&kq, fd as usize, EVFILT_WRITE, QUIET, "listening socket");
}

/// EV_EOF once the other end is gone: the peer of a socketpair closed, the
/// read end of a pipe closed, or a TCP peer reset.
#[rstest]
#[case::socketpair("unix")]
#[case::pipe("pipe")]
#[case::tcp_reset("tcp")]
fn write_reports_eof_when_the_peer_is_gone(#[case] kind: &str) {
    let kq = new_kq();
    let (fd, keep): (i32, Box<dyn std::any::Any>) = match kind {
        "unix" => {
            let (a, b) = socketpair();
            drop(b);
            (a.as_raw_fd(), Box::new(a))
        }
        "pipe" => {
            // Registered while the reader is there (adding it afterwards
            // is EPIPE: see the next test).
            let (r, w) = pipe();
            add(&kq, &[fd_change(w.as_raw_fd(), EVFILT_WRITE, EV_ADD)]);
            drop(r);
            (w.as_raw_fd(), Box::new(w))
        }
        _ => {
            let (mut client, server) = tcp_pair();
            reset(server);
            // Wait for the reset to arrive before registering.
            let mut buf = [0u8; 1];
            let _ = client.read(&mut buf);
            (client.as_raw_fd(), Box::new(client))
        }
    };
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let ev = wait_for(&kq, fd as usize, EVFILT_WRITE);
    assert!(ev.has(EV_EOF), "{kind}: peer gone, got {ev:?}");
    drop(keep);
}

/// NOTE_LOWAT above the size of the send buffer can never be met: the knote
/// does not fire for room (FreeBSD `filt_sowrite` compares the free space
/// with the mark), kevent() sleeps meanwhile, and the knote still reports
/// EV_EOF when the peer goes.
#[rstest]
#[case::socketpair("unix")]
#[case::tcp("tcp")]
fn note_lowat_above_the_send_buffer_never_fires_for_room(#[case] kind: &str) {
    let kq = new_kq();
    // The peer goes: a socketpair's other end closes, a TCP peer resets
    // (a FIN leaves our side able to send: no EOF for writing).
    let (a, peer_goes): (Box<dyn AsRawFd>, Box<dyn FnOnce()>) = match kind {
        "unix" => {
            let (a, b) = socketpair();
            (Box::new(a), Box::new(move || drop(b)))
        }
        _ => {
            let (a, b) = tcp_pair();
            (Box::new(a), Box::new(move || reset(b)))
        }
    };
    let fd = a.as_raw_fd();
    let sndbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF) as i64;
    let mark = 4 * sndbuf;
    add(
        &kq,
        &[change(
            fd as usize,
            EVFILT_WRITE,
            EV_ADD,
            NOTE_LOWAT,
            mark,
            0,
        )],
    );
    assert_quiet_and_asleep(
        &kq,
        fd as usize,
        EVFILT_WRITE,
        std::time::Duration::from_millis(300),
        &format!("{kind}: mark {mark} > SO_SNDBUF {sndbuf}"),
    );
    peer_goes();
    let ev = wait_for(&kq, fd as usize, EVFILT_WRITE);
    assert!(
        ev.has(EV_EOF),
        "{kind}: the peer is gone: expected EV_EOF, got {ev:?}"
    );
}

/// A WRITE knote for a pipe whose reader is gone is refused with EPIPE
/// (FreeBSD `pipe_kqfilter`); the read end can still be watched.
#[test]
fn write_knote_on_a_pipe_without_reader_is_epipe() {
    let kq = new_kq();
    let (r, w) = pipe();
    drop(r);
    let errno = errno_of(&kq, fd_change(w.as_raw_fd(), EVFILT_WRITE, EV_ADD));
    assert_eq!(
        errno,
        libc::EPIPE,
        "EV_ADD of EVFILT_WRITE on a pipe without reader: expected EPIPE, got {errno}"
    );
    let (r2, w2) = pipe();
    drop(w2);
    add(&kq, &[fd_change(r2.as_raw_fd(), EVFILT_READ, EV_ADD)]);
    let ev = wait_for(&kq, r2.as_raw_fd() as usize, EVFILT_READ);
    assert!(
        ev.has(EV_EOF),
        "the read end sees the writer gone: got {ev:?}"
    );
}

/// READ and WRITE knotes on one descriptor are independent (on Linux they
/// share one epoll registration): deleting or disabling one leaves the
/// other firing, and each comes back on its own.
#[test]
fn read_and_write_knotes_on_one_socket_are_independent() {
    let kq = new_kq();
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd();
    let id = fd as usize;
    send(&mut b, b"x"); // `a` is readable and writable from now on
    add(
        &kq,
        &[
            fd_change(fd, EVFILT_READ, EV_ADD),
            fd_change(fd, EVFILT_WRITE, EV_ADD),
        ],
    );
    let both = |why: &str| {
        let evs = poll(&kq);
        let r = evs.iter().any(|e| e.is(id, EVFILT_READ));
        let w = evs.iter().any(|e| e.is(id, EVFILT_WRITE));
        assert!(evs.len() <= 2, "{why}: {evs:?}");
        (r, w, evs)
    };
    let (r, w, evs) = both("both registered");
    assert!(r && w, "both registered: {evs:?}");

    add(&kq, &[fd_change(fd, EVFILT_READ, EV_DELETE)]);
    let (r, w, evs) = both("READ deleted");
    assert!(!r && w, "READ deleted, WRITE must still fire: {evs:?}");

    add(
        &kq,
        &[
            fd_change(fd, EVFILT_READ, EV_ADD),
            fd_change(fd, EVFILT_WRITE, EV_DISABLE),
        ],
    );
    let (r, w, evs) = both("WRITE disabled");
    assert!(r && !w, "WRITE disabled, READ must still fire: {evs:?}");

    add(
        &kq,
        &[
            fd_change(fd, EVFILT_WRITE, EV_ENABLE),
            fd_change(fd, EVFILT_READ, EV_DISABLE),
        ],
    );
    let (r, w, evs) = both("READ disabled");
    assert!(!r && w, "READ disabled, WRITE must still fire: {evs:?}");

    add(
        &kq,
        &[
            fd_change(fd, EVFILT_READ, EV_ENABLE),
            fd_change(fd, EVFILT_WRITE, EV_DELETE),
        ],
    );
    let (r, w, evs) = both("WRITE deleted");
    assert!(r && !w, "WRITE deleted, READ must still fire: {evs:?}");

    // Different trigger modes on the two knotes: an EV_CLEAR WRITE knote
    // beside a level READ knote; the READ knote stays level-triggered.
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD | EV_CLEAR)]);
    let (r, w, evs) = both("WRITE re-added with EV_CLEAR");
    assert!(r && w, "{evs:?}");
    let (r, w, evs) = both("second call");
    assert!(
        r && !w,
        "READ is level (reported again), WRITE is EV_CLEAR (not): {evs:?}"
    );
}

/// A writer waiting for EVFILT_WRITE is woken whenever the kernel has room,
/// also after the send buffer grew by itself (Linux autotunes TCP buffers;
/// FreeBSD computes the space afresh each time), in both modes.
#[rstest]
fn write_keeps_firing_while_the_send_buffer_grows(#[values(0, EV_CLEAR)] mode: Flags) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::time::{Duration, Instant};

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    // A small segment size keeps the first send buffer small, so that
    // autotuning grows it several times during the test.
    setsockopt_int(
        listener.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_MAXSEG,
        1000,
    );
    let mut reader =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (writer, _) = listener.accept().expect("accept");
    writer.set_nonblocking(true).expect("O_NONBLOCK");
    let fd = writer.as_raw_fd();
    // SAFETY: a second handle on the same socket, used only for writing;
    // ManuallyDrop keeps it from closing the descriptor `writer` owns.
    let mut w = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    let kq = new_kq();
    add(
        &kq,
        &[change(fd as usize, EVFILT_WRITE, EV_ADD | mode, 0, 0, 0)],
    );
    let first_sndbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF);

    reader
        .set_read_timeout(Some(DEADLINE))
        .expect("SO_RCVTIMEO");
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            std::thread::sleep(Duration::from_micros(200));
        }
        total
    });

    let chunk = vec![7u8; 1 << 16];
    let (mut sent, mut waits) = (0usize, 0);
    let mut events = [kevent_zeroed(); 4];
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        match w.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                waits += 1;
                let n = kq
                    .kevent(&[], &mut events, Some(Duration::from_secs(2)))
                    .expect("kevent");
                if n == 0 {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one live pollfd.
                    unsafe { libc::poll(&mut p, 1, 0) };
                    panic!(
                        "mode {mode:#x}: no EVFILT_WRITE within 2 s while the reader drains; poll(2) says writable: {}; SO_SNDBUF {first_sndbuf} at EV_ADD, {} now; {sent} bytes sent",
                        p.revents & libc::POLLOUT != 0,
                        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
                    );
                }
                let ev = Ev::from_kevent(&events[0]);
                assert!(ev.data > 0, "a WRITE event reports room: got {ev:?}");
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    drop(writer); // FIN: the reader ends
    let got = drain.join().expect("reader thread");
    assert_eq!(got, sent, "the reader got what was sent");
    assert!(
        waits > 0,
        "the writer never had to wait: the test proved nothing"
    );
}

/// A datagram socket's error is temporary: after an ICMP "port unreachable"
/// the WRITE knote still reports the socket writable, without EV_EOF, and
/// the error is left for the next send() (FreeBSD `filt_sowrite`).
#[test]
fn datagram_error_is_not_eof_for_writing() {
    use std::net::UdpSocket;
    // A port nobody listens on: bind one, note it, close it.
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", port)).expect("connect");
    let fd = sock.as_raw_fd();
    let kq = new_kq();
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    sock.send(b"anyone?").expect("first send");
    // The ICMP reply arrives asynchronously: wait until the socket has
    // its error (poll reports POLLERR) without reading SO_ERROR.
    let start = std::time::Instant::now();
    loop {
        let mut p = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, 100) };
        if p.revents & libc::POLLERR != 0 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no ICMP error within {DEADLINE:?}"
        );
    }
    let ev = wait_for(&kq, fd as usize, EVFILT_WRITE);
    assert!(
        !ev.has(EV_EOF),
        "a UDP error is temporary: expected no EV_EOF, got {ev:?}"
    );
    let err = sock.send(b"again").expect_err("the error waits for send()");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ECONNREFUSED),
        "the next send() reports the error, got {err}"
    );
}

/// A connect() refused by the peer ends the WRITE knote with EV_EOF and
/// `fflags` = ECONNREFUSED, and the error stays the socket's: SO_ERROR
/// still says ECONNREFUSED afterwards (FreeBSD's filter only looks).
#[test]
fn a_refused_connect_is_eof_and_leaves_the_error_for_so_error() {
    // A port nobody listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let sock = socket_connecting_to(addr);
    let fd = sock.as_raw_fd();
    let kq = new_kq();
    add(&kq, &[fd_change(fd, EVFILT_WRITE, EV_ADD)]);
    let ev = wait_for(&kq, fd as usize, EVFILT_WRITE);
    assert!(
        ev.has(EV_EOF) && ev.fflags == libc::ECONNREFUSED as u32,
        "expected EV_EOF with fflags ECONNREFUSED ({}), got {ev:?}",
        libc::ECONNREFUSED
    );
    assert_eq!(
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR),
        libc::ECONNREFUSED,
        "SO_ERROR after the event"
    );
}

/// A non-blocking TCP socket with connect() to `addr` under way.
fn socket_connecting_to(addr: std::net::SocketAddr) -> OwnedFd {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("an IPv4 address: {addr}")
    };
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: socket() just returned it; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    set_nonblocking(fd);
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = v4.port().to_be();
    sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    // SAFETY: `sin` is a live sockaddr_in, its size passed with it.
    let r = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let e = std::io::Error::last_os_error().raw_os_error();
    assert!(
        r == -1 && e == Some(libc::EINPROGRESS),
        "a non-blocking connect() is under way: expected EINPROGRESS, got {r} and {e:?}"
    );
    sock
}
