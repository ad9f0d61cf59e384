//! The harness's stages this step passes, one test per check, written by
//! `harness::stage_tests!` from the harness's own lists: the echo stages
//! in both ways of removing a client.

/// `--remove delete`: EV_DELETE, then close().
mod delete {
    harness::stage_tests! { with ["--remove", "delete"]; listen, echo, urgent_echo, quiet }
}

/// `--remove close`: close() alone.
mod close {
    harness::stage_tests! { with ["--remove", "close"]; listen, echo, urgent_echo, quiet }
}

harness::stage_tests! { port }
