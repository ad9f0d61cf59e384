//! The binary's root: which file the program is.
//!
//! `cargo run -p step8` and `cargo test -p step8` build `main.rs`, the
//! complete program the book shows. With `--features exercise` they build
//! `exercise.rs` instead, the learner's version (`cargo learn`), under the
//! same binary name, so the step's tests run against it unchanged.

#[cfg_attr(not(feature = "exercise"), path = "main.rs")]
#[cfg_attr(
    feature = "exercise",
    path = "exercise.rs",
    // Until every todo!() is written, the code after one is unreachable,
    // and some variables, imports and helpers go unused: no warnings.
    allow(
        unreachable_code,
        unused_variables,
        unused_imports,
        unused_mut,
        dead_code,
        clippy::diverging_sub_expression
    )
)]
mod step;

fn main() {
    step::main()
}
