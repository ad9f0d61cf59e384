//! Step 3 over TCP, what is particular to this step: how much comes back,
//! how many clients, what the server says on stderr (the harness's stages
//! are in `stages.rs`). Each test starts its own server on a free port;
//! the harness kills it when the test ends, also on failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::house;
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

/// A payload of each size comes back exactly, whether it fits in one read
/// (`data` at most 64 KiB) or takes several readable events.
#[rstest]
#[case::one_byte(1)]
#[case::one_packet(1400)]
#[case::sixteen_kib(16 * 1024)]
#[case::one_read_buffer(64 * 1024)]
#[case::one_byte_more_than_a_read(64 * 1024 + 1)]
fn echoes_payloads_of_any_size(#[case] size: usize) -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut client = server.client()?;
    // Every byte value, NUL included, repeated up to `size`. At most about
    // 64 KiB: it fits in the socket buffers, so sending it all before
    // reading cannot stall the (blocking) server.
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    client.send(&payload)?;
    client.expect_bytes(&payload)
}

/// Bytes sent in many small writes come back in order, however the server's
/// reads happen to split them.
#[test]
fn echoes_many_small_writes_in_order() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut client = server.client()?;
    let mut all = Vec::new();
    for i in 0..200 {
        let piece = format!("piece {i};");
        client.send(piece.as_bytes())?;
        all.extend_from_slice(piece.as_bytes());
    }
    client.expect_bytes(&all)
}

/// With `clients` connected at once, each gets back only its own bytes,
/// even when they are read back in the reverse order they were sent.
#[rstest]
#[case::one(1)]
#[case::ten(10)]
#[case::fifty(50)]
fn echoes_each_client_its_own_bytes(#[case] clients: usize) -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut connected = house::clients(&server, clients)?;
    for (i, client) in connected.iter_mut().enumerate() {
        client.send_line(&format!("client {i} of {clients}"))?;
    }
    for (i, client) in connected.iter_mut().enumerate().rev() {
        client.expect_line(&format!("client {i} of {clients}"))?;
    }
    Ok(())
}

/// Clients that leave one after another do not disturb one that stays.
#[test]
fn keeps_serving_a_client_while_others_come_and_go() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut stays = server.client()?;
    for i in 0..20 {
        let mut visitor = server.client()?;
        visitor.send_line(&format!("visitor {i}"))?;
        visitor.expect_line(&format!("visitor {i}"))?;
        visitor.shutdown_write()?;
        visitor.expect_eof()?;
        stays.send_line(&format!("still here after {i}"))?;
        stays.expect_line(&format!("still here after {i}"))?;
    }
    server.assert_running()
}

/// When several connections are already waiting, one listener event reports
/// them all in `data`, the server accepts that many, and registers each:
/// every one of them is echoed.
#[rstest]
#[case::three(3)]
#[case::eight(8)]
fn registers_every_connection_one_event_reports(#[case] waiting: usize) -> harness::Result {
    house::serves_a_batch_of(&STEP, waiting, |i, client| {
        let line = format!("queued client {i}\n");
        send(client, line.as_bytes());
        expect_back(client, line.as_bytes());
    })
    .map(drop)
}

/// stderr narrates the loop with descriptor numbers: the accept (with the
/// peer's address), each echo with `data`, and the EOF that closes the fd.
#[test]
fn logs_accept_echo_and_eof_with_the_fd() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut client = house::connect(server.addr());
    let peer = client.local_addr().expect("local_addr");
    let fd = house::accepted_fd(&server, peer)?;

    send(&mut client, b"ping\n");
    expect_back(&mut client, b"ping\n");
    server.wait_for_stderr(&format!("fd {fd}: data=5, echoed 5 bytes"), DEADLINE)?;

    drop(client);
    server.wait_for_stderr(&format!("fd {fd}: EOF, close({fd})"), DEADLINE)?;
    server.assert_running()
}

/// A descriptor number freed by close() is given to the next client, and
/// the new registration works: the old client's kevent went with close().
#[test]
fn reuses_a_closed_descriptor_number_for_the_next_client() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let first = house::connect(server.addr());
    let fd = house::accepted_fd(&server, first.local_addr().expect("local_addr"))?;
    drop(first);
    server.wait_for_stderr(&format!("fd {fd}: EOF, close({fd})"), DEADLINE)?;

    let mut second = house::connect(server.addr());
    let again = house::accepted_fd(&server, second.local_addr().expect("local_addr"))?;
    assert_eq!(
        again, fd,
        "the first client had fd {fd}, which was closed; the next accept() \
         should get the lowest free number, {fd}, but got {again}"
    );
    send(&mut second, b"same number, new client\n");
    expect_back(&mut second, b"same number, new client\n");
    Ok(())
}

// ---------------------------------------------------------------------------
// Helpers: raw bytes on a plain TcpStream (house::connect gives it
// deadlines on every read and write).
// ---------------------------------------------------------------------------

fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(bytes)
        .unwrap_or_else(|e| panic!("sending {:?}: {e}", String::from_utf8_lossy(bytes)));
}

fn expect_back(stream: &mut TcpStream, sent: &[u8]) {
    let mut back = vec![0u8; sent.len()];
    let mut got = 0;
    while got < back.len() {
        match stream.read(&mut back[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!(
                "sent {:?}, expected it back; after {got} byte(s) ({:?}): {e}",
                String::from_utf8_lossy(sent),
                String::from_utf8_lossy(&back[..got])
            ),
        }
    }
    assert_eq!(
        &back[..got],
        sent,
        "sent {:?}, expected the same bytes back, got {:?}",
        String::from_utf8_lossy(sent),
        String::from_utf8_lossy(&back[..got])
    );
}
