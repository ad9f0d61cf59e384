//! The book package: builds and checks the mdBook in `book/src`.
//!
//! The book teaches from the code the tests compile, so the one thing it
//! must never do is show something the repository does not say. This crate
//! is what keeps it so:
//!
//! - [`includes`]: every `{{#include}}` resolves, by named anchor, to lines
//!   that exist (mdBook itself renders a missing anchor as nothing); Rust
//!   and C listings alike come straight from their sources this way;
//! - [`steps`]: the list of steps, found in `steps/step<N>` (never written
//!   down anywhere else);
//! - [`extract`] and [`generated`]: what cannot be included by anchor (`kq`
//!   doc sections, step diffs, lists of tests, the [`stages`] table, the
//!   [`plot`] of the bench's measured data, the root README's table of steps
//!   from [`readme`]) is derived by name into `book/generated/`, and `cargo
//!   test -p book` fails when a committed file is stale;
//! - [`transcripts`]: the terminal sessions the chapters show, produced by
//!   playing each step's [`scenario`] against its binary
//!   (`scripts/generate.sh`).
//!
//! The tests in `book/tests/` build the book with `mdbook-driver` into
//! `target/book/` and check the HTML.

pub mod extract;
pub mod generated;
pub mod hints;
pub mod includes;
pub mod listings;
pub mod plot;
pub mod readme;
pub mod scaffold;
pub mod scenario;
pub mod stages;
pub mod starter;
pub mod steps;
pub mod transcripts;
