//! The harness's stages this step passes, one test per check, written by
//! `harness::stage_tests!` from the harness's own lists.

harness::stage_tests! { listen, port, greet }
