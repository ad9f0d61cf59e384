//! The classic kqueue(2) echo server, written as in C with only the C-shaped
//! layer: `kqueue()`, `EV_SET` (`ev_set`) and `kevent()` with raw pointers
//! and counts. A listener is registered with EVFILT_READ; a READ event on
//! it means `data` connections can be accepted; a READ event on a client
//! means `data` bytes can be read and echoed; EV_EOF means the client left,
//! and close() alone removes its knote. The same code runs unchanged on
//! FreeBSD, macOS and (through kq) Linux.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use kq::*;

const DEADLINE: Duration = Duration::from_secs(5);

/// The server loop: runs until `stop` is set; returns how many clients it
/// saw leave.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> usize {
    let lfd = listener.into_raw_fd();
    // SAFETY: kqueue() has no preconditions.
    let kq = unsafe { kqueue() };
    assert!(kq >= 0, "kqueue(): {}", std::io::Error::last_os_error());

    // EV_SET(&change, listener, EVFILT_READ, EV_ADD, 0, 0, NULL);
    let mut changes = vec![kevent_zeroed(); 1];
    ev_set(
        &mut changes[0],
        lfd as usize,
        EVFILT_READ,
        EV_ADD,
        0,
        0,
        ptr::null_mut(),
    );
    let mut events = [kevent_zeroed(); 8];
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    let mut left = 0;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `changes` and `events` are valid for the counts passed,
        // `tick` is a live timespec.
        let n = unsafe {
            kevent(
                kq,
                changes.as_ptr(),
                changes.len() as libc::c_int,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                &tick,
            )
        };
        assert!(n >= 0, "kevent(): {}", std::io::Error::last_os_error());
        changes.clear();
        for ev in &events[..n as usize] {
            let (fd, flags, data) = ({ ev.ident } as libc::c_int, { ev.flags }, { ev.data });
            assert_eq!(flags & EV_ERROR, 0, "registration failed: errno {data}");
            if fd == lfd {
                // `data` connections are waiting: accept them all.
                for _ in 0..data {
                    // SAFETY: accept on our listener; no address wanted.
                    let c = unsafe { libc::accept(lfd, ptr::null_mut(), ptr::null_mut()) };
                    assert!(c >= 0, "accept(): {}", std::io::Error::last_os_error());
                    let mut ch = kevent_zeroed();
                    ev_set(
                        &mut ch,
                        c as usize,
                        EVFILT_READ,
                        EV_ADD,
                        0,
                        0,
                        ptr::null_mut(),
                    );
                    changes.push(ch);
                }
            } else if flags & EV_EOF != 0 && data == 0 {
                // The client left: close() removes its knote, no EV_DELETE.
                // SAFETY: closing a client descriptor we accepted.
                unsafe { libc::close(fd) };
                left += 1;
            } else {
                let mut buf = vec![0u8; data as usize];
                // SAFETY: `buf` has room for `data` bytes.
                let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                assert!(got >= 0, "read(): {}", std::io::Error::last_os_error());
                // SAFETY: writes the `got` bytes just read.
                let put = unsafe { libc::write(fd, buf.as_ptr().cast(), got as usize) };
                assert_eq!(put, got, "write(): {}", std::io::Error::last_os_error());
            }
        }
    }
    // SAFETY: closing the queue and the listener we own.
    unsafe {
        libc::close(kq);
        libc::close(lfd);
    }
    left
}

fn client(addr: std::net::SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(DEADLINE)).expect("SO_RCVTIMEO");
    c
}

fn echo(c: &mut TcpStream, line: &[u8]) {
    c.write_all(line).expect("send");
    let mut back = vec![0u8; line.len()];
    c.read_exact(&mut back)
        .unwrap_or_else(|e| panic!("sent {line:?}, no echo: {e}"));
    assert_eq!(
        back,
        line,
        "sent {:?}, got back {:?}",
        String::from_utf8_lossy(line),
        String::from_utf8_lossy(&back)
    );
}

/// Two clients are echoed independently; one leaving does not disturb the
/// other; the server sees both leave.
#[test]
fn echo_server_from_the_man_page_echoes_each_client() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    assert!(listener.as_raw_fd() >= 0);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = tx.send(serve(listener, stop));
        })
    };
    // Stops the server even if an assertion below fails.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = Stop(Arc::clone(&stop));

    let mut a = client(addr);
    let mut b = client(addr);
    echo(&mut a, b"hello from a\n");
    echo(&mut b, b"hello from b\n");
    echo(&mut a, b"again\n");
    drop(a);
    echo(&mut b, b"b is still here\n");
    drop(b);
    // Give the server a moment to see both leave, then stop it.
    std::thread::sleep(Duration::from_millis(200));
    drop(guard);
    let left = rx.recv_timeout(DEADLINE).expect("the server did not stop");
    server.join().expect("server panicked");
    assert_eq!(left, 2, "the server should have seen both clients leave");
}
