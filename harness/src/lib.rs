//! The test harness: start a step's server, talk to it over TCP with
//! deadlines, and explain failures so a learner knows what to fix.
//!
//! ```no_run
//! use harness::{checks, Server};
//!
//! fn main() -> harness::Result {
//!     // In a step's tests: env!("CARGO_BIN_EXE_step3").
//!     let server = Server::spawn("step3", "target/debug/step3", &[])?;
//!     let mut client = server.client()?;
//!     client.send_line("hello")?;
//!     client.expect_line("hello")?;
//!     checks::run_stage(checks::Stage::Echo, &server.target())
//! }
//! ```
//!
//! The same checks drive any server, in any language, through the CLI:
//! `cargo run -p harness -- check echo --addr 127.0.0.1:8080`.
//!
//! With `HARNESS_TRACE=1` in the environment (`cargo learn check N
//! --trace` sets it for a step's tests; the CLI's `--trace` does the same),
//! every server is started with `KQ_TRACE` naming a file of the harness's,
//! and a failure quotes the server's last `kevent()` calls from it, decoded
//! by `kq` (a server on `kq`, or on kq-c from C, writes them;
//! [`Launch::traced`] chooses per server, [`Server::kq_trace`] reads it).

mod buffers;
pub mod checks;
mod client;
pub mod contract;
mod failure;
mod fds;
pub mod house;
pub mod process;
mod server;
mod step;
pub mod sys;
pub mod text;

pub use client::{Client, Closed, DEFAULT_TIMEOUT};
pub use failure::{Failure, Result};
pub use server::{
    open_fds, parse_listening_line, start_clean, Frozen, Launch, Server, Target, DEFAULT_MAX_USERS,
    TRACE_VAR,
};
pub use step::Step;
