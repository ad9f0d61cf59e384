//! Step 3's command line, the contract every network step keeps (written
//! once, in `harness::contract`): what a learner sees when the arguments
//! are wrong or the address cannot be listened on. Every run has a deadline.

harness::contract_tests!("step3", env!("CARGO_BIN_EXE_step3"));
