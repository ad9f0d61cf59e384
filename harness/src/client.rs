//! A TCP client for checks: every read and write has a deadline, and every
//! failure says what was sent, what was expected and what arrived.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::failure::{Failure, Result};
use crate::server::Target;
use crate::text::{explain_difference, preview};

/// How long a client waits for any single answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
        // Small messages must go out at once: the checks measure replies,
        // not Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        Ok(Client {
            stream,
            target: target.clone(),
            name: "client".to_string(),
            timeout: DEFAULT_TIMEOUT,
            pending: Vec::new(),
            last_sent: Vec::new(),
            total_sent: 0,
        })
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
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Ok(std::mem::take(&mut self.pending)),
                // A reset after the data is also the end of this connection.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(std::mem::take(&mut self.pending))
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
                    return Err(self.fail(format!(
                        "{} expected the server to close the connection\n{why}\nmeanwhile arrived: {}",
                        self.name,
                        preview(&self.pending)
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
        let rc = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(self.fail(format!(
                "setting SO_LINGER failed: {}",
                io::Error::last_os_error()
            )));
        }
        drop(self);
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
