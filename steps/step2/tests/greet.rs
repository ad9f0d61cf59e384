//! Step 2 over TCP, what is particular to this step: one listener event
//! reports every waiting connection in `data`, and the greeting names the
//! client's descriptor (the harness's stages are in `stages.rs`).
//! Each test starts its own server on a free port; the harness kills it
//! when the test ends, also on failure.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use harness::house;
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

/// The greeting's start, `hello from step2, you are fd `.
fn hello() -> String {
    format!("hello from {}, you are fd ", STEP.name)
}

/// 1, 5 or 20 clients connected at the same time each get the greeting
/// line and then end of file, whatever order they read in.
#[rstest]
fn greets_every_client_connected_at_once(#[values(1, 5, 20)] clients: usize) -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut connected = house::clients(&server, clients)?;
    for client in connected.iter_mut().rev() {
        let line = client.read_line()?;
        assert!(
            line.starts_with(hello().as_bytes()) && line.ends_with(b"\n"),
            "expected the line '{}N\\n', got {:?}",
            hello(),
            String::from_utf8_lossy(&line)
        );
        client.expect_eof()?;
    }
    server.assert_running()
}

/// Clients that connect one after another are each greeted and closed; the
/// freed descriptor number is reused, so each is told the same fd.
#[rstest]
#[case::three(3)]
#[case::thirty(30)]
fn greets_clients_one_after_another(#[case] clients: usize) -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut first = None;
    for i in 0..clients {
        let mut stream = house::connect(server.addr());
        let greeting = read_to_eof(&mut stream);
        let fd = greeting
            .strip_prefix(&hello())
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or_else(|| panic!("client {i}: expected '{}N\\n', got {greeting:?}", hello()));
        let first = *first.get_or_insert(fd);
        assert_eq!(
            fd, first,
            "client {i} was told fd {fd}, the first client fd {first}: each client is \
             closed before the next arrives, so accept() should reuse the number"
        );
    }
    server.assert_running()
}

/// When several connections are already waiting, one listener event reports
/// them all (`data=N connection(s) waiting`) and the server accepts and
/// greets exactly that many, then waits again: a later client comes with an
/// event of its own.
#[rstest]
#[case::two(2)]
#[case::five(5)]
#[case::twelve(12)]
fn accepts_as_many_as_data_says_are_waiting(#[case] waiting: usize) -> harness::Result {
    let server = house::serves_a_batch_of(&STEP, waiting, |i, client| {
        let greeting = read_to_eof(client);
        assert!(
            greeting.starts_with(&hello()),
            "queued client {i}: expected the greeting, got {greeting:?}"
        );
    })?;
    server.assert_running()
}

/// stderr narrates each connection with its descriptor: accepted (with the
/// peer's address), greeted, closed; and the greeting names the same fd.
#[test]
fn logs_each_client_with_its_fd() -> harness::Result {
    let server = STEP.spawn(&[])?;
    let mut stream = house::connect(server.addr());
    let peer = stream.local_addr().expect("local_addr");
    let greeting = read_to_eof(&mut stream);

    let tail = format!(" from {peer}");
    server.wait_for_stderr(&format!("{tail}\n"), DEADLINE)?;
    let stderr = server.stderr();
    let fd: i32 = stderr
        .lines()
        .find_map(|l| {
            l.strip_suffix(&tail)?
                .rsplit_once("accepted fd ")?
                .1
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("expected a line 'accepted fd N{tail}' in:\n{stderr}"));
    assert_eq!(
        greeting,
        format!("{}{fd}\n", hello()),
        "stderr says the client got fd {fd}"
    );
    server.wait_for_stderr(&format!("fd {fd}: greeted, close({fd})"), DEADLINE)
}

/// Everything the server sends until it closes the connection.
fn read_to_eof(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    if let Err(e) = stream.read_to_end(&mut got) {
        panic!(
            "expected a greeting line then EOF; after {:?}: {e}",
            String::from_utf8_lossy(&got)
        );
    }
    String::from_utf8_lossy(&got).into_owned()
}
