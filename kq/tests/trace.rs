//! `KQ_TRACE`: a traced `Kqueue::kevent` call is written to the trace's
//! file, decoded (changes, events with flag names and `data`, the result or
//! errno), and the call still returns what it returned untraced.
//!
//! The variable is read once per process, so this binary sets it before
//! its first call, and its tests take turns (one lock) so that each reads
//! only the blocks its own calls appended.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use common::*;

/// The trace file of this process, and the lock the tests take turns by.
fn trace_file() -> (MutexGuard<'static, ()>, PathBuf) {
    static TURN: Mutex<()> = Mutex::new(());
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let path = PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("kq-trace-test-{}.txt", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Before any kevent() of this process: every test comes here first.
        std::env::set_var("KQ_TRACE", &path);
        path
    });
    (turn, path.clone())
}

/// What the trace file holds after `from` bytes.
fn appended(path: &PathBuf, from: usize) -> String {
    let all = std::fs::read_to_string(path).unwrap_or_default();
    all.get(from..).unwrap_or("").to_string()
}

fn len_of(path: &PathBuf) -> usize {
    std::fs::metadata(path).map_or(0, |m| m.len() as usize)
}

/// A registration, the read event with its byte count, and (once read
/// and closed) EV_EOF are
/// written as `EV_SET(...)` lines with their flag names and `data`.
#[test]
fn a_traced_call_shows_its_changes_and_events_decoded() {
    let (_turn, path) = trace_file();
    assert!(
        kq::trace::enabled(),
        "KQ_TRACE={path:?} did not turn the trace on"
    );
    let kq = new_kq();
    let (mut peer, sock) = UnixStream::pair().expect("socketpair");
    peer.write_all(b"hello\n").expect("write 6 bytes");
    let fd = sock.as_raw_fd();
    let from = len_of(&path);

    let mut events = [kevent_zeroed(); 4];
    let ch = fd_change(fd, EVFILT_READ, EV_ADD | EV_CLEAR);
    let n = kq
        .kevent(&[ch], &mut events, Some(Duration::from_secs(5)))
        .expect("kevent");
    assert_eq!(n, 1, "one read event for 6 bytes: {:?}", show(&events[..n]));
    let read = kq::trace::describe(&events[0], true);
    let mut got = [0u8; 6];
    (&sock).read_exact(&mut got).expect("read the 6 bytes");
    drop(peer);
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_secs(5)))
        .expect("kevent after the peer closed");
    assert_eq!(n, 1, "one EOF event: {:?}", show(&events[..n]));
    let eof = kq::trace::describe(&events[0], true);
    // What else the kernel keeps in the returned flags is its own
    // business (macOS and the BSDs differ); these it must show.
    assert!(
        read.starts_with(&format!("EV_SET({fd}, EVFILT_READ, "))
            && read.contains("EV_CLEAR")
            && read.ends_with(", 0, 6, NULL)"),
        "the read event: {read}"
    );
    assert!(
        eof.contains("EV_EOF") && eof.ends_with(", 0, 0, NULL)"),
        "the EOF event: {eof}"
    );

    // The translation returns FreeBSD's flags: the registration's, less
    // the actions.
    #[cfg(target_os = "linux")]
    assert_eq!(
        (read.as_str(), eof.as_str()),
        (
            format!("EV_SET({fd}, EVFILT_READ, EV_CLEAR, 0, 6, NULL)").as_str(),
            format!("EV_SET({fd}, EVFILT_READ, EV_CLEAR|EV_EOF, 0, 0, NULL)").as_str()
        )
    );

    let trace = appended(&path, from);
    let kqfd = kq.as_raw_fd();
    let expected = [
        format!("kevent({kqfd}, 1 change, 4 events, {{5, 0}}) = 1, waited "),
        format!("  change EV_SET({fd}, EVFILT_READ, EV_ADD|EV_CLEAR, 0, 0, NULL)\n"),
        format!("  event  {read}\n"),
        format!("kevent({kqfd}, 0 changes, 4 events, {{5, 0}}) = 1, waited "),
        format!("  event  {eof}\n"),
    ];
    let mut at = 0;
    for line in &expected {
        match trace[at..].find(line.as_str()) {
            Some(i) => at += i + line.len(),
            None => panic!(
                "expected, in this order:\n{expected:#?}\nmissing {line:?} in the trace:\n{trace}"
            ),
        }
    }
}

/// A change that fails is an `EV_ERROR` event with its errno named, and a
/// call that fails shows `-1` and its errno, which the caller still gets.
#[test]
fn a_failed_change_and_a_failed_call_are_named_by_errno() {
    let (_turn, path) = trace_file();
    let kq = new_kq();
    let (_peer, sock) = UnixStream::pair().expect("socketpair");
    let fd = sock.as_raw_fd();
    let from = len_of(&path);

    let ch = fd_change(fd, EVFILT_READ, EV_DELETE);
    let mut events = [kevent_zeroed(); 2];
    let n = kq
        .kevent(&[ch], &mut events, Some(Duration::ZERO))
        .expect("a failed change with room for its EV_ERROR entry");
    assert_eq!(n, 1, "one EV_ERROR entry: {:?}", show(&events[..n]));
    let entry = kq::trace::describe(&events[0], true);
    assert!(
        entry.contains("EV_ERROR")
            && entry.ends_with(&format!(", {} /* ENOENT */, NULL)", libc::ENOENT)),
        "the EV_ERROR entry: {entry}"
    );
    let err = kq
        .kevent(&[ch], &mut [], Some(Duration::ZERO))
        .expect_err("a failed change with no room for its entry fails the call");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOENT),
        "the trace kept errno: {err}"
    );

    let trace = appended(&path, from);
    let kqfd = kq.as_raw_fd();
    let entry = format!("  event  {entry}\n");
    let failed = format!("kevent({kqfd}, 1 change, 0 events, {{0, 0}}) = -1 ENOENT (");
    for line in [&entry, &failed] {
        assert!(
            trace.contains(line.as_str()),
            "missing {line:?} in the trace:\n{trace}"
        );
    }
}

/// Filters' fflags are named by their filter, unknown bits in hex, and a
/// udata pointer is printed as one.
#[test]
fn fflags_are_named_by_their_filter() {
    let user = change(
        1,
        EVFILT_USER,
        EV_ADD | EV_ONESHOT,
        NOTE_FFOR | NOTE_TRIGGER | 0x5,
        0,
        0,
    );
    assert_eq!(
        kq::trace::describe(&user, false),
        "EV_SET(1, EVFILT_USER, EV_ADD|EV_ONESHOT, NOTE_FFOR|NOTE_TRIGGER|0x5, 0, NULL)"
    );
    let timer = change(2, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3, 0x10);
    assert_eq!(
        kq::trace::describe(&timer, false),
        "EV_SET(2, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, 3, 0x10)"
    );
    let mut eof = change(7, EVFILT_READ, EV_EOF, libc::ECONNRESET as u32, 0, 0);
    assert_eq!(
        kq::trace::describe(&eof, true),
        "EV_SET(7, EVFILT_READ, EV_EOF, ECONNRESET, 0, NULL)",
        "an EV_EOF event's fflags are the socket's error"
    );
    eof.fflags = NOTE_LOWAT;
    assert_eq!(
        kq::trace::describe(&eof, false),
        "EV_SET(7, EVFILT_READ, EV_EOF, NOTE_LOWAT, 0, NULL)",
        "a change's fflags are notes"
    );
}

/// The variable that makes `a_full_stderr_pipe_loses_blocks_instead_of_blocking`
/// the traced child rather than the test.
const CHILD: &str = "KQ_TRACE_TEST_CHILD";
/// Calls the child makes while nobody reads its stderr: far more blocks
/// than any pipe holds.
const CALLS: usize = 20_000;

/// With `KQ_TRACE=1` and a stderr pipe nobody reads, the program's loop
/// goes on (the blocks that do not fit are dropped), and once the pipe is
/// read again the next block says how many calls were not traced.
#[test]
fn a_full_stderr_pipe_loses_blocks_instead_of_blocking() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if std::env::var_os(CHILD).is_some() {
        return traced_child();
    }
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "a_full_stderr_pipe_loses_blocks_instead_of_blocking",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("KQ_TRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the traced child");
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // The child's stdout, line by line, so waiting for it has a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |want: &str| {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                // libtest writes `test NAME ... ` before the test's own output.
                Ok(line) if line.ends_with(want) => return,
                Ok(_) => continue,
                Err(_) => panic!("the traced child never printed {want:?}: blocked on its stderr?"),
            }
        }
    };
    wait_for(&format!("made {CALLS} calls"));
    // Now read its stderr, and once the pipe has room again, let it make
    // one more call.
    let (drained, has_room) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stderr = stderr;
        let mut all = vec![0u8; 1 << 20];
        let n = stderr.read(&mut all).unwrap_or(0);
        all.truncate(n);
        let _ = drained.send(());
        let _ = stderr.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    has_room
        .recv_timeout(Duration::from_secs(60))
        .expect("read the child's stderr");
    stdin
        .write_all(b"go on\n")
        .expect("tell the child to go on");
    wait_for("made the last call");
    drop(stdin);
    let status = child.wait().expect("wait for the child");
    let trace = reader.join().expect("stderr reader");
    assert!(
        status.success(),
        "the child failed ({status}); its stderr:\n{trace}"
    );
    let blocks = trace.lines().filter(|l| l.starts_with("kevent(")).count();
    assert!(
        blocks < CALLS,
        "{blocks} blocks for {CALLS} calls: the pipe cannot have held them all"
    );
    let note = trace
        .lines()
        .find(|l| l.ends_with(" kevent() calls not traced: the trace's output was full)"))
        .unwrap_or_else(|| {
            panic!(
                "no note of the dropped calls in the last lines:\n{}",
                tail(&trace)
            )
        });
    let dropped: usize = note
        .trim_start_matches('(')
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the count in {note:?}"));
    assert!(dropped > 0, "{note}");
    let last = trace.split(note).nth(1).unwrap_or("").trim();
    assert!(
        last.starts_with("kevent(") && last.ends_with(" ms") && !last.contains('\n'),
        "the note is followed by the last call's block, whole:\n{}",
        tail(&trace)
    );
}

/// The last lines of `text`, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

/// The child's side: many calls, say so, wait to be told, one call more.
fn traced_child() {
    assert!(kq::trace::enabled(), "the child runs with KQ_TRACE=1");
    let kq = new_kq();
    let mut events = [kevent_zeroed(); 1];
    for _ in 0..CALLS {
        kq.kevent(&[], &mut events, Some(Duration::ZERO))
            .expect("kevent");
    }
    println!("made {CALLS} calls");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read stdin");
    kq.kevent(&[], &mut events, Some(Duration::ZERO))
        .expect("kevent");
    println!("made the last call");
}
