//! The reference servers the kq echo server is compared with, run as
//! `bench serve epoll|tokio PORT` (the bench re-executes itself):
//!
//! - `epoll`: the same event loop as a kqueue echo server, written directly
//!   on epoll: level-triggered, one `read` into a shared 16 KiB buffer per
//!   event, `write` it back; a short write keeps the rest and waits for
//!   EPOLLOUT. This is the floor the translation is measured against.
//! - `tokio`: tokio's echo example on a current-thread runtime (one core,
//!   like the others), a task and a 1 KiB buffer per connection, with errors
//!   ending the connection instead of panicking.
//!
//! Both listen like the steps should: 127.0.0.1, a large backlog (the kernel
//! clamps it to somaxconn), and print `listening on HOST:PORT`.

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use crate::sys::cvt;

pub fn serve(kind: &str, port: u16) -> io::Result<()> {
    let listener = listen(port)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    match kind {
        "epoll" => epoll_echo(listener),
        "tokio" => tokio_echo(listener),
        _ => Err(io::Error::other(format!(
            "unknown reference `{kind}` (epoll or tokio)"
        ))),
    }
}

fn listen(port: u16) -> io::Result<TcpListener> {
    let l = TcpListener::bind(("127.0.0.1", port))?;
    // SAFETY: `l` is a listening socket we own; listen() again only raises
    // the backlog above std's 128.
    cvt(unsafe { libc::listen(l.as_raw_fd(), 65535) })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn epoll_ctl(ep: RawFd, op: i32, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: `ev` is valid for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) }).map(drop)
}

fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and forgets it right after.
    unsafe { libc::close(fd) };
}

fn epoll_echo(listener: TcpListener) -> io::Result<()> {
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let lfd = listener.as_raw_fd();
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN as u32)?;
    // Unsent bytes per descriptor, allocated only while a write is pending;
    // idle connections cost an empty Vec (24 bytes) in this table.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        // SAFETY: `events` has room for its length.
        let n = match cvt(unsafe {
            libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            let flags = ev.events;
            if fd == lfd {
                loop {
                    // SAFETY: null address pointers are allowed by accept4.
                    let c = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if c < 0 {
                        break;
                    }
                    if pending.len() <= c as usize {
                        pending.resize_with(c as usize + 1, Vec::new);
                    }
                    if epoll_ctl(ep, libc::EPOLL_CTL_ADD, c, libc::EPOLLIN as u32).is_err() {
                        close(c);
                    }
                }
                continue;
            }
            let slot = fd as usize;
            if flags & libc::EPOLLOUT as u32 != 0 && !pending[slot].is_empty() {
                // SAFETY: the pending bytes are valid for reading.
                let w =
                    unsafe { libc::write(fd, pending[slot].as_ptr().cast(), pending[slot].len()) };
                if w > 0 {
                    pending[slot].drain(..w as usize);
                }
                if pending[slot].is_empty() {
                    pending[slot] = Vec::new();
                    let _ = epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32);
                }
                continue;
            }
            if !pending[slot].is_empty() {
                continue; // do not read more until the backlog is written
            }
            // SAFETY: `buf` is valid for writing its length.
            let r = match cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }) {
                Ok(0) => None,
                Ok(r) => Some(r as usize),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(_) => None,
            };
            let Some(r) = r else {
                pending[slot] = Vec::new();
                close(fd); // closing removes it from the epoll set
                continue;
            };
            // SAFETY: the first `r` bytes of `buf` were just read.
            let w = unsafe { libc::write(fd, buf.as_ptr().cast(), r) };
            let w = if w < 0 { 0 } else { w as usize };
            if w < r {
                pending[slot].extend_from_slice(&buf[w..r]);
                let _ = epoll_ctl(
                    ep,
                    libc::EPOLL_CTL_MOD,
                    fd,
                    (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                );
            }
        }
    }
}

fn tokio_echo(listener: TcpListener) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 1024];
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
