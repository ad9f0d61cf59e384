//! Step 1 run as a program: standard input in, the same bytes out, and on
//! stderr what the kqueue said. Every run has a deadline and is killed
//! after it, also when a test fails. The command line takes no arguments
//! but `--help`.

use std::fs::File;
use std::io::Read;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use rstest::rstest;

/// Long enough for a slow machine; the program needs about 0.1 s plus the input.
const DEADLINE: Duration = Duration::from_secs(10);

/// The step under test: its name and binary, from Cargo.
const STEP: harness::Step = harness::this_step!();

fn program() -> Command {
    let mut cmd = Command::new(STEP.bin);
    cmd.timeout(DEADLINE);
    cmd
}

/// Runs the program with `input` on a pipe and returns what it did.
fn run_with(input: &[u8]) -> Output {
    program()
        .write_stdin(input)
        .output()
        .expect("run the step with piped input")
}

/// Where two byte strings first differ, for a failure message that a
/// person can read even when the input is a megabyte of binary.
fn describe_difference(sent: &[u8], got: &[u8]) -> String {
    let at = sent.iter().zip(got).take_while(|(a, b)| a == b).count();
    let around = |b: &[u8]| b[at.saturating_sub(8)..(at + 8).min(b.len())].to_vec();
    format!(
        "sent {} bytes, got {} bytes back on stdout; first difference at byte {at}: \
         sent ...{:?}..., got ...{:?}...",
        sent.len(),
        got.len(),
        around(sent),
        around(got)
    )
}

/// Piped input comes out on stdout byte for byte (text, every byte value
/// including NUL, more than one pipe buffer) and the program exits with status 0
/// at end of input.
#[rstest]
#[case::a_line(b"hi\n".to_vec())]
#[case::no_trailing_newline(b"no newline at the end".to_vec())]
#[case::every_byte_value((0..=255u8).collect())]
#[case::nul_bytes(vec![0u8; 1000])]
#[case::one_mib((0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect())]
fn echoes_piped_input_exactly(#[case] input: Vec<u8>) {
    let out = run_with(&input);
    assert!(
        out.status.success(),
        "expected exit status 0 after the input ended, got {}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == input,
        "{}",
        describe_difference(&input, &out.stdout)
    );
}

/// Empty input (the pipe's writer closes at once) is EV_EOF with data=0:
/// nothing on stdout, exit status 0.
#[test]
fn exits_0_on_empty_input() {
    program()
        .write_stdin("")
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("data=0 EV_EOF"));
}

/// stderr shows the queue is a descriptor: `kqueue() returned descriptor
/// N`, and N is not 0, 1 or 2, which stdin, stdout and stderr hold.
#[test]
fn reports_the_kqueue_descriptor() {
    let out = run_with(b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fd: i32 = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix(&STEP.log_line("kqueue() returned descriptor "))?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "expected a line '{}N' in:\n{stderr}",
                STEP.log_line("kqueue() returned descriptor ")
            )
        });
    assert!(
        fd > 2,
        "the kqueue got descriptor {fd}, but 0, 1 and 2 are in use"
    );
}

/// Before anything is registered, kevent() has nothing to report: 0 events
/// with a zero timeout, and 0 events after a short (100 ms) timeout.
#[test]
fn reports_0_events_before_anything_is_registered() {
    program().write_stdin("").assert().success().stderr(
        predicate::str::contains("timeout 0 ms: 0 events")
            .and(predicate::str::contains("timeout 100 ms: 0 events"))
            .and(predicate::str::contains(
                "registered EVFILT_READ for stdin (fd 0)",
            )),
    );
}

/// The short timeout really waits: the 100 ms poll reports at least 100 ms
/// gone, the zero one returns at once.
#[test]
fn waits_out_the_short_timeout() {
    let out = run_with(b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let waited = |timeout: &str| -> u128 {
        let prefix = STEP.log_line(&format!(
            "kevent() with no changes, timeout {timeout}: 0 events after "
        ));
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(" ms")?.parse().ok())
            .unwrap_or_else(|| panic!("expected a line '{prefix}N ms' in:\n{stderr}"))
    };
    let (zero, short) = (waited("0 ms"), waited("100 ms"));
    assert!(short >= 100, "the 100 ms poll returned after {short} ms");
    assert!(zero < 100, "the zero-timeout poll took {zero} ms");
}

/// Each readiness is logged with `data`, the bytes waiting: a 6-byte line
/// shows as `data=6`, and over a pipe the `data` values add up to exactly
/// the bytes sent, because the program reads what `data` says is there.
#[rstest]
#[case::a_line(6)]
#[case::more_than_a_pipe_holds(300_000)]
fn reports_data_for_each_readiness(#[case] size: usize) {
    let input: Vec<u8> = b"hello\n".iter().copied().cycle().take(size).collect();
    let out = run_with(&input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let datas: Vec<usize> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&STEP.log_line("fd 0 readable: data=")))
        .map(|rest| {
            rest.split(' ')
                .next()
                .unwrap_or("")
                .parse()
                .expect("data=N")
        })
        .collect();
    assert!(
        out.status.success() && !datas.is_empty(),
        "sent {size} bytes; expected 'fd 0 readable: data=N' lines and status 0, \
         got {} and stderr:\n{stderr}",
        out.status
    );
    if size == 6 {
        assert!(
            datas.contains(&6),
            "sent \"hello\\n\", expected data=6 in:\n{stderr}"
        );
    }
    let total: usize = datas.iter().sum();
    assert_eq!(
        total, size,
        "sent {size} bytes, the data=N values add up to {total}"
    );
}

/// /dev/null is always readable with data=0 (as on BSD); read() returns 0
/// and the program exits with status 0, printing nothing.
#[test]
fn exits_0_on_dev_null() {
    let out = run_with_stdin(File::open("/dev/null").expect("open /dev/null"));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "stdin /dev/null: expected no output and status 0, got {} and {} bytes; stderr:\n{}",
        out.status,
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data=0") && stderr.contains("read() returned 0: end of input"),
        "stdin /dev/null: expected data=0, then read() returning 0, in:\n{stderr}"
    );
}

/// A regular file on stdin is readable with `data` = the bytes left to its
/// end; the program copies the whole file and exits with status 0 (at the end
/// FreeBSD, and kq on Linux, report nothing more).
#[test]
fn echoes_a_regular_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs");
    let expected = std::fs::read(path).expect("read main.rs");
    let out = run_with_stdin(File::open(path).expect("open main.rs"));
    assert!(
        out.status.success(),
        "stdin {path}: expected status 0, got {}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == expected,
        "{}",
        describe_difference(&expected, &out.stdout)
    );
    let first = format!("data={}", expected.len());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&first),
        "a file of {} bytes should first be readable with {first}",
        expected.len()
    );
}

/// A regular file bigger than the program's buffer says so in `data` (all its
/// bytes are there at once, unlike a pipe's): the program reads at most a buffer
/// per read(), never what `data` says alone, and copies the whole file.
#[test]
fn reads_at_most_a_buffer_from_a_file_bigger_than_it() {
    // 300 KiB, well past the 64 KiB buffer; a pattern, so an offset shows.
    let content: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    let file = TempFile::with(&content);
    let out = run_with_stdin(File::open(&file.0).expect("open the temporary file"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdin: a file of {} bytes; expected status 0, got {}; stderr:\n{stderr}",
        content.len(),
        out.status
    );
    assert!(
        out.stdout == content,
        "stdin: a file of {} bytes: {}",
        content.len(),
        describe_difference(&content, &out.stdout)
    );
    let first = format!("data={}", content.len());
    assert!(
        stderr.contains(&first),
        "a file of {} bytes should first be readable with {first}; stderr:\n{stderr}",
        content.len()
    );
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn with(content: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("{}-stdin-{}.bin", STEP.name, std::process::id()));
        std::fs::write(&path, content).expect("write a temporary file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------
// assert_cmd always gives the child a pipe for stdin; /dev/null and regular
// files need std's Command, with the same deadline and kill.
// ---------------------------------------------------------------------------

/// Kills and reaps the child when dropped (after a failed assertion too).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_with_stdin(stdin: File) -> Output {
    let child = StdCommand::new(STEP.bin)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the step");
    let mut running = Running(child);
    let collect = |mut from: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            all
        })
    };
    let stdout = collect(Box::new(running.0.stdout.take().expect("stdout")));
    let stderr = collect(Box::new(running.0.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().expect("wait for the step") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            // Dropping `running` kills it; the pipes then close.
            drop(running);
            let err = stderr.join().unwrap_or_default();
            panic!(
                "the step did not exit within {DEADLINE:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

// ---------------------------------------------------------------------------
// The command line: no arguments but `--help`.
// ---------------------------------------------------------------------------

/// Any argument but `--help` is a usage error: what is wrong and the usage
/// on stderr, nothing on stdout, exit status 2, and stdin is never read.
#[rstest]
#[case::unknown_flag("--bogus")]
#[case::network_option("--port")]
#[case::a_word("input.txt")]
fn refuses_arguments_with_usage(#[case] arg: &str) {
    program()
        .arg(arg)
        .write_stdin("not echoed\n")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains(STEP.log_line(&format!("unknown argument '{arg}'")))
                .and(predicate::str::contains(format!("usage: {}", STEP.name))),
        );
}

/// `--help` and `-h` print the usage on stdout and exit with status 0.
#[rstest]
#[case::long("--help")]
#[case::short("-h")]
fn prints_usage_on_help(#[case] flag: &str) {
    program()
        .arg(flag)
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!("usage: {}", STEP.name)));
}
