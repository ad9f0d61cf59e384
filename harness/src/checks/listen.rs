//! listen: the server accepts TCP connections on the address it announced.

use std::time::Duration;

use super::{expect_calm, CALM_ADVICE};
use crate::{Client, Result, Target};

super::declare! { $ CHECKS for Listen, tests listen:
    accepts_a_connection: "a client can connect to the announced address", [];
    accepts_several_connections_at_once: "20 clients can be connected at the same time", [];
    survives_clients_that_vanish: "clients that reset or close at once do not stop the server", [];
    stays_calm_while_waiting_for_clients: "a client connects and says nothing; for the next second the server uses next to no CPU", [CpuTime];
}

/// A client can connect, and the server is still running afterwards.
pub fn accepts_a_connection(target: &Target) -> Result<()> {
    let _client = Client::connect(target)?;
    std::thread::sleep(Duration::from_millis(50));
    target.assert_running()
}

/// 20 clients connected at once.
pub fn accepts_several_connections_at_once(target: &Target) -> Result<()> {
    let clients = (0..20)
        .map(|_| Client::connect(target))
        .collect::<Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(50));
    target.assert_running()?;
    drop(clients);
    Ok(())
}

/// Clients that close or reset right after connecting do not take the
/// server down, and the next client still connects.
pub fn survives_clients_that_vanish(target: &Target) -> Result<()> {
    for i in 0..10 {
        let c = Client::connect(target)?;
        if i % 2 == 0 {
            c.reset()?;
        } else {
            drop(c);
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    target.assert_running()?;
    let _client = Client::connect(target)?;
    target.assert_running()
}

/// One client connects and says nothing (a greeter has greeted it and
/// closed, an echo server waits for its bytes): for a second the server
/// has nothing to do, and must sleep in its event wait.
pub fn stays_calm_while_waiting_for_clients(target: &Target) -> Result<()> {
    let _client = Client::connect(target)?;
    expect_calm(
        target,
        Duration::from_secs(1),
        "with one silent client connected",
        CALM_ADVICE,
    )?;
    let _next = Client::connect(target)?;
    target.assert_running()
}
