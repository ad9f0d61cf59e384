//! The binary's root: `src/main.rs`, the complete program, or with
//! `--features exercise` the learner's `src/exercise.rs` (see
//! `stepkit::pick!`).

stepkit::pick!();
