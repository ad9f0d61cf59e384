//! `cargo learn` as a learner uses it, on a copy of the steps (so nothing
//! here touches the repository's own starters): progress on a pristine
//! tree, hints one at a time, reset with and without asking, checks read
//! from cargo's output, watch, and bad arguments. Every run has a deadline
//! and is killed after it.
//!
//! Checks run a stand-in for cargo (`LEARN_CARGO`, a shell script printing
//! what `cargo test` printed in a real run), so these tests build nothing.
//! (A real cargo here would rebuild `target/debug/stepN` with the exercise
//! while `cargo test --workspace` still has that step's tests to run.)
//! `.ci/run` runs the real thing: `cargo learn check N` on every starter.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("learn/ has a parent")
        .to_path_buf()
}

/// A scratch copy of what `cargo learn` reads (the steps, with their
/// starters as generated, and the book's SUMMARY.md), removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "learn-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        copy_dir(&repo().join("steps"), &root.join("steps"));
        // The starters as generated, not the repository's: a learner's
        // edits to their own must not make these tests fail.
        for step in book::steps::discover(&root).expect("the steps") {
            let starter = book::starter::for_step(&root, &step).expect("a starter");
            fs::write(root.join(book::starter::path(&step)), starter).expect("write a starter");
        }
        fs::create_dir_all(root.join("book/src")).expect("book/src");
        fs::copy(
            repo().join("book/src/SUMMARY.md"),
            root.join("book/src/SUMMARY.md"),
        )
        .expect("copy SUMMARY.md");
        Tree(root)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }

    /// `cargo learn ARGS` in this tree, with `fake` as its cargo.
    fn learn(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_learn"));
        cmd.args(args)
            .env("LEARN_ROOT", &self.0)
            .env("LEARN_CARGO", self.path("fake-cargo"))
            .env_remove("NO_COLOR")
            .timeout(DEADLINE);
        cmd
    }

    /// Makes the stand-in cargo print `stdout` and exit with `status`.
    fn fake_cargo(&self, stdout: &str, status: i32) {
        self.write("fake-cargo.out", stdout);
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\necho \"HARNESS_TRACE=${{HARNESS_TRACE-unset}}\" >> '{}'\ncat '{}'\nexit {status}\n",
            self.path("fake-cargo.args").display(),
            self.path("fake-cargo.env").display(),
            self.path("fake-cargo.out").display()
        );
        self.write("fake-cargo", &script);
        make_executable(&self.path("fake-cargo"));
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// What `cargo test -q -p step3 --features exercise` printed on stdout for
/// the pristine starter (trimmed to two tests).
const STEP3_FAILING: &str = "
running 4 tests
....
test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.08s


running 2 tests
F.
failures:

---- passes_listen_check::case_1_accepts_a_connection stdout ----
Error: 
[harness] listen/accepts_a_connection: a client can connect to the announced address
[harness] the server exited with status 101
[harness] step3's stderr (5 lines):
[step3] step3: accepted fd 6 from 127.0.0.1:48146
[step3] 
[step3] thread 'main' (10926) panicked at steps/step3/src/exercise.rs:117:21:
[step3] not yet implemented: register_client: put the new client on the queue
[step3] note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace



failures:
    passes_listen_check::case_1_accepts_a_connection

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 5.52s

";

/// Replaces the first `todo!()` of step 3's starter, as a learner would.
fn edit_step3(tree: &Tree) {
    let file = "steps/step3/src/exercise.rs";
    let text = tree.read(file);
    let at = text.find("todo!(\"register_client").expect("the todo");
    let end = at + text[at..].find(");").expect("its end") + 2;
    let mine = format!("{}/* my registration */{}", &text[..at], &text[end..]);
    tree.write(file, &mine);
}

/// On a pristine tree every step is "not started", the first step is
/// next, and nothing is run.
#[test]
fn shows_every_step_untouched_on_a_pristine_tree() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let out = tree.learn(&[]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for step in 1..=5 {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("step {step} ")))
            .unwrap_or_else(|| panic!("no row for step {step} in:\n{stdout}"));
        assert!(row.contains("not started"), "step {step}: {row}");
    }
    assert!(
        stdout.contains("Next: step 1:") && stdout.contains("steps/step1/src/exercise.rs"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "colour on a pipe:\n{stdout}");
    assert!(
        !tree.path("fake-cargo.args").exists(),
        "progress ran cargo for untouched steps"
    );
    tree.learn(&["progress"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Next: step 1:"));
}

/// An edited step is checked, and progress shows it failing with its first
/// failing test and the todo!() it stopped at; a second progress reuses
/// that result while the file is unchanged.
#[test]
fn shows_an_edited_step_failing_at_its_todo() {
    let tree = Tree::new();
    tree.fake_cargo(STEP3_FAILING, 101);
    edit_step3(&tree);
    let out = tree.learn(&["progress"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("step 3 "))
        .expect("step 3's row");
    assert!(row.contains("failing"), "{stdout}");
    assert!(
        stdout.contains("passes_listen_check::case_1_accepts_a_connection")
            && stdout.contains("`register_client` (steps/step3/src/exercise.rs:117)"),
        "{stdout}"
    );
    // Step 1 comes first and is untouched: it is what to do next.
    assert!(stdout.contains("Next: step 1:"), "{stdout}");
    let args = tree.read("fake-cargo.args");
    assert_eq!(
        args.trim(),
        "test -q -p step3 --features exercise --no-fail-fast --color never"
    );
    tree.learn(&["progress"]).assert().success();
    assert_eq!(
        tree.read("fake-cargo.args").lines().count(),
        1,
        "progress ran the tests again for an unchanged file"
    );
}

/// `check` shows the failing test's key lines and the todo!() it stopped
/// at, and exits with status 1; a passing run says so, names the next
/// step (the first one not passing: here step 1, never checked) and exits
/// with 0.
#[test]
fn checks_a_step_and_says_what_next() {
    let tree = Tree::new();
    tree.fake_cargo(STEP3_FAILING, 101);
    tree.learn(&["check", "3"]).assert().code(1).stdout(
        predicate::str::contains("Failing: 1 of 6 tests fail")
            .and(predicate::str::contains(
                "[harness] listen/accepts_a_connection",
            ))
            .and(predicate::str::contains(
                "the todo!() `register_client` (steps/step3/src/exercise.rs:117)",
            ))
            .and(predicate::str::contains("cargo learn hint 3"))
            .and(predicate::str::contains("RUST_BACKTRACE").not()),
    );
    tree.fake_cargo(
        "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 0 ignored\n",
        0,
    );
    tree.learn(&["check", "step3"]).assert().success().stdout(
        predicate::str::contains("Passing: all 3 of step 3's tests pass")
            .and(predicate::str::contains("Next: step 1,")),
    );
}

/// `check N --trace` runs the tests with HARNESS_TRACE=1 (the harness then
/// starts servers with KQ_TRACE), and shows the server's last kevent()
/// calls whole, though the failure is longer than a failure is cut to.
#[test]
fn check_with_trace_asks_the_harness_for_the_kevent_calls() {
    let tree = Tree::new();
    tree.fake_cargo(STEP3_FAILING, 101);
    tree.learn(&["check", "3"]).assert().code(1);
    tree.fake_cargo(&step3_failing_traced(), 101);
    let out = tree.learn(&["check", "--trace", "3"]).assert().code(1);
    assert_eq!(
        tree.read("fake-cargo.env"),
        "HARNESS_TRACE=unset\nHARNESS_TRACE=1\n",
        "only --trace sets HARNESS_TRACE"
    );
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for line in [
        "HARNESS_TRACE=1 cargo test -p step3",
        "[harness] the server's last kevent() calls:",
        "[kq] kevent(4, 1 change, 0 events, NULL) = 0, waited 0.010 ms",
        "[kq]   change EV_SET(3, EVFILT_READ, EV_ADD, 0, 0, NULL)",
        "[kq]   event  EV_SET(3, EVFILT_READ, 0, 0, 1, NULL)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// STEP3_FAILING from a run with the trace: 12 lines of stderr more, then
/// the calls.
fn step3_failing_traced() -> String {
    let more: String = (0..12)
        .map(|i| format!("[step3] step3: line {i}\n"))
        .collect();
    let calls = "[harness] the server's last kevent() calls:
[kq] kevent(4, 1 change, 0 events, NULL) = 0, waited 0.010 ms
[kq]   change EV_SET(3, EVFILT_READ, EV_ADD, 0, 0, NULL)
[kq] kevent(4, 0 changes, 64 events, NULL) = 1, waited 3.101 ms
[kq]   event  EV_SET(3, EVFILT_READ, 0, 0, 1, NULL)
";
    let at =
        "[step3] note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
    STEP3_FAILING.replacen(at, &format!("{at}{more}{calls}"), 1)
}

/// The stand-in cargo passes every check.
const PASSING: &str = "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 0 ignored\n";

/// After a passing check, "Next" is the first step whose last check did
/// not pass, before the step just checked or after it; once every step
/// has passed, it says so.
#[test]
fn points_next_at_the_first_step_not_passing() {
    let tree = Tree::new();
    let numbers: Vec<u32> = book::steps::discover(&tree.0)
        .expect("the steps")
        .iter()
        .map(|s| s.number)
        .collect();
    tree.fake_cargo(PASSING, 0);
    for n in [1, 2] {
        tree.learn(&["check", &n.to_string()]).assert().success();
    }
    let next_after = |n: u32| {
        let out = tree.learn(&["check", &n.to_string()]).assert().success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        stdout
            .lines()
            .find(|l| l.starts_with("Next:"))
            .unwrap_or_else(|| panic!("no `Next:` line after checking step {n}:\n{stdout}"))
            .to_string()
    };
    // Steps 1 and 2 pass: after step 4, step 3 is next, not step 5.
    let next = next_after(4);
    assert!(
        next.starts_with("Next: step 3,"),
        "after steps 1, 2 and 4 passed, expected `Next: step 3, ...`; found {next:?}"
    );
    // Step 2 fails now: it is next, though it comes before.
    tree.fake_cargo(STEP3_FAILING, 101);
    tree.learn(&["check", "2"]).assert().code(1);
    tree.fake_cargo(PASSING, 0);
    let next = next_after(3);
    assert!(
        next.starts_with("Next: step 2,"),
        "with step 2 failing, expected `Next: step 2, ...` after step 3 passed; found {next:?}"
    );
    for n in &numbers {
        tree.learn(&["check", &n.to_string()]).assert().success();
    }
    let last = *numbers.last().expect("a step");
    let next = next_after(last);
    assert!(
        next.contains("every step passes"),
        "with every step passing, expected `Next: every step passes ...`; found {next:?}"
    );
}

/// A failure that stopped at no todo!() shows in progress with its first
/// reason (what went wrong), not only the name of the test.
#[test]
fn shows_a_failing_steps_first_reason_in_progress() {
    let tree = Tree::new();
    let wrong_echo = STEP3_FAILING
        .replace(
            "[harness] the server exited with status 101",
            "[harness] client sent \"x\\n\" and expected it back within 5 s; nothing arrived",
        )
        .replace(
            "not yet implemented: register_client: put the new client on the queue",
            "log line",
        );
    tree.fake_cargo(&wrong_echo, 101);
    edit_step3(&tree);
    let out = tree.learn(&["progress"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let why = "why: client sent \"x\\n\" and expected it back within 5 s; nothing arrived";
    assert!(
        stdout.contains(why),
        "expected step 3's row to say `{why}`; progress printed:\n{stdout}"
    );
    // The second progress reads it from what the first remembered.
    let again = tree.learn(&["progress"]).assert().success();
    let again = String::from_utf8_lossy(&again.get_output().stdout).into_owned();
    assert!(
        again.contains(why),
        "expected the remembered result to keep `{why}`; progress printed:\n{again}"
    );
    assert_eq!(
        tree.read("fake-cargo.args").lines().count(),
        1,
        "progress ran the tests twice"
    );
}

/// A todo!() of the learner's own, whose message names no part, is shown as
/// "a todo!()" with its message, not as an empty name.
#[test]
fn shows_a_todo_without_a_part_name_as_a_todo() {
    let tree = Tree::new();
    let own = STEP3_FAILING.replace(
        "not yet implemented: register_client: put the new client on the queue",
        "not yet implemented: my own reminder",
    );
    tree.fake_cargo(&own, 101);
    tree.learn(&["check", "3"]).assert().code(1).stdout(
        predicate::str::contains("stopped at a todo!() (steps/step3/src/exercise.rs:117)")
            .and(predicate::str::contains("my own reminder"))
            .and(predicate::str::contains("``").not()),
    );
}

/// A file that does not compile is shown as the compiler's errors.
#[test]
fn shows_the_compiler_errors_of_a_file_that_does_not_compile() {
    let tree = Tree::new();
    let script = "#!/bin/sh\ncat >&2 <<'EOF'\nerror[E0425]: cannot find value `kq` in this scope\n  --> steps/step1/src/exercise.rs:64:9\n\nerror: could not compile `step1` (bin \"step1\") due to 1 previous error\nEOF\nexit 101\n";
    tree.write("fake-cargo", script);
    make_executable(&tree.path("fake-cargo"));
    tree.learn(&["check", "1"]).assert().code(1).stdout(
        predicate::str::contains("does not compile")
            .and(predicate::str::contains("cannot find value `kq`"))
            .and(predicate::str::contains("could not compile").not()),
    );
}

/// Hints come one at a time, from a nudge to nearly the answer, for the
/// first todo!() left in the learner's file; the count is remembered in
/// `.learn/`, and after the last one the answer's place is named.
#[test]
fn gives_graded_hints_for_the_todo_the_learner_is_at() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let hint = |n: usize| {
        let out = tree.learn(&["hint", "3"]).assert().success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            stdout.contains(&format!("Step 3, register_client: hint {n} of 3")),
            "hint {n}:\n{stdout}"
        );
        stdout
    };
    assert!(hint(1).contains("again for hint 2 of 3."));
    assert!(hint(2).contains("again for hint 3 of 3 (nearly the answer)."));
    let last = hint(3);
    assert!(
        last.contains("```rust") || last.contains("ev_set("),
        "{last}"
    );
    assert!(hint(3).contains("steps/step3/src/main.rs, at `// LESSON: register_client`"));
    assert!(tree.path(".learn/state").is_file());

    // With that todo!() written, the next one left is the subject.
    edit_step3(&tree);
    tree.learn(&["hint", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Step 3, client_gone: hint 1 of 3"));
    // A part can be named; an unknown one is a usage error naming them all.
    tree.learn(&["hint", "3", "echo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Step 3, echo: hint 1 of 3"));
    tree.learn(&["hint", "3", "nonsense"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "step 3 has no part `nonsense`; its parts: register_client, client_gone, close_client, echo",
        ));
}

/// reset: an untouched starter needs nothing; with edits and no terminal
/// it refuses (status 1) and changes nothing; with --yes it puts the
/// starter back and keeps the learner's version aside.
#[test]
fn resets_only_when_told_to_and_keeps_the_old_version() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let file = "steps/step3/src/exercise.rs";
    let starter = tree.read(file);
    tree.learn(&["reset", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is the starter already"));

    edit_step3(&tree);
    let mine = tree.read(file);
    tree.learn(&["reset", "3"])
        .write_stdin("y\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(
        tree.read(file),
        mine,
        "reset without --yes changed the file"
    );

    tree.learn(&["reset", "3", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".learn/step3-exercise.rs"));
    assert_eq!(tree.read(file), starter);
    assert_eq!(tree.read(".learn/step3-exercise.rs"), mine);

    // Whitespace alone (cargo fmt, say) leaves a starter untouched.
    tree.write(file, &starter.replace("    ", "\t"));
    tree.learn(&["reset", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is the starter already"));
}

/// The goal and the guided text of step 3's first lesson, from its hints.
fn step3_register_client(tree: &Tree) -> book::hints::Lesson {
    let text = tree.read("steps/step3/hints.md");
    book::hints::parse(Path::new("hints.md"), &text)
        .expect("step 3's hints")
        .into_iter()
        .find(|l| l.name == "register_client")
        .expect("the lesson register_client")
}

/// The row of step `n` in what `progress` printed.
fn row(stdout: &str, n: u32) -> String {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("step {n} ")))
        .unwrap_or_else(|| panic!("no row for step {n} in:\n{stdout}"))
        .to_string()
}

/// `level N challenge` makes an untouched starter the challenge one (its
/// todo!()s say the goals, not the calls), progress shows each step's
/// level and still counts that file as not started; on a file with edits
/// the level changes and the file stays; an unknown level is a usage error.
#[test]
fn chooses_a_level_per_step_and_shows_it_in_progress() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let file = "steps/step3/src/exercise.rs";
    let guided = tree.read(file);
    let lesson = step3_register_client(&tree);
    tree.learn(&["level", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Step 3 is at the guided level"));
    tree.learn(&["level", "3", "challenge"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Step 3 is at the challenge level")
                .and(predicate::str::contains("is its challenge starter now")),
        );
    let challenge = tree.read(file);
    assert!(
        challenge.contains(&format!("register_client: {}", lesson.goal))
            && !challenge.contains(&lesson.todo)
            && challenge.contains("(your turn, challenge)"),
        "expected the challenge starter, with the goal `{}`; the file is:\n{challenge}",
        lesson.goal
    );
    let out = tree.learn(&[]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let (three, one) = (row(&stdout, 3), row(&stdout, 1));
    assert!(
        three.contains("challenge") && three.contains("not started"),
        "step 3's row should say `challenge` and `not started`: {three}"
    );
    assert!(
        one.contains("guided"),
        "step 1's row should say `guided`: {one}"
    );
    assert!(
        !tree.path("fake-cargo.args").exists(),
        "progress ran cargo for a challenge starter nobody touched"
    );

    // With edits, the level changes but the file is the learner's.
    edit_step3(&tree);
    let mine = tree.read(file);
    tree.learn(&["level", "3", "guided"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("has your edits and stays as it is")
                .and(predicate::str::contains("cargo learn reset 3 guided")),
        );
    assert_eq!(tree.read(file), mine, "level changed a file with edits");
    tree.learn(&["reset", "3", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is the guided starter again"));
    assert_eq!(tree.read(file), guided);

    let said = usage_error(&tree, &["level", "3", "hard"]);
    assert!(said.contains("`hard` is not a level"), "{said}");
}

/// At the challenge level the hints start with the method (the guided
/// todo!() text), then the guided hints, one more in all; each level
/// counts its own hints.
#[test]
fn gives_the_method_first_at_the_challenge_level() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let lesson = step3_register_client(&tree);
    let total = lesson.hints.len() + 1;
    tree.learn(&["level", "3", "challenge"]).assert().success();
    let hint = || {
        let out = tree.learn(&["hint", "3"]).assert().success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    let first = hint();
    assert!(
        first.contains(&format!(
            "Step 3, register_client: hint 1 of {total} (challenge)"
        )) && first.contains(&format!("todo!(\"{}\")", lesson.goal))
            && first.contains(book::hints::METHOD)
            && first.contains(&lesson.todo),
        "the first challenge hint should be the method, `{}`; it printed:\n{first}",
        lesson.todo
    );
    let second = hint();
    let nudge = lesson.hints[0].lines().next().expect("a first hint");
    assert!(
        second.contains(&format!("hint 2 of {total} (challenge)")) && second.contains(nudge),
        "the second challenge hint should be the guided first, `{nudge}`; it printed:\n{second}"
    );
    tree.learn(&["level", "3", "guided"]).assert().success();
    let guided = hint();
    assert!(
        guided.contains(&format!("hint 1 of {}", lesson.hints.len()))
            && !guided.contains("(challenge)")
            && guided.contains(nudge),
        "back at the guided level, its own first hint; it printed:\n{guided}"
    );
}

/// `cargo learn ARGS` with stdin a terminal (a pseudo-terminal whose
/// other end has `typed` written to it), within the deadline: its status
/// and stdout.
fn at_terminal(tree: &Tree, args: &[&str], typed: &str) -> (std::process::ExitStatus, String) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: posix_openpt() returns a new descriptor or -1, checked.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: master is our open pseudo-terminal; File owns it from here.
    let mut master_file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(master) };
    // SAFETY: grantpt and unlockpt on our own master; ptsname's string is
    // copied before any other call could overwrite it.
    let slave = unsafe {
        assert_eq!(libc::grantpt(master), 0, "grantpt");
        assert_eq!(libc::unlockpt(master), 0, "unlockpt");
        let name = libc::ptsname(master);
        assert!(!name.is_null(), "ptsname");
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    };
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave)
        .unwrap_or_else(|e| panic!("{slave}: {e}"));
    master_file
        .write_all(typed.as_bytes())
        .expect("type the answers");
    let child = StdCommand::new(env!("CARGO_BIN_EXE_learn"))
        .args(args)
        .env("LEARN_ROOT", &tree.0)
        .env("LEARN_CARGO", tree.path("fake-cargo"))
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn learn");
    let mut running = Running(child);
    let mut stdout = running.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all);
        all
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = running.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "cargo learn {} did not end within {DEADLINE:?} at a terminal (typed {typed:?})",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(master_file);
    (status, reader.join().expect("stdout reader"))
}

/// At a terminal, reset asks which level (the kept one is the default),
/// then, if the file has edits, whether to throw them away; the answer
/// `challenge` writes the challenge starter and keeps that level.
#[test]
fn reset_asks_which_level_at_a_terminal() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    let file = "steps/step3/src/exercise.rs";
    let guided = tree.read(file);
    let goal = step3_register_client(&tree).goal;

    let (status, said) = at_terminal(&tree, &["reset", "3"], "challenge\n");
    assert!(status.success(), "reset 3 ended with {status}:\n{said}");
    assert!(
        said.contains("at which level") && said.contains("[guided]"),
        "reset should ask which level, guided by default; it printed:\n{said}"
    );
    assert!(said.contains("is the challenge starter again"), "{said}");
    assert!(
        tree.read(file).contains(&goal),
        "the file is not the challenge starter"
    );

    // Edited: the level is asked (challenge kept as the default), then
    // whether to throw the edits away.
    edit_step3(&tree);
    let mine = tree.read(file);
    let (status, said) = at_terminal(&tree, &["reset", "3"], "guided\nn\n");
    assert!(status.success(), "{said}");
    assert!(
        said.contains("[challenge]") && said.contains("put the guided starter back? [y/N]"),
        "reset should ask the level (challenge kept), then about the edits; it printed:\n{said}"
    );
    assert!(said.contains("Nothing changed."), "{said}");
    assert_eq!(tree.read(file), mine, "answering n changed the file");
    let (status, said) = at_terminal(&tree, &["reset", "3"], "g\ny\n");
    assert!(status.success(), "{said}");
    assert_eq!(
        tree.read(file),
        guided,
        "reset did not put the guided starter back"
    );
    assert_eq!(tree.read(".learn/step3-exercise.rs"), mine);
    let (status, said) = at_terminal(&tree, &["reset", "3"], "sideways\n");
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("`sideways` is not a level"), "{said}");
    assert_eq!(tree.read(file), guided);
}

/// What `cargo learn ARGS` said on stderr for a usage error, after checking
/// it is one: status 2, and exactly two lines, `cargo learn: ` and what is
/// wrong, then a pointer to `cargo learn help`.
fn usage_error(tree: &Tree, args: &[&str]) -> String {
    let out = tree.learn(args).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with("cargo learn: ")
            && lines[1].contains("`cargo learn help`"),
        "cargo learn {}: expected two lines on stderr, `cargo learn: WHAT IS WRONG` and a \
         pointer to `cargo learn help`; found:\n{stderr}",
        args.join(" ")
    );
    lines[0].to_string()
}

/// Bad arguments get status 2 and one line saying what is wrong, with a
/// pointer to `cargo learn help`, never the whole usage (which would push
/// that line out of sight); `help` prints the usage.
#[test]
fn refuses_bad_arguments_in_one_line_with_status_2() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    for (args, why) in [
        (
            &["frobnicate"][..],
            "I do not know the command `frobnicate`",
        ),
        (&["check", "three"][..], "`three` is not a step number"),
    ] {
        let said = usage_error(&tree, args);
        assert!(
            said.contains(why) && !said.contains("usage:"),
            "cargo learn {}: expected `{why}`; found {said:?}",
            args.join(" ")
        );
    }
    tree.learn(&["help"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("usage: cargo learn"));
}

/// A command that needs a step number and has none says so, with the
/// command's form and the steps there are.
#[test]
fn says_a_step_number_is_needed_when_none_is_given() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    for (args, form) in [
        (&["check"][..], "cargo learn check N"),
        (&["watch"][..], "cargo learn watch N"),
        (&["hint"][..], "cargo learn hint N [PART]"),
        (
            &["reset", "--yes"][..],
            "cargo learn reset N [guided|challenge] [--yes]",
        ),
        (&["level"][..], "cargo learn level N [guided|challenge]"),
    ] {
        let said = usage_error(&tree, args);
        let want = format!(
            "`{}` needs a step number: `{form}` (the steps are 1, 2,",
            args[0]
        );
        assert!(
            said.contains(&want),
            "cargo learn {}: expected `{want}...`; found {said:?}",
            args.join(" ")
        );
    }
}

/// Words after a complete command are named as extra, with the command's
/// form; `reset --yes N` (the flag first) is not extra.
#[test]
fn says_which_words_are_extra() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    for (args, want) in [
        (
            &["check", "2", "extra"][..],
            "`extra` is extra: the command is `cargo learn check N`",
        ),
        (
            &["hint", "3", "echo", "more", "words"][..],
            "`more words` is extra: the command is `cargo learn hint N [PART]`",
        ),
        (
            &["reset", "3", "--force"][..],
            "`--force` is not a level (they are guided and challenge): the command is `cargo learn reset N [guided|challenge] [--yes]`",
        ),
        (
            &["progress", "now"][..],
            "`now` is extra: the command is `cargo learn progress`",
        ),
    ] {
        let said = usage_error(&tree, args);
        assert!(
            said.contains(want),
            "cargo learn {}: expected `{want}`; found {said:?}",
            args.join(" ")
        );
    }
    tree.learn(&["reset", "--yes", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is the starter already"));
}

/// A step number that does not exist names the steps there are.
#[test]
fn names_the_steps_when_a_step_does_not_exist() {
    let tree = Tree::new();
    tree.fake_cargo("", 1);
    // The steps as the tree has them (discovered, never listed here), and
    // the first number past the last.
    let numbers: Vec<u32> = book::steps::discover(&tree.0)
        .expect("the steps")
        .iter()
        .map(|s| s.number)
        .collect();
    let missing = numbers.iter().max().expect("at least one step") + 1;
    let listed = numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let want = format!("there is no step {missing} (the steps are {listed})");
    for cmd in ["check", "hint", "reset", "watch"] {
        tree.learn(&[cmd, &missing.to_string()])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want.as_str()));
    }
}

/// Kills and reaps a child when dropped, also when a test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// watch checks at once, again after a save, and stops on Ctrl-C (SIGINT)
/// with status 0.
#[test]
fn watch_checks_on_every_save_until_ctrl_c() {
    let tree = Tree::new();
    tree.fake_cargo(STEP3_FAILING, 101);
    let child = StdCommand::new(env!("CARGO_BIN_EXE_learn"))
        .args(["watch", "3"])
        .env("LEARN_ROOT", &tree.0)
        .env("LEARN_CARGO", tree.path("fake-cargo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn learn watch");
    let mut running = Running(child);
    let mut stdout = running.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str, times: usize| {
        let start = Instant::now();
        while seen.matches(needle).count() < times {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => {
                    panic!("watch never printed {needle:?} {times} time(s); it printed:\n{seen}")
                }
            }
        }
    };
    wait_for("Failing:", 1);
    // A save: the file's time changes (make sure it is a later second too,
    // for file systems that keep whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    edit_step3(&tree);
    wait_for("saved: checking step 3 again", 1);
    wait_for("Failing:", 2);
    // SAFETY: kill() on the pid of our own child.
    unsafe {
        libc::kill(running.0.id() as libc::pid_t, libc::SIGINT);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(st) = running.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(start.elapsed() < DEADLINE, "watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "watch ended with {status} after Ctrl-C");
}
