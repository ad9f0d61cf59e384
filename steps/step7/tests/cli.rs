//! The command line: the contract every network step keeps and the
//! course's `--max-users`, `--max-queue` and `--idle-timeout` (all written
//! once, in `harness::contract`). Every run has a deadline.

harness::contract_tests!(max_users, max_queue, idle_timeout);
