//! Step 2 over TCP: the harness's listen and greet stages, then what is
//! particular to this step (one listener event reports every waiting
//! connection in `data`, and the greeting names the client's descriptor).
//! Each test starts its own server on a free port; the harness kills it
//! when the test ends, also on failure.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use harness::checks::{self, Stage};
use harness::Server;
use rstest::rstest;

/// How long any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(5);

fn step2() -> harness::Result<Server> {
    Server::spawn("step2", env!("CARGO_BIN_EXE_step2"), &[])
}

/// The listen stage, one check per case: the server accepts connections on
/// the address it announced, several at once, and clients that vanish
/// before it gets to them do not stop it.
#[rstest]
#[case::accepts_a_connection("accepts_a_connection")]
#[case::accepts_several_connections_at_once("accepts_several_connections_at_once")]
#[case::survives_clients_that_vanish("survives_clients_that_vanish")]
fn passes_listen_check(#[case] check: &str) -> harness::Result {
    let server = step2()?;
    checks::run(Stage::Listen, check, &server.target())
}

/// The port stage: `--port P` is honoured, and `--port 0` gets a free
/// port, so two servers can run at once.
#[rstest]
#[case::listens_on_the_port_it_is_given("listens_on_the_port_it_is_given")]
#[case::gets_a_free_port_for_port_0("gets_a_free_port_for_port_0")]
fn passes_port_check(#[case] check: &str) -> harness::Result {
    let server = Stage::Port.spawn("step2", env!("CARGO_BIN_EXE_step2"), &[])?;
    checks::run(Stage::Port, check, &server.target())
}

/// The greet stage, one check per case: each client gets exactly one line
/// and then EOF, several clients at once and in sequence.
#[rstest]
#[case::greets_a_client_with_one_line_then_closes("greets_a_client_with_one_line_then_closes")]
#[case::greets_clients_in_sequence("greets_clients_in_sequence")]
#[case::greets_clients_connecting_at_once("greets_clients_connecting_at_once")]
fn passes_greet_check(#[case] check: &str) -> harness::Result {
    let server = step2()?;
    checks::run(Stage::Greet, check, &server.target())
}

/// The cases above name every check the harness has for the listen, port
/// and greet stages, so a check added to the harness cannot go untested
/// here.
#[test]
fn runs_every_check_of_its_stages() {
    let ours = [
        "accepts_a_connection",
        "accepts_several_connections_at_once",
        "survives_clients_that_vanish",
        "listens_on_the_port_it_is_given",
        "gets_a_free_port_for_port_0",
        "greets_a_client_with_one_line_then_closes",
        "greets_clients_in_sequence",
        "greets_clients_connecting_at_once",
    ];
    let missing = checks::not_named(&[Stage::Listen, Stage::Port, Stage::Greet], &ours);
    assert!(
        missing.is_empty(),
        "the harness has checks step2's tests do not run: {}",
        missing.join("; ")
    );
}

/// `clients` connected at the same time each get the greeting line and then
/// end of file, whatever order they read in.
#[rstest]
#[case::one(1)]
#[case::five(5)]
#[case::twenty(20)]
fn greets_every_client_connected_at_once(#[case] clients: usize) -> harness::Result {
    let server = step2()?;
    let mut connected = Vec::new();
    for _ in 0..clients {
        connected.push(server.client()?);
    }
    for client in connected.iter_mut().rev() {
        let line = client.read_line()?;
        assert!(
            line.starts_with(b"hello from step2, you are fd ") && line.ends_with(b"\n"),
            "expected the line 'hello from step2, you are fd N\\n', got {:?}",
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
    let server = step2()?;
    let mut first = None;
    for i in 0..clients {
        let mut stream = connect(server.addr());
        let greeting = read_to_eof(&mut stream);
        let fd = greeting
            .strip_prefix("hello from step2, you are fd ")
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or_else(|| {
                panic!("client {i}: expected 'hello from step2, you are fd N\\n', got {greeting:?}")
            });
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
/// greets exactly that many.
#[rstest]
#[case::two(2)]
#[case::five(5)]
#[case::twelve(12)]
fn accepts_as_many_as_data_says_are_waiting(#[case] waiting: usize) -> harness::Result {
    let server = step2()?;
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
        let greeting = read_to_eof(client);
        assert!(
            greeting.starts_with("hello from step2, you are fd "),
            "queued client {i}: expected the greeting, got {greeting:?}"
        );
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
    server.assert_running()
}

/// stderr narrates each connection with its descriptor: accepted (with the
/// peer's address), greeted, closed; and the greeting names the same fd.
#[test]
fn logs_each_client_with_its_fd() -> harness::Result {
    let server = step2()?;
    let mut stream = connect(server.addr());
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
        format!("hello from step2, you are fd {fd}\n"),
        "stderr says the client got fd {fd}"
    );
    server.wait_for_stderr(&format!("fd {fd}: greeted, close({fd})"), DEADLINE)
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
// Helpers: a plain TcpStream where a test needs its local address or raw
// bytes; every read has a deadline.
// ---------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("SO_RCVTIMEO");
    stream
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
