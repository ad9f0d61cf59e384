//! Step 3 over TCP: the harness's listen, port, echo and urgent-echo
//! stages, then what is
//! particular to this step (how much comes back, how many clients, what the
//! server says on stderr). Each test starts its own server on a free port;
//! the harness kills it when the test ends, also on failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use harness::checks::{self, Stage};
use harness::Server;
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

fn step3() -> harness::Result<Server> {
    Server::spawn("step3", env!("CARGO_BIN_EXE_step3"), &[])
}

/// The listen stage, one check per case: the server accepts connections on
/// the address it announced, several at once, and clients that vanish
/// before it gets to them do not stop it.
#[rstest]
#[case::accepts_a_connection("accepts_a_connection")]
#[case::accepts_several_connections_at_once("accepts_several_connections_at_once")]
#[case::survives_clients_that_vanish("survives_clients_that_vanish")]
fn passes_listen_check(#[case] check: &str) -> harness::Result {
    let server = step3()?;
    checks::run(Stage::Listen, check, &server.target())
}

/// The port stage: `--port P` is honoured, and `--port 0` gets a free
/// port, so two servers can run at once.
#[rstest]
#[case::listens_on_the_port_it_is_given("listens_on_the_port_it_is_given")]
#[case::gets_a_free_port_for_port_0("gets_a_free_port_for_port_0")]
fn passes_port_check(#[case] check: &str) -> harness::Result {
    let server = Stage::Port.spawn("step3", env!("CARGO_BIN_EXE_step3"), &[])?;
    checks::run(Stage::Port, check, &server.target())
}

/// The echo stage, one check per case: a line, lines in order, 100
/// interleaving clients, 1 MiB and every byte value, half-close, a reset
/// client, 1000 connect/disconnect cycles without leaking descriptors.
#[rstest]
#[case::echoes_a_line("echoes_a_line")]
#[case::echoes_each_line_back_in_order("echoes_each_line_back_in_order")]
#[case::echoes_100_interleaving_clients("echoes_100_interleaving_clients")]
#[case::round_trips_1_mib_while_reading("round_trips_1_mib_while_reading")]
#[case::round_trips_every_byte_value("round_trips_every_byte_value")]
#[case::echoes_the_rest_after_half_close("echoes_the_rest_after_half_close")]
#[case::keeps_serving_after_a_client_resets("keeps_serving_after_a_client_resets")]
#[case::survives_1000_connect_disconnect_cycles_without_leaking(
    "survives_1000_connect_disconnect_cycles_without_leaking"
)]
fn passes_echo_check(#[case] check: &str) -> harness::Result {
    let server = step3()?;
    checks::run(Stage::Echo, check, &server.target())
}

/// The urgent-echo stage: one urgent (MSG_OOB) byte neither stops the
/// echo of what follows nor makes the server spin.
#[rstest]
#[case::echoes_the_bytes_after_an_urgent_byte("echoes_the_bytes_after_an_urgent_byte")]
#[case::stays_idle_after_an_urgent_byte("stays_idle_after_an_urgent_byte")]
fn passes_urgent_echo_check(#[case] check: &str) -> harness::Result {
    let server = step3()?;
    checks::run(Stage::UrgentEcho, check, &server.target())
}

/// The cases above name every check the harness has for the listen, port,
/// echo and urgent-echo stages, so a check added to the harness cannot go
/// untested here.
#[test]
fn runs_every_check_of_its_stages() {
    let ours = [
        "accepts_a_connection",
        "accepts_several_connections_at_once",
        "survives_clients_that_vanish",
        "listens_on_the_port_it_is_given",
        "gets_a_free_port_for_port_0",
        "echoes_a_line",
        "echoes_each_line_back_in_order",
        "echoes_100_interleaving_clients",
        "round_trips_1_mib_while_reading",
        "round_trips_every_byte_value",
        "echoes_the_rest_after_half_close",
        "keeps_serving_after_a_client_resets",
        "survives_1000_connect_disconnect_cycles_without_leaking",
        "echoes_the_bytes_after_an_urgent_byte",
        "stays_idle_after_an_urgent_byte",
    ];
    let missing = checks::not_named(
        &[Stage::Listen, Stage::Port, Stage::Echo, Stage::UrgentEcho],
        &ours,
    );
    assert!(
        missing.is_empty(),
        "the harness has checks step3's tests do not run: {}",
        missing.join("; ")
    );
}

/// A payload of each size comes back exactly, whether it fits in one read
/// (`data` at most 64 KiB) or takes several readable events.
#[rstest]
#[case::one_byte(1)]
#[case::one_packet(1400)]
#[case::sixteen_kib(16 * 1024)]
#[case::one_read_buffer(64 * 1024)]
#[case::one_byte_more_than_a_read(64 * 1024 + 1)]
fn echoes_payloads_of_any_size(#[case] size: usize) -> harness::Result {
    let server = step3()?;
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
    let server = step3()?;
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
    let server = step3()?;
    let mut connected = Vec::new();
    for _ in 0..clients {
        connected.push(server.client()?);
    }
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
    let server = step3()?;
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
    let server = step3()?;
    let mut clients = Vec::new();
    {
        // Freeze the server, queue `waiting` connections in the kernel,
        // then let it run: its next kevent() sees all of them at once.
        let _frozen = server.freeze()?;
        for _ in 0..waiting {
            clients.push(connect(server.addr()));
        }
        server.wait_for_accept_queue(waiting)?;
    }
    server.wait_for_stderr(&format!("data={waiting} connection(s) waiting"), DEADLINE)?;
    for (i, client) in clients.iter_mut().enumerate() {
        let line = format!("queued client {i}\n");
        send(client, line.as_bytes());
        expect_back(client, line.as_bytes());
    }
    // The server's stderr reaches us through a pipe: wait until the
    // accepts of that batch are all in (or the deadline passes).
    let mut stderr = server.stderr();
    harness::checks::settle(DEADLINE, || {
        stderr = server.stderr();
        (accepts_after(&stderr, waiting) >= waiting).then_some(())
    });
    let accepted = accepts_after(&stderr, waiting);
    assert_eq!(
        accepted, waiting,
        "one event said data={waiting}; the server should accept that many before \
         waiting again, but accepted {accepted}:\n{stderr}"
    );
    Ok(())
}

/// stderr narrates the loop with descriptor numbers: the accept (with the
/// peer's address), each echo with `data`, and the EOF that closes the fd.
#[test]
fn logs_accept_echo_and_eof_with_the_fd() -> harness::Result {
    let server = step3()?;
    let mut client = connect(server.addr());
    let peer = client.local_addr().expect("local_addr");
    let fd = accepted_fd(&server, peer)?;

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
    let server = step3()?;
    let first = connect(server.addr());
    let fd = accepted_fd(&server, first.local_addr().expect("local_addr"))?;
    drop(first);
    server.wait_for_stderr(&format!("fd {fd}: EOF, close({fd})"), DEADLINE)?;

    let mut second = connect(server.addr());
    let again = accepted_fd(&server, second.local_addr().expect("local_addr"))?;
    assert_eq!(
        again, fd,
        "the first client had fd {fd}, which was closed; the next accept() \
         should get the lowest free number, {fd}, but got {again}"
    );
    send(&mut second, b"same number, new client\n");
    expect_back(&mut second, b"same number, new client\n");
    Ok(())
}

/// How many `accepted fd` lines follow the line `data=N connection(s)
/// waiting` before the listener is reported again: the accepts that one
/// event led to.
fn accepts_after(stderr: &str, waiting: usize) -> usize {
    let mark = format!("data={waiting} connection(s) waiting");
    stderr
        .lines()
        .skip_while(|l| !l.contains(&mark))
        .skip(1)
        .take_while(|l| !l.contains("connection(s) waiting"))
        .filter(|l| l.contains(": accepted fd "))
        .count()
}

// ---------------------------------------------------------------------------
// Helpers: a plain TcpStream where a test needs its local address (to find
// its line in the server's stderr); every read and write has a deadline.
// ---------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("SO_RCVTIMEO");
    stream
        .set_write_timeout(Some(DEADLINE))
        .expect("SO_SNDTIMEO");
    stream
}

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

/// The fd the server logged for the client whose local address is `peer`
/// (`step3: accepted fd N from PEER`).
fn accepted_fd(server: &Server, peer: SocketAddr) -> harness::Result<i32> {
    let tail = format!(" from {peer}");
    server.wait_for_stderr(&format!("{tail}\n"), DEADLINE)?;
    let stderr = server.stderr();
    let line = stderr
        .lines()
        .find(|l| l.ends_with(&tail))
        .expect("wait_for_stderr found it");
    let fd = line
        .strip_suffix(&tail)
        .and_then(|l| l.rsplit_once("accepted fd "))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("expected 'accepted fd N{tail}', got {line:?}"));
    Ok(fd)
}

/// `--quiet` stops the narration: clients are served and stderr stays
/// empty (the benchmark runs the step this way).
#[test]
fn narrates_nothing_with_quiet() -> harness::Result {
    let server = Server::spawn("step3", env!("CARGO_BIN_EXE_step3"), &["--quiet"])?;
    let mut client = server.client()?;
    client.send_line("shh")?;
    client.expect_line("shh")?;
    drop(client);
    let mut probe = server.client()?;
    probe.send_line("still shh")?;
    probe.expect_line("still shh")?;
    let stderr = server.stderr();
    if stderr.is_empty() {
        Ok(())
    } else {
        Err(server.target().fail(format!(
            "with --quiet stderr should stay empty, but it has:\n{stderr}"
        )))
    }
}
