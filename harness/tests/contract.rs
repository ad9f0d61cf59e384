//! `harness::contract`'s runner against programs that are not step
//! servers, for what the steps' own contract tests cannot show.

use std::path::Path;
use std::time::{Duration, Instant};

/// More than a pipe holds (64 KiB on Linux, less on some BSDs), on each of
/// stdout and stderr.
const BYTES: usize = 200_000;

/// A program that writes more than a pipe holds to stdout and stderr, then
/// exits 2, is reported with its own status and all of its output, at
/// once: the runner reads both pipes while it waits, so the program never
/// blocks in write() until the deadline kills it.
#[test]
fn reports_a_chatty_program_by_its_status_not_the_deadline() -> harness::Result {
    let script = format!("head -c {BYTES} /dev/zero; head -c {BYTES} /dev/zero >&2; exit 2");
    let start = Instant::now();
    let out = harness::contract::run_to_exit(Path::new("sh"), &["-c", &script])?;
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(2), "{:?}", out.status);
    assert_eq!(
        (out.stdout.len(), out.stderr.len()),
        (BYTES, BYTES),
        "the whole of stdout and stderr"
    );
    // The deadline is 10 s; writing 400 KB into pipes takes milliseconds.
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: the runner waited for the deadline"
    );
    Ok(())
}
