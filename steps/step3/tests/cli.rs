//! The command line: the contract every network step keeps (written once,
//! in `harness::contract`). Every run has a deadline.

harness::contract_tests!();
