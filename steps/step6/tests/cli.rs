//! The command line: the contract every network step keeps and the
//! course's `--max-users` and `--max-queue` (all written once, in
//! `harness::contract`). Every run has a deadline.

harness::contract_tests!(max_users, max_queue);
