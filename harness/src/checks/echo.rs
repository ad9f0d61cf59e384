//! echo: whatever a client sends comes back, exactly.

use std::time::Duration;

use super::{expect_calm, expect_fds_back, payload, CALM_ADVICE};
use crate::{Client, Result, Target};

super::declare! { $ CHECKS for Echo, tests echo:
    echoes_a_line: "a line sent comes back", [];
    echoes_each_line_back_in_order: "several lines on one connection come back in order", [];
    echoes_100_interleaving_clients: "100 connected clients taking turns each get their own bytes back", [];
    round_trips_1_mib_while_reading: "1 MiB of binary data comes back exactly while the client reads as it sends", [];
    round_trips_every_byte_value: "all 256 byte values, NUL and CR included, with no newline at the end", [];
    echoes_the_rest_after_half_close: "after shutdown(SHUT_WR) the last bytes still come back, then EOF", [Pause];
    keeps_serving_after_a_client_resets: "a client that resets mid-stream does not disturb the others", [];
    stays_calm_while_clients_are_connected: "3 clients connected, each echoed once, then silent for 1 s: the server uses next to no CPU", [CpuTime];
    survives_1000_connect_disconnect_cycles_without_leaking: "1000 clients come and go; the server's open descriptors end where they started", [FdCount];
}

/// Three clients, each echoed once (so the server has accepted and read
/// them), then silence: the server must sleep in its event wait.
pub fn stays_calm_while_clients_are_connected(target: &Target) -> Result<()> {
    let mut clients = Vec::new();
    for i in 1..=3 {
        let mut c = Client::connect(target)?.named(format!("client {i}"));
        c.send_line(&format!("hello from client {i}"))?;
        c.expect_line(&format!("hello from client {i}"))?;
        clients.push(c);
    }
    expect_calm(
        target,
        Duration::from_secs(1),
        "with 3 clients connected and silent",
        CALM_ADVICE,
    )?;
    clients[0].send_line("still there?")?;
    clients[0].expect_line("still there?")
}

/// One line, one echo.
pub fn echoes_a_line(target: &Target) -> Result<()> {
    let mut c = Client::connect(target)?;
    c.send_line("hello")?;
    c.expect_line("hello")
}

/// Lines sent one after another come back in the same order.
pub fn echoes_each_line_back_in_order(target: &Target) -> Result<()> {
    let mut c = Client::connect(target)?;
    for i in 1..=5 {
        let line = format!("line {i} of 5");
        c.send_line(&line)?;
        c.expect_line(&line)?;
    }
    // And several at once, in one write.
    c.send(b"a\nb\nc\n")?;
    c.expect_bytes(b"a\nb\nc\n")
}

/// 100 clients, all connected, take turns: the server must keep each
/// client's bytes apart.
pub fn echoes_100_interleaving_clients(target: &Target) -> Result<()> {
    let mut clients = (0..100)
        .map(|i| Ok(Client::connect(target)?.named(format!("client {i}"))))
        .collect::<Result<Vec<_>>>()?;
    for round in 0..3 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send_line(&format!("client {i} round {round}"))?;
        }
        for (i, c) in clients.iter_mut().enumerate() {
            c.expect_line(&format!("client {i} round {round}"))?;
        }
    }
    Ok(())
}

/// 1 MiB in, 1 MiB out. The client reads while it sends: a server that
/// echoes with blocking writes would otherwise wait on us forever.
pub fn round_trips_1_mib_while_reading(target: &Target) -> Result<()> {
    let mut c = Client::connect(target)?;
    c.set_timeout(Duration::from_secs(20));
    c.round_trip(&payload(1 << 20, 1))
}

/// Every byte value survives: nothing is treated as text.
pub fn round_trips_every_byte_value(target: &Target) -> Result<()> {
    let mut c = Client::connect(target)?;
    let all: Vec<u8> = (0..=255u8).rev().collect();
    c.send(&all)?;
    c.expect_bytes(&all)
}

/// shutdown(SHUT_WR) right after the last bytes: the server sees them and
/// EOF, echoes the bytes, then closes.
///
/// One client alone is not enough to catch a server that drops a client on
/// EV_EOF without reading what came with it: its bytes and its FIN are two
/// segments, and a server that wakes between them sees the bytes alone. So
/// several clients say their last words and half-close in one burst: while
/// the server handles the first, the others' bytes and FINs both arrive,
/// and it finds them together, in one event.
pub fn echoes_the_rest_after_half_close(target: &Target) -> Result<()> {
    const CLIENTS: usize = 8;
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut c = Client::connect(target)?.named(format!("client {i}"));
        // Echoed once first: the server has accepted and registered it.
        c.send_line(&format!("first {i}"))?;
        c.expect_line(&format!("first {i}"))?;
        clients.push(c);
    }
    {
        // With the server stopped, each client's last words and its FIN are
        // both waiting when it next looks: a server that takes EV_EOF alone
        // for a client that is gone drops every one of them, on every run.
        // (Without the pid, the burst makes that likely, not certain.)
        let _frozen = match target.pid() {
            Some(_) => Some(target.stop(
                "stops the server while the clients say their last words and shut down writing",
            )?),
            None => None,
        };
        for (i, c) in clients.iter_mut().enumerate() {
            c.send_line(&format!("last words {i}"))?;
            c.shutdown_write()?;
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.expect_line(&format!("last words {i}"))?;
        c.expect_eof()?;
    }
    Ok(())
}

/// One client sends a lot, never reads, and resets; another client is
/// served before, during and after.
pub fn keeps_serving_after_a_client_resets(target: &Target) -> Result<()> {
    let mut other = Client::connect(target)?.named("client B");
    other.send_line("before")?;
    other.expect_line("before")?;
    let mut rude = Client::connect(target)?.named("client A");
    rude.send(&payload(64 * 1024, 2))?;
    std::thread::sleep(Duration::from_millis(50));
    rude.reset()?;
    other.send_line("after")?;
    other.expect_line("after")?;
    let mut late = Client::connect(target)?.named("client C");
    late.send_line("newcomer")?;
    late.expect_line("newcomer")
}

/// 1000 connect/disconnect cycles, half of them echoing a byte first; the
/// server must close every one of them.
pub fn survives_1000_connect_disconnect_cycles_without_leaking(target: &Target) -> Result<()> {
    // Warm up: the first connection may make the server allocate.
    let mut probe = Client::connect(target)?.named("probe");
    probe.send_line("warm")?;
    probe.expect_line("warm")?;
    drop(probe);
    std::thread::sleep(Duration::from_millis(100));
    let baseline = target.open_fds();
    for i in 0..1000 {
        let mut c = Client::connect(target)?.named(format!("client {i}"));
        if i % 2 == 0 {
            c.send(b"x")?;
            c.expect_bytes(b"x")?;
        }
    }
    expect_fds_back(target, baseline, "1000 clients came and went")?;
    let mut c = Client::connect(target)?.named("client after the cycles");
    c.send_line("still here")?;
    c.expect_line("still here")
}
