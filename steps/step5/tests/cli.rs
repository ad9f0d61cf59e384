//! The command line: the contract every network step keeps and the
//! course's `--max-users` (both written once, in `harness::contract`).
//! Every run has a deadline.

harness::contract_tests!(max_users);
