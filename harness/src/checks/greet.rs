//! greet: each client receives exactly one line, then EOF.

use crate::{Client, Result, Target};

super::declare! { $ CHECKS for Greet, tests greet:
    greets_a_client_with_one_line_then_closes: "a client gets one line ending in \\n, then end of file", [];
    greets_clients_in_sequence: "5 clients one after another each get their line and EOF", [];
    greets_clients_connecting_at_once: "10 clients connected before any is served each get their line and EOF", [];
}

fn expect_greeting(client: &mut Client) -> Result<()> {
    let line = client.read_line()?;
    if line.len() < 2 {
        return Err(client.fail(format!(
            "{} expected a greeting line, but the line was empty",
            client.name()
        )));
    }
    client.expect_eof()
}

/// One client: one line, then the server closes.
pub fn greets_a_client_with_one_line_then_closes(target: &Target) -> Result<()> {
    expect_greeting(&mut Client::connect(target)?)
}

/// Five clients in a row.
pub fn greets_clients_in_sequence(target: &Target) -> Result<()> {
    for i in 1..=5 {
        expect_greeting(&mut Client::connect(target)?.named(format!("client {i}")))?;
    }
    Ok(())
}

/// Ten clients wait in the accept queue together; each is greeted.
pub fn greets_clients_connecting_at_once(target: &Target) -> Result<()> {
    let mut clients = (1..=10)
        .map(|i| Ok(Client::connect(target)?.named(format!("client {i}"))))
        .collect::<Result<Vec<_>>>()?;
    for c in &mut clients {
        expect_greeting(c)?;
    }
    Ok(())
}
