//! A TCP client for checks: every read and write has a deadline, and every
//! failure says what was sent, what was expected and what arrived.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::failure::{Failure, Result};
use crate::server::Target;
use crate::sys::cvt;
use crate::text::{explain_difference, preview};

/// How long a client waits for any single answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The segment size of an Ethernet path (1500 bytes less IP and TCP
/// headers and options).
pub const NETWORK_MSS: usize = 1400;

/// How the server ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// End of file: the server closed (or shut down writing) cleanly.
    Eof,
    /// A reset (ECONNRESET): the server closed with input unread, or
    /// aborted; data it had just written may be lost.
    Reset,
}

/// One connection to the server under test.
pub struct Client {
    stream: TcpStream,
    target: Target,
    name: String,
    timeout: Duration,
    /// Bytes read from the socket but not yet consumed by an `expect_*`.
    pending: Vec<u8>,
    /// The last bytes sent, for failure messages.
    last_sent: Vec<u8>,
    total_sent: usize,
}

impl Client {
    /// Connects to the target (deadline 5 s).
    pub fn connect(target: &Target) -> Result<Client> {
        let addr = target.socket_addr();
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
            target
                .fail(format!("cannot connect to {addr}: {e}"))
                .context(if e.kind() == io::ErrorKind::ConnectionRefused {
                    "is the server running and listening on that address?".to_string()
                } else {
                    format!("connecting to {addr} failed")
                })
        })?;
        Ok(Client::on(stream, target))
    }

    /// A client on a connected socket.
    fn on(stream: TcpStream, target: &Target) -> Client {
        // Small messages must go out at once: the checks measure replies,
        // not Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        Client {
            stream,
            target: target.clone(),
            name: "client".to_string(),
            timeout: DEFAULT_TIMEOUT,
            pending: Vec::new(),
            last_sent: Vec::new(),
            total_sent: 0,
        }
    }

    /// Connects the way a client across a real network would: segments of
    /// at most `NETWORK_MSS` (1400) bytes (TCP_MAXSEG, set before connecting).
    /// Over loopback the segment size is 64 KiB, and Linux sizes a new
    /// connection's send buffer from it: the server's kernel would take
    /// some 3 MiB for a client that never reads before the server's own
    /// writes notice anything; with network-sized segments, about 70 KiB.
    /// Full segments also go out at once, where Nagle's algorithm would
    /// hold a 16 KiB write back for a delayed acknowledgement.
    pub fn connect_like_a_network(target: &Target) -> Result<Client> {
        Client::connect_tuned(target, None)
    }

    /// [`Client::connect_like_a_network`], with a receive buffer of about
    /// `bytes` (SO_RCVBUF, set before connecting so the window the server
    /// sees is small from the start): a client that does not read then
    /// holds little, and the server's writes to it soon find its socket
    /// full.
    pub fn connect_with_receive_buffer(target: &Target, bytes: usize) -> Result<Client> {
        Client::connect_tuned(target, Some(bytes))
    }

    fn connect_tuned(target: &Target, rcvbuf: Option<usize>) -> Result<Client> {
        let addr = target.socket_addr();
        let stream = connect_small(addr, rcvbuf, CONNECT_TIMEOUT).map_err(|e| {
            let buffer = rcvbuf.map_or(String::new(), |b| format!(", a {b}-byte receive buffer"));
            target.fail(format!(
                "cannot connect to {addr} (with {NETWORK_MSS}-byte segments{buffer}): {e}"
            ))
        })?;
        Ok(Client::on(stream, target))
    }

    /// Names the client in failure messages ("user 3").
    pub fn named(mut self, name: impl Into<String>) -> Client {
        self.name = name.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This client's own address (to find it in the server's log).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.stream
            .local_addr()
            .expect("a connected socket has an address")
    }

    /// The server this client talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Bytes that arrived but no `expect_*` has consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// The deadline for each following read or write.
    pub fn set_timeout(&mut self, d: Duration) {
        self.timeout = d;
    }

    /// The underlying socket, for checks that need something unusual.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// A failure about this client, with the server's side attached: what
    /// it had sent comes first, then `message`.
    pub fn fail(&self, message: impl Into<String>) -> Failure {
        let mut lines = Vec::new();
        if self.total_sent == self.last_sent.len() && self.total_sent > 0 {
            lines.push(format!("{} sent {}", self.name, preview(&self.last_sent)));
        } else if self.total_sent > 0 {
            lines.push(format!(
                "{} sent {} bytes in all, ending with {}",
                self.name,
                self.total_sent,
                preview(&self.last_sent)
            ));
        }
        lines.push(message.into());
        Failure::new(lines.join("\n")).with_server(self.target.shared())
    }

    /// Sends all of `bytes` (deadline per write).
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let _ = self.stream.set_write_timeout(Some(self.timeout));
        if let Err(e) = self.stream.write_all(bytes) {
            let why = if is_timeout(&e) {
                format!(
                    "the server stopped reading: {} could not send {} bytes within {} ms",
                    self.name,
                    bytes.len(),
                    self.timeout.as_millis()
                )
            } else {
                format!("{} could not send {}: {e}", self.name, preview(bytes))
            };
            return Err(self.fail(why));
        }
        self.total_sent += bytes.len();
        self.last_sent = bytes[bytes.len().saturating_sub(64)..].to_vec();
        Ok(())
    }

    /// Sends one byte as urgent data: send(MSG_OOB). TCP marks it with the
    /// urgent pointer; a receiver that does not ask for it (recv MSG_OOB)
    /// or set SO_OOBINLINE never sees it in the ordinary stream.
    pub fn send_urgent(&mut self, byte: u8) -> Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: sends one byte from a live local; the fd is our socket.
        let sent = cvt(unsafe {
            libc::send(
                self.stream.as_raw_fd(),
                (&byte as *const u8).cast(),
                1,
                libc::MSG_OOB,
            )
        });
        if let Err(e) = sent {
            return Err(self.fail(format!(
                "{} could not send the urgent byte {}: {e}",
                self.name,
                preview(&[byte])
            )));
        }
        Ok(())
    }

    /// Sends `line` and a newline.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send(&bytes)
    }

    /// Reads once into `pending`, waiting at most until `deadline`.
    /// Ok(false) is end of file.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Explains why the bytes stopped coming while `expected` was awaited.
    fn fail_waiting(&self, expected: &[u8], error: Option<io::Error>) -> Failure {
        let mut lines = vec![format!("{} expected {}", self.name, preview(expected))];
        match error {
            Some(e) if is_timeout(&e) => lines.push(format!(
                "no response within {} ms",
                self.timeout.as_millis()
            )),
            Some(e) => lines.push(format!("the connection failed: {e}")),
            None => lines.push("the server closed the connection".to_string()),
        }
        if self.pending.is_empty() {
            lines.push("nothing arrived".to_string());
        } else {
            lines.extend(explain_difference(expected, &self.pending));
        }
        self.fail(lines.join("\n"))
    }

    /// Expects exactly `expected` as the next bytes from the server, however
    /// the server splits them into writes.
    pub fn expect_bytes(&mut self, expected: &[u8]) -> Result<()> {
        if self.poll_expect(expected, self.timeout)? {
            Ok(())
        } else {
            Err(self.fail_waiting(expected, Some(io::ErrorKind::TimedOut.into())))
        }
    }

    /// Waits up to `wait` for `expected`: Ok(true) once it has all arrived
    /// (it is consumed), Ok(false) if only a correct beginning (or nothing)
    /// arrived in time; a failure if anything else arrived or the
    /// connection ended.
    pub fn poll_expect(&mut self, expected: &[u8], wait: Duration) -> Result<bool> {
        let deadline = Instant::now() + wait;
        loop {
            let have = self.pending.len().min(expected.len());
            if self.pending[..have] != expected[..have] {
                let mut lines = vec![format!("{} expected {}", self.name, preview(expected))];
                lines.extend(explain_difference(expected, &self.pending));
                return Err(self.fail(lines.join("\n")));
            }
            if self.pending.len() >= expected.len() {
                self.pending.drain(..expected.len());
                return Ok(true);
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Err(self.fail_waiting(expected, None)),
                Err(e) if is_timeout(&e) => return Ok(false),
                Err(e) => return Err(self.fail_waiting(expected, Some(e))),
            }
        }
    }

    /// [`Client::expect_bytes`], allowing one `optional` byte before
    /// `expected` (an urgent byte that a server reading inline passes on).
    pub fn expect_bytes_allowing(&mut self, optional: u8, expected: &[u8]) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        while self.pending.is_empty() {
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Err(self.fail_waiting(expected, None)),
                Err(e) => return Err(self.fail_waiting(expected, Some(e))),
            }
        }
        if self.pending[0] == optional && expected.first() != Some(&optional) {
            self.pending.remove(0);
        }
        self.expect_bytes(expected)
    }

    /// Expects `line` followed by a newline as the next bytes.
    pub fn expect_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.expect_bytes(&bytes)
    }

    /// Reads one line, up to and including its newline.
    pub fn read_line(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                return Ok(self.pending.drain(..=i).collect());
            }
            let why = match self.fill(deadline) {
                Ok(true) => continue,
                Ok(false) => "the server closed the connection".to_string(),
                Err(e) if is_timeout(&e) => {
                    format!("no response within {} ms", self.timeout.as_millis())
                }
                Err(e) => format!("the connection failed: {e}"),
            };
            let got = if self.pending.is_empty() {
                "nothing arrived".to_string()
            } else {
                format!("arrived without a newline: {}", preview(&self.pending))
            };
            return Err(self.fail(format!("{} expected a line\n{why}\n{got}", self.name)));
        }
    }

    /// Reads until the server closes the connection and returns everything
    /// that arrived (deadline as for any read).
    pub fn read_to_eof(&mut self) -> Result<Vec<u8>> {
        // A reset after the data is also the end of this connection.
        self.read_until_closed().map(|(bytes, _)| bytes)
    }

    /// Reads until the server ends the connection, and says how it ended:
    /// end of file or a reset. Fails only if it stays open past the
    /// deadline (or fails otherwise).
    pub fn read_until_closed(&mut self) -> Result<(Vec<u8>, Closed)> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Ok((std::mem::take(&mut self.pending), Closed::Eof)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok((std::mem::take(&mut self.pending), Closed::Reset))
                }
                Err(e) => {
                    let why = if is_timeout(&e) {
                        format!(
                            "the server did not close the connection within {} ms",
                            self.timeout.as_millis()
                        )
                    } else {
                        format!("the connection failed: {e}")
                    };
                    let got = if self.pending.is_empty() {
                        "nothing arrived".to_string()
                    } else {
                        format!("meanwhile arrived: {}", preview(&self.pending))
                    };
                    return Err(self.fail(format!(
                        "{} expected the server to close the connection\n{why}\n{got}",
                        self.name
                    )));
                }
            }
        }
    }

    /// Expects the server to close the connection with nothing more sent.
    pub fn expect_eof(&mut self) -> Result<()> {
        let rest = self.read_to_eof()?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!(
                "{} expected the server to close the connection with nothing more sent\nbut first arrived: {}",
                self.name,
                preview(&rest)
            )))
        }
    }

    /// Expects nothing to arrive for `d` (and the connection to stay open).
    pub fn expect_silence(&mut self, d: Duration) -> Result<()> {
        if !self.pending.is_empty() {
            return Err(self.fail(format!(
                "{} expected nothing, but {} had arrived",
                self.name,
                preview(&self.pending)
            )));
        }
        match self.fill(Instant::now() + d) {
            Err(e) if is_timeout(&e) => Ok(()),
            Ok(true) => Err(self.fail(format!(
                "{} expected nothing for {} ms, but {} arrived",
                self.name,
                d.as_millis(),
                preview(&self.pending)
            ))),
            Ok(false) => Err(self.fail(format!(
                "{} expected the connection to stay open, but the server closed it",
                self.name
            ))),
            Err(e) => Err(self.fail(format!("{}: the connection failed: {e}", self.name))),
        }
    }

    /// Whatever arrives within `d` (possibly nothing); Err only on EOF or a
    /// failed connection.
    pub fn read_available(&mut self, d: Duration) -> Result<Vec<u8>> {
        if self.pending.is_empty() {
            match self.fill(Instant::now() + d) {
                Ok(true) => {}
                Err(e) if is_timeout(&e) => {}
                Ok(false) => {
                    return Err(
                        self.fail(format!("{}: the server closed the connection", self.name))
                    )
                }
                Err(e) => {
                    return Err(self.fail(format!("{}: the connection failed: {e}", self.name)))
                }
            }
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Everything that arrives within `d` (or until the server ends the
    /// connection, which is not a failure here: the caller is told how).
    pub fn read_for(&mut self, d: Duration) -> Result<(Vec<u8>, Option<Closed>)> {
        let deadline = Instant::now() + d;
        let ended = loop {
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => break Some(Closed::Eof),
                Err(e) if is_timeout(&e) => break None,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Some(Closed::Reset),
                Err(e) => {
                    return Err(self.fail(format!("{}: the connection failed: {e}", self.name)))
                }
            }
        };
        Ok((std::mem::take(&mut self.pending), ended))
    }

    /// Sends `payload` from a second thread while reading the echo here, so
    /// neither side's buffers fill up: the way to push a large payload
    /// through a server that echoes with blocking writes.
    pub fn round_trip(&mut self, payload: &[u8]) -> Result<()> {
        let mut writer = self
            .stream
            .try_clone()
            .map_err(|e| self.fail(format!("cannot clone the socket: {e}")))?;
        let _ = writer.set_write_timeout(Some(self.timeout));
        let data = payload.to_vec();
        let sender = std::thread::spawn(move || writer.write_all(&data));
        let read = self.expect_bytes(payload);
        let sent = sender.join().expect("sender thread");
        if let Err(e) = sent {
            if read.is_ok() {
                return Err(self.fail(format!("sending failed after the echo: {e}")));
            }
        } else {
            self.total_sent += payload.len();
            self.last_sent = payload[payload.len().saturating_sub(64)..].to_vec();
        }
        read
    }

    /// Half-close: shutdown(SHUT_WR). The server reads EOF but can still
    /// write to us.
    pub fn shutdown_write(&mut self) -> Result<()> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| self.fail(format!("{}: shutdown(SHUT_WR) failed: {e}", self.name)))
    }

    /// Closes with SO_LINGER 0, so the server sees a reset (RST), not a FIN.
    pub fn reset(self) -> Result<()> {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: passes a live linger struct and its exact size.
        let set = cvt(unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        });
        if let Err(e) = set {
            return Err(self.fail(format!("setting SO_LINGER failed: {e}")));
        }
        drop(self);
        Ok(())
    }
}

/// A TCP connection whose TCP_MAXSEG (and SO_RCVBUF, if given) are set
/// before connect(), so the segment size and window it advertises hold
/// from the first segment on. Non-blocking connect and poll() give it a
/// deadline.
fn connect_small(
    addr: SocketAddr,
    rcvbuf: Option<usize>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket() takes no pointers.
    let fd = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) })?;
    // SAFETY: `fd` is a new socket that nothing else owns; the TcpStream
    // closes it on every path from here on.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, NETWORK_MSS)?;
    if let Some(bytes) = rcvbuf {
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes)?;
    }
    // SAFETY: F_SETFD on our own descriptor: not inherited by servers the
    // harness starts later.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    stream.set_nonblocking(true)?;
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for `addr`'s family.
    let connected =
        cvt(unsafe { libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len) });
    if let Err(e) = connected {
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one live pollfd.
        let n = cvt(unsafe { libc::poll(&mut pfd, 1, ms) })?;
        if n == 0 {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// setsockopt() of an int option.
fn set_int(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: passes a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `addr` as the sockaddr connect() takes.
fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than, and aligned for,
            // sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
