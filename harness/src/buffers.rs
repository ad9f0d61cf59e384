//! What the kernel holds on the way from the server to one client, so a
//! check can tell the bytes the *server* holds from those the kernel does,
//! whatever size the kernel's buffers happen to be (they grow with cached
//! TCP metrics, after heavy loopback traffic, or with autotuning).
//!
//! Linux: the client socket's receive queue (SIOCINQ, bytes arrived and not
//! read) plus the server-side socket's send queue (the tx_queue column of
//! /proc/net/tcp or /proc/net/tcp6: bytes written and not yet acknowledged),
//! found by the connection's two addresses. Bytes the server wrote are in
//! one or the other until the client reads them.
//!
//! Elsewhere (macOS, the BSDs have no /proc/net/tcp, and no other way to see
//! another process's socket), [`on_the_way`] answers None, and each check
//! says what it does instead (see [`GUESS`]).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use crate::sys::cvt;
use crate::Client;

/// Where the OS cannot tell, what a check assumes the kernel may hold for
/// one client (client's receive buffer and server's send buffer together):
/// generous, several times what a default FreeBSD or macOS socket pair
/// holds.
pub(crate) const GUESS: usize = 1 << 20;

/// The server's side of one client's connection, as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerSide {
    /// Bytes the server wrote that the client has not acknowledged.
    pub(crate) send_queue: usize,
    /// Still ESTABLISHED: the server has neither closed nor shut it down.
    pub(crate) open: bool,
}

/// Bytes arrived at `client` and not read yet (SIOCINQ, FIONREAD).
pub(crate) fn unread(client: &Client) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into a live local; the fd is the
    // client's own socket.
    cvt(unsafe { libc::ioctl(client.stream().as_raw_fd(), libc::FIONREAD as _, &mut n) }).ok()?;
    usize::try_from(n).ok()
}

/// The server-side socket of `client`'s connection (Linux only).
pub(crate) fn server_side(client: &Client) -> Option<ServerSide> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let server = client.stream().peer_addr().ok()?;
    let peer = client.local_addr();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // f[1] local address, f[2] remote, f[3] state (01 = ESTABLISHED),
        // f[4] tx_queue:rx_queue, all in hex.
        if f.len() <= 4 || parse(f[1])? != server || parse(f[2])? != peer {
            return None;
        }
        let tx = f[4].split(':').next()?;
        Some(ServerSide {
            send_queue: usize::from_str_radix(tx, 16).ok()?,
            open: f[3] == "01",
        })
    })
}

/// What the kernel holds for `client` from the server: unread at the
/// client, plus unacknowledged at the server. None where the OS cannot
/// tell.
pub(crate) fn on_the_way(client: &Client) -> Option<usize> {
    Some(unread(client)? + server_side(client)?.send_queue)
}

/// "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6): each 32-bit
/// word is printed as the kernel holds it, in the machine's byte order.
fn parse(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..ip.len()).step_by(8) {
        let word = u32::from_str_radix(ip.get(i..i + 8)?, 16).ok()?;
        bytes.extend(word.to_ne_bytes());
    }
    let ip: std::net::IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok()?.into(),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
            v6.to_ipv4_mapped().map_or(v6.into(), Into::into)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_addresses() {
        let want: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v4 = format!("{:08X}:1F90", u32::from_ne_bytes([127, 0, 0, 1]));
        assert_eq!(parse(&v4), Some(want));
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        let v6 = format!("000000000000000000000000{one:08X}:1F90");
        assert_eq!(parse(&v6), Some("[::1]:8080".parse().unwrap()));
    }
}
