//! port (step2 on): the server listens on the port it is given, and
//! `--port 0` gets a free port from the OS.
//!
//! A server that ignores `--port` passes every other stage whenever its own
//! port happens to be free, and then fails on a learner's laptop where it
//! is not, or when two tests run at once. These checks start the server
//! themselves (so they need its command, not `--addr`).

use std::net::TcpListener;

use crate::{Client, Failure, Result, Server, Target};

super::declare! { $ CHECKS for Port, tests port:
    listens_on_the_port_it_is_given: "started with --port P (a free port the harness picked), it announces P and accepts there", [Command];
    gets_a_free_port_for_port_0: "two servers started with --port 0 at once each get their own free port and accept there", [Command];
}

/// The launch of the server under check, or a failure saying why these
/// checks need it.
fn launch(target: &Target) -> Result<&crate::Launch> {
    target.launch().ok_or_else(|| {
        Failure::new(
            "the port checks start the server themselves, with ports they choose: \
             give its command (harness check port -- <command...>), not --addr",
        )
    })
}

/// A port that is free right now: bind port 0, read what the OS chose,
/// close it again.
fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::new(format!("cannot find a free port for the check: {e}")))
}

/// Starts the server with `--port P` for a free P; it must announce P and
/// accept a connection there.
pub fn listens_on_the_port_it_is_given(target: &Target) -> Result<()> {
    let launch = launch(target)?;
    let port = free_port()?;
    let on_port = launch.on_port(port);
    let server = Server::start(&on_port).map_err(|f| {
        f.context(format!(
            "started `{}` (another instance, started with --port 0, listens on {}); it did not start\n\
             a server that ignores --port and always takes the same port cannot run twice",
            on_port.shown(),
            target.socket_addr()
        ))
    })?;
    let announced = server.addr();
    if announced.port() != port {
        return Err(server.target().fail(format!(
            "started `{}`; it announced {announced}, not port {port}\n\
             listen on the port given with --port (0 means: let the OS choose one)",
            on_port.shown()
        )));
    }
    Client::connect(&server.target())
        .map(drop)
        .map_err(|f| f.context(format!("the server announced port {port}, as asked")))
}

/// Starts a second server with `--port 0` while the first runs: both must
/// announce a port of their own and accept there. A server that always
/// takes the same port (8080, say) cannot start twice.
pub fn gets_a_free_port_for_port_0(target: &Target) -> Result<()> {
    let launch = launch(target)?;
    let first = target.socket_addr();
    Client::connect(target).map_err(|f| {
        f.context(format!(
            "the server was started with --port 0 and announced {first}"
        ))
    })?;
    let second_launch = launch.on_port(0);
    let second = Server::start(&second_launch).map_err(|f| {
        f.context(format!(
            "a second server, `{}`, started while the first listened on {first}, did not start\n\
             with --port 0 each server must get a free port from the OS (bind port 0, then ask getsockname() which one)",
            second_launch.shown()
        ))
    })?;
    let other = second.addr();
    if other.port() == first.port() {
        return Err(second.target().fail(format!(
            "two servers started with --port 0 both announced port {}\n\
             with --port 0 the OS chooses a free port: announce the one it chose (getsockname())",
            first.port()
        )));
    }
    Client::connect(&second.target())
        .map(drop)
        .map_err(|f| f.context(format!("the second server announced {other}")))?;
    target.note(format!(
        "--port 0 gave ports {} and {}",
        first.port(),
        other.port()
    ));
    Ok(())
}
