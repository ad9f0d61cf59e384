//! greet: each client receives exactly one line, then EOF.

use super::Check;
use crate::{Client, Result, Target};

pub const CHECKS: &[Check] = &[
    Check {
        name: "greets_a_client_with_one_line_then_closes",
        about: "a client gets one line ending in \\n, then end of file",
        run: greets_a_client_with_one_line_then_closes,
        needs: &[],
    },
    Check {
        name: "greets_clients_in_sequence",
        about: "5 clients one after another each get their line and EOF",
        run: greets_clients_in_sequence,
        needs: &[],
    },
    Check {
        name: "greets_clients_connecting_at_once",
        about: "10 clients connected before any is served each get their line and EOF",
        run: greets_clients_connecting_at_once,
        needs: &[],
    },
];

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
