//! `cargo learn`: the learner's loop over the steps, in the spirit of
//! rustlings. Each step's starter, `steps/stepN/src/exercise.rs`, is the
//! step's program with its lesson cut out to `todo!()`s; the learner writes
//! them until the step's own tests pass against it
//! (`cargo test -p stepN --features exercise`).
//!
//! ```text
//! cargo learn [progress]       every step: untouched, failing (and why) or passing; what next
//! cargo learn check N          step N's tests against the learner's file, once
//! cargo learn watch N          again on every save, until Ctrl-C
//!                              (`--trace` after either: a failure quotes the server's
//!                              last kevent() calls, HARNESS_TRACE=1)
//! cargo learn hint N [PART]    the next hint, from a nudge to nearly the answer
//! cargo learn level N [LEVEL]  the step's level: guided (todo!()s say how) or challenge (what)
//! cargo learn reset N [LEVEL] [--yes]  the starter back (asks which level, and before
//!                              it throws work away)
//! ```
//!
//! Each step has a starter at two levels, made from the same lesson
//! regions (`book::starter::Level`): *guided*, the committed file, whose
//! `todo!()`s name the calls to make, and *challenge*, written on demand,
//! whose `todo!()`s say only what the part must achieve; at that level the
//! guided text is the first hint. The level is chosen per step and kept in
//! `.learn/`; the learner's file is `src/exercise.rs` at either.
//!
//! The steps are found as everything else finds them (`steps/step<N>`);
//! "untouched" means the learner's file is what the generator makes from
//! the step's solution now, at either level (whitespace aside). What it
//! remembers (each step's level, hints shown, the last results) is in
//! `.learn/`, which git ignores. Exit
//! statuses: 0 done (for `check`: the step passes), 1 the step fails or the
//! work could not be done, 2 a usage error.

mod exercise;
mod run;
mod state;
mod term;

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use std::{fs, thread};

use book::starter::Level;
use exercise::Exercise;
use run::Outcome;
use state::State;
use term::Style;

const USAGE: &str = "usage: cargo learn [COMMAND]

Each step's starter, steps/stepN/src/exercise.rs, is the step's program
with its lesson cut out: write its todo!()s until the step's own tests
pass against it.

  cargo learn                   every step: untouched, failing (and why) or
                                passing, and what to do next
  cargo learn progress          the same
  cargo learn check N           run step N's tests against your file, once
  cargo learn watch N           run them again on every save (Ctrl-C stops)
  cargo learn check N --trace   the same, and a failure shows your server's last
                                kevent() calls, decoded (also for watch)
  cargo learn hint N [PART]     the next hint for the todo!() you are at
                                (or for PART), from a nudge to nearly the answer
  cargo learn level N [LEVEL]   show or choose step N's level: guided (each
                                todo!() says how: the calls to make) or
                                challenge (it says what the part must achieve;
                                the first hint is the method)
  cargo learn reset N [LEVEL] [--yes]
                                put the starter back, at LEVEL (asks which
                                level, and before it throws your edits away)
  cargo learn help              this";

/// The width of the level column of `progress` (`challenge`).
const LEVEL_WIDTH: usize = 9;

/// How long one run of a step's tests may take (a build included).
const DEADLINE: Duration = Duration::from_secs(600);

/// What every command works with.
struct Ctx {
    root: PathBuf,
    exercises: Vec<Exercise>,
    style: Style,
    cargo: String,
    /// `--trace`: the harness starts servers with KQ_TRACE, and failures
    /// quote their last kevent() calls.
    trace: bool,
}

fn main() -> ExitCode {
    // `cargo learn | head` ends quietly, as a C tool does, instead of
    // panicking on the closed pipe (Rust ignores SIGPIPE by default).
    // SAFETY: restoring the default action of a signal, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if matches!(args.as_slice(), ["help" | "--help" | "-h"]) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let ctx = match Ctx::new() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut ctx = ctx;
    let command = match Command::parse(&args, &ctx.steps_are()) {
        Ok(c) => c,
        Err(why) => return usage(&format!("cargo learn: {why}")),
    };
    match command {
        Command::Progress => ctx.progress(),
        Command::Check(n, trace) => {
            ctx.trace = trace;
            ctx.with_step(n, |ctx, ex| ctx.check(ex))
        }
        Command::Watch(n, trace) => {
            ctx.trace = trace;
            ctx.with_step(n, |ctx, ex| ctx.watch(ex))
        }
        Command::Hint(n, part) => ctx.with_step(n, |ctx, ex| ctx.hint(ex, part)),
        Command::Level(n, level) => ctx.with_step(n, |ctx, ex| ctx.level(ex, level)),
        Command::Reset(n, level, yes) => ctx.with_step(n, |ctx, ex| ctx.reset(ex, level, yes)),
    }
}

/// What the learner asked for (`help` is answered before anything else).
enum Command<'a> {
    Progress,
    /// The step, and `--trace`.
    Check(&'a str, bool),
    Watch(&'a str, bool),
    Hint(&'a str, Option<&'a str>),
    Level(&'a str, Option<Level>),
    Reset(&'a str, Option<Level>, bool),
}

impl<'a> Command<'a> {
    /// The command in `args`, or one sentence on what is wrong with them:
    /// an unknown command, a missing step number (`steps` says which there
    /// are), or what is extra.
    fn parse(args: &[&'a str], steps: &str) -> Result<Command<'a>, String> {
        let Some((&command, rest)) = args.split_first() else {
            return Ok(Command::Progress);
        };
        let form = match command {
            "progress" => "progress",
            "check" => "check N",
            "watch" => "watch N",
            "hint" => "hint N [PART]",
            "level" => "level N [guided|challenge]",
            "reset" => "reset N [guided|challenge] [--yes]",
            _ => return Err(format!("I do not know the command `{command}`")),
        };
        let extra = |words: &[&str]| {
            format!(
                "`{}` is extra: the command is `cargo learn {form}`",
                words.join(" ")
            )
        };
        if command == "progress" {
            return match rest {
                [] => Ok(Command::Progress),
                more => Err(extra(more)),
            };
        }
        // reset's `--yes`, and check's and watch's `--trace`, may come
        // before the number or after it.
        let yes = command == "reset" && rest.contains(&"--yes");
        let trace = matches!(command, "check" | "watch") && rest.contains(&"--trace");
        let words: Vec<&'a str> = rest
            .iter()
            .copied()
            .filter(|w| !((yes && *w == "--yes") || (trace && *w == "--trace")))
            .collect();
        let Some((&n, more)) = words.split_first() else {
            return Err(format!(
                "`{command}` needs a step number: `cargo learn {form}` ({steps})"
            ));
        };
        match (command, more) {
            ("check", []) => Ok(Command::Check(n, trace)),
            ("watch", []) => Ok(Command::Watch(n, trace)),
            ("hint", []) => Ok(Command::Hint(n, None)),
            ("hint", [part]) => Ok(Command::Hint(n, Some(part))),
            ("hint", [_, more @ ..]) => Err(extra(more)),
            ("level", []) => Ok(Command::Level(n, None)),
            ("reset", []) => Ok(Command::Reset(n, None, yes)),
            ("level" | "reset", [word]) => match Level::parse(word) {
                Some(level) if command == "level" => Ok(Command::Level(n, Some(level))),
                Some(level) => Ok(Command::Reset(n, Some(level), yes)),
                None => Err(format!(
                    "`{word}` is not a level (they are guided and challenge): the command is \
                     `cargo learn {form}`"
                )),
            },
            (_, more) => Err(extra(more)),
        }
    }
}

/// A usage error: what is wrong, on one line, and where the commands are
/// (status 2). Never the whole usage: the line that matters would scroll
/// away above it.
fn usage(message: &str) -> ExitCode {
    eprintln!("{message}\n`cargo learn help` shows every command.");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("cargo learn: {message}");
    ExitCode::FAILURE
}

impl Ctx {
    fn new() -> Result<Ctx, String> {
        // The repository this was built in; LEARN_ROOT (for its tests)
        // points it at another copy.
        let root = std::env::var_os("LEARN_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .parent()
                    .expect("learn/ has a parent")
                    .to_path_buf()
            });
        let steps = book::steps::discover(&root)?;
        let cargo = std::env::var("LEARN_CARGO")
            .or_else(|_| std::env::var("CARGO"))
            .unwrap_or_else(|_| "cargo".to_string());
        Ok(Ctx {
            exercises: steps.into_iter().map(|s| Exercise::new(&root, s)).collect(),
            root,
            style: Style::for_stdout(),
            cargo,
            trace: false,
        })
    }

    /// `the steps are 1, 2, 3`.
    fn steps_are(&self) -> String {
        let numbers: Vec<String> = self
            .exercises
            .iter()
            .map(|e| e.number().to_string())
            .collect();
        format!("the steps are {}", numbers.join(", "))
    }

    /// Runs `f` on step `n`, or says why `n` is not a step (status 2).
    fn with_step(&self, n: &str, f: impl FnOnce(&Ctx, &Exercise) -> ExitCode) -> ExitCode {
        let known = self.steps_are();
        let Ok(number) = n.trim_start_matches("step").parse::<u32>() else {
            return usage(&format!(
                "cargo learn: `{n}` is not a step number ({known})"
            ));
        };
        match self.exercises.iter().find(|e| e.number() == number) {
            Some(ex) => f(self, ex),
            None => usage(&format!("cargo learn: there is no step {number} ({known})")),
        }
    }

    // --- progress ---------------------------------------------------------

    fn progress(&self) -> ExitCode {
        let s = self.style;
        let mut state = State::load(&self.root);
        println!(
            "{}\n",
            s.bold("Your steps (each steps/stepN/src/exercise.rs against the step's tests)")
        );
        let width = self
            .exercises
            .iter()
            .map(|e| e.title().len())
            .max()
            .unwrap_or(0);
        let mut next: Option<(&Exercise, Status)> = None;
        for ex in &self.exercises {
            let status = match self.status(ex, &mut state) {
                Ok(st) => st,
                Err(e) => return fail(&e),
            };
            if matches!(status, Status::Interrupted) {
                return ExitCode::from(130);
            }
            let indent = " ".repeat(10 + width + 2 + LEVEL_WIDTH + 2);
            let (head, detail) = status.describe(s);
            let level = level_of(&state, ex).name();
            println!(
                "  step {:<2}  {:<width$}  {level:<LEVEL_WIDTH$}  {head}",
                ex.number(),
                ex.title()
            );
            for line in detail {
                println!("{indent}{line}");
            }
            if next.is_none() && !matches!(status, Status::Passing(_)) {
                next = Some((ex, status));
            }
        }
        let _ = state.save();
        println!();
        match next {
            None => println!(
                "{} Every step passes. Next: the exercises at the end of each chapter,\n\
                 done in your own files (the step's tests keep checking that the\n\
                 step still does its job), or your own server in another language,\n\
                 checked with `cargo run -p harness -- check STAGE -- ./your-server`.",
                s.good("Well done.")
            ),
            Some((ex, status)) => println!("{}", self.next(ex, &status)),
        }
        ExitCode::SUCCESS
    }

    /// Where step `ex` stands: untouched needs no run; an edited file is
    /// checked, unless it has not changed since the last check.
    fn status(&self, ex: &Exercise, state: &mut State) -> Result<Status, String> {
        if ex.current().is_none() {
            return Ok(Status::Missing);
        }
        if ex.untouched()? {
            return Ok(Status::Untouched);
        }
        let key = format!("result.{}", ex.step.name);
        let fingerprint = ex.fingerprint();
        if let Some(saved) = state.get(&key) {
            if let Some((fp, status)) = saved.split_once(' ') {
                if fp == fingerprint {
                    if let Some(status) = Status::restore(status) {
                        return Ok(status);
                    }
                }
            }
        }
        eprintln!(
            "{}",
            self.style.dim(&format!(
                "checking step {}: cargo test -p {} --features exercise ...",
                ex.number(),
                ex.step.name
            ))
        );
        let outcome = self.run(ex);
        let status = Status::from(&outcome);
        self.remember(ex, &outcome, state);
        Ok(status)
    }

    fn run(&self, ex: &Exercise) -> Outcome {
        run::catch_ctrl_c();
        run::check(
            &self.root,
            &self.cargo,
            &ex.step.name,
            &ex.test_order(),
            self.trace,
            DEADLINE,
        )
    }

    /// Keeps what a check found: its result for `progress`, and the
    /// `todo!()` it stopped at for `hint`.
    fn remember(&self, ex: &Exercise, outcome: &Outcome, state: &mut State) {
        let name = &ex.step.name;
        if let Some(saved) = Status::from(outcome).save() {
            state.set(
                format!("result.{name}"),
                format!("{} {saved}", ex.fingerprint()),
            );
        }
        match outcome {
            Outcome::Failed {
                first: run::Failure {
                    todo: Some(todo), ..
                },
                ..
            } => state.set(format!("todo.{name}"), todo.lesson.clone()),
            _ => state.forget(&format!("todo.{name}")),
        }
    }

    /// Whether the last check of step `ex` passed, on the file as it is
    /// now.
    fn passed_last_time(&self, ex: &Exercise, state: &State) -> bool {
        state
            .get(&format!("result.{}", ex.step.name))
            .and_then(|saved| saved.split_once(' '))
            .is_some_and(|(fp, status)| {
                fp == ex.fingerprint()
                    && matches!(Status::restore(status), Some(Status::Passing(_)))
            })
    }

    /// What to do next about step `ex`.
    fn next(&self, ex: &Exercise, status: &Status) -> String {
        let (n, file) = (ex.number(), ex.file());
        let chapter = ex
            .chapter()
            .map(|(title, md)| format!("the chapter \"{title}\" (book/src/{md})"))
            .unwrap_or_else(|| "its chapter in the book".to_string());
        let s = self.style;
        let what = match status {
            Status::Untouched => format!(
                "read {chapter} as far as \"Your turn\",\n\
                 then open {file} and write its first todo!().\n\
                 Check it with `cargo learn check {n}`, or `cargo learn watch {n}` to check on every save.\n\
                 {}",
                match level_of(&State::load(&self.root), ex) {
                    Level::Guided => format!(
                        "Its todo!()s say which calls to make; for ones that only say what the part\n\
                         must achieve: `cargo learn level {n} challenge`."
                    ),
                    Level::Challenge => format!(
                        "At the challenge level its todo!()s say what, not how; `cargo learn hint {n}`\n\
                         gives the method first. Back to guided: `cargo learn level {n} guided`."
                    ),
                }
            ),
            Status::Missing => format!(
                "{file} is missing: `cargo learn reset {n}` puts the starter there."
            ),
            Status::Failing {
                todo: Some((lesson, at)),
                ..
            } => format!(
                "write the todo!() `{lesson}` ({at}), then `cargo learn check {n}`.\n\
                 Stuck? `cargo learn hint {n}` (again for the next, closer hint)."
            ),
            Status::Failing { .. } => format!(
                "`cargo learn check {n}` shows the failing test in full: what was sent,\n\
                 what was expected, what arrived. Stuck? `cargo learn hint {n} PART`."
            ),
            Status::DoesNotCompile => format!(
                "{file} does not compile: `cargo learn check {n}` shows the errors."
            ),
            Status::Trouble(_) | Status::Interrupted => {
                format!("`cargo learn check {n}` runs its tests again.")
            }
            Status::Passing(_) => String::new(),
        };
        format!("{} step {n}: {what}", s.bold("Next:"))
    }

    // --- check and watch --------------------------------------------------

    fn check(&self, ex: &Exercise) -> ExitCode {
        let s = self.style;
        println!(
            "{}",
            s.dim(&format!(
                "step {}: {}cargo test -p {} --features exercise (your {}) ...",
                ex.number(),
                if self.trace { "HARNESS_TRACE=1 " } else { "" },
                ex.step.name,
                ex.file()
            ))
        );
        if State::load(&self.root)
            .get(&format!("result.{}", ex.step.name))
            .is_none()
        {
            // On stderr: what a run prints on stdout does not depend on
            // what was run before (the book shows it).
            eprintln!(
                "{}",
                s.dim("(the first check of a step builds it first: that can take a minute)")
            );
        }
        let outcome = self.run(ex);
        let mut state = State::load(&self.root);
        self.remember(ex, &outcome, &mut state);
        let _ = state.save();
        let n = ex.number();
        match &outcome {
            Outcome::Passed { tests } => {
                println!(
                    "{} all {tests} of step {n}'s tests pass against your file.",
                    s.good("Passing:")
                );
                // The first step that is not passing, as far as the checks
                // remembered say (none is run again here): after this one
                // or before it.
                let next = self
                    .exercises
                    .iter()
                    .find(|e| e.number() != n && !self.passed_last_time(e, &state));
                match next {
                    Some(next) => println!(
                        "{} step {}, {}: the first step not passing yet. `cargo learn check {}` \
                         (or `cargo learn` for all steps).",
                        s.bold("Next:"),
                        next.number(),
                        next.title(),
                        next.number()
                    ),
                    None => println!(
                        "{} every step passes. `cargo learn` shows them all.",
                        s.bold("Next:")
                    ),
                }
                ExitCode::SUCCESS
            }
            Outcome::Failed {
                passed,
                failed,
                first,
            } => {
                println!(
                    "{} {failed} of {} tests fail. The first:\n",
                    s.bad("Failing:"),
                    passed + failed
                );
                println!("  {}", s.bold(&first.name));
                for line in &first.lines {
                    println!("    {line}");
                }
                println!();
                match &first.todo {
                    Some(todo) => {
                        println!(
                            "{} the program stopped at {} ({}):\n    {}",
                            s.todo("Your turn:"),
                            which_todo(&todo.lesson),
                            todo.at,
                            todo.message
                        );
                        println!(
                            "Stuck? `cargo learn hint {n}` (again for the next, closer hint)."
                        );
                    }
                    None => println!(
                        "Read it as: what the test sent, what it expected, what arrived, and\n\
                         the server's last log lines. Stuck? `cargo learn hint {n} PART`\n\
                         (the parts: {}).",
                        ex.lessons()
                            .map(|l| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
                            .unwrap_or_default()
                            .join(", ")
                    ),
                }
                ExitCode::FAILURE
            }
            Outcome::DoesNotCompile { errors } => {
                println!("{} {} does not compile:\n", s.bad("Failing:"), ex.file());
                for line in errors {
                    println!("  {line}");
                }
                ExitCode::FAILURE
            }
            Outcome::TimedOut(d) => fail(&format!(
                "step {n}'s tests ran over {} s and were stopped; a test that waits for ever \
                 is often a server stuck in a blocking call (read() with nothing to read?)",
                d.as_secs()
            )),
            Outcome::Interrupted => ExitCode::from(130),
            Outcome::Trouble(e) => fail(e),
        }
    }

    fn watch(&self, ex: &Exercise) -> ExitCode {
        let s = self.style;
        let dir = self.root.join(ex.step.file(""));
        println!(
            "{}",
            s.dim(&format!(
                "watching {}: step {} is checked on every save. Ctrl-C stops.",
                ex.step.dir.display(),
                ex.number()
            ))
        );
        run::catch_ctrl_c();
        let mut seen = newest_change(&dir);
        self.check(ex);
        loop {
            if run::INTERRUPTED.load(Ordering::SeqCst) {
                println!();
                return ExitCode::SUCCESS;
            }
            thread::sleep(Duration::from_millis(300));
            let now = newest_change(&dir);
            if now == seen {
                continue;
            }
            // Wait until the saving is over (editors write in steps).
            let mut settled = now;
            loop {
                thread::sleep(Duration::from_millis(300));
                let again = newest_change(&dir);
                if again == settled {
                    break;
                }
                settled = again;
            }
            seen = settled;
            println!(
                "\n{}",
                s.dim(&format!("--- saved: checking step {} again", ex.number()))
            );
            if matches!(self.check(ex), c if c == ExitCode::from(130)) {
                return ExitCode::SUCCESS;
            }
        }
    }

    // --- hint ---------------------------------------------------------------

    fn hint(&self, ex: &Exercise, part: Option<&str>) -> ExitCode {
        let s = self.style;
        let n = ex.number();
        let lessons = match ex.lessons() {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        let names: Vec<&str> = lessons.iter().map(|l| l.name.as_str()).collect();
        let mut state = State::load(&self.root);
        let lesson = match part {
            Some(p) => match lessons.iter().find(|l| l.name == p) {
                Some(l) => l,
                None => {
                    return usage(&format!(
                        "cargo learn: step {n} has no part `{p}`; its parts: {}",
                        names.join(", ")
                    ))
                }
            },
            None => {
                let left = ex.todos_left().unwrap_or_default();
                // The todo!() the last check stopped at, if it is still
                // there; else the first left, in the order of the lessons.
                let last = state.get(&format!("todo.{}", ex.step.name));
                let pick = left
                    .iter()
                    .find(|l| Some(l.name.as_str()) == last)
                    .or_else(|| left.first())
                    .and_then(|l| lessons.iter().find(|x| x.name == l.name));
                match pick {
                    Some(l) => l,
                    None => {
                        println!(
                            "Every todo!() of step {n} is written. If a check still fails,\n\
                             `cargo learn check {n}` says which test and why; for hints on a\n\
                             part, `cargo learn hint {n} PART` (the parts: {}).",
                            names.join(", ")
                        );
                        return ExitCode::SUCCESS;
                    }
                }
            }
        };
        // Each level counts its own hints: the challenge's first is the
        // method, which the guided todo!() says already.
        let level = level_of(&state, ex);
        let key = match level {
            Level::Guided => format!("hint.{}.{}", ex.step.name, lesson.name),
            Level::Challenge => format!("hint.{}.{}.challenge", ex.step.name, lesson.name),
        };
        let hints = level.hints(lesson);
        let shown: usize = state.get(&key).and_then(|v| v.parse().ok()).unwrap_or(0);
        let total = hints.len();
        let index = shown.min(total - 1);
        let at_level = match level {
            Level::Guided => String::new(),
            Level::Challenge => " (challenge)".to_string(),
        };
        println!(
            "{}\n  {}\n",
            s.bold(&format!(
                "Step {n}, {}: hint {} of {total}{at_level}",
                lesson.name,
                index + 1
            )),
            s.todo(&format!("todo!(\"{}\")", level.todo(lesson)))
        );
        for line in hints[index].lines() {
            println!("  {line}");
        }
        println!();
        // The same command gives the next hint: with the part named when it
        // was named (it may not be the todo!() the learner is at).
        let again = match part {
            Some(p) => format!("cargo learn hint {n} {p}"),
            None => format!("cargo learn hint {n}"),
        };
        if index + 1 < total {
            println!(
                "{}",
                s.dim(&format!(
                    "`{again}` again for hint {} of {total}{}.",
                    index + 2,
                    if index + 2 == total {
                        " (nearly the answer)"
                    } else {
                        ""
                    }
                ))
            );
        } else {
            println!(
                "{}",
                s.dim(&format!(
                    "That was the last hint for `{}`. The answer is the step's own code: \
                     steps/step{n}/src/main.rs, at `// LESSON: {}`.",
                    lesson.name, lesson.name
                ))
            );
        }
        state.set(key, (index + 1).to_string());
        if let Err(e) = state.save() {
            eprintln!("cargo learn: could not remember the hint: {e}");
        }
        ExitCode::SUCCESS
    }

    // --- reset ----------------------------------------------------------------

    fn reset(&self, ex: &Exercise, level: Option<Level>, yes: bool) -> ExitCode {
        let file = ex.file();
        let mut state = State::load(&self.root);
        let n = ex.number();
        // The level: as told, else asked (the one kept is the default),
        // else the one kept.
        let level = match level {
            Some(level) => level,
            None if !yes && term::can_ask() => {
                let now = level_of(&state, ex);
                print!(
                    "Step {n}'s starter at which level: guided (each todo!() says how) or \
                     challenge (it says what; the first hint is how)? [{}] ",
                    now.name()
                );
                let _ = io::stdout().flush();
                let answer = read_answer();
                match answer.as_str() {
                    "" => now,
                    "g" => Level::Guided,
                    "c" => Level::Challenge,
                    word => {
                        match Level::parse(word) {
                            Some(level) => level,
                            None => {
                                println!("`{word}` is not a level (guided or challenge). Nothing changed.");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                }
            }
            None => level_of(&state, ex),
        };
        match ex.is_starter(level) {
            Err(e) => return fail(&e),
            Ok(true) => {
                set_level(&mut state, ex, level);
                let _ = state.save();
                println!(
                    "{file} is the starter already ({} level): nothing to reset.",
                    level.name()
                );
                return ExitCode::SUCCESS;
            }
            Ok(false) => {}
        }
        let untouched = match ex.untouched() {
            Ok(u) => u,
            Err(e) => return fail(&e),
        };
        // The other level's starter holds nothing of the learner's.
        let mine = ex.current().filter(|_| !untouched);
        if mine.is_some() && !yes {
            if !term::can_ask() {
                eprintln!(
                    "cargo learn: {file} has your edits, and there is no terminal to ask \
                     whether to throw them away; `cargo learn reset {n} {} --yes` does it \
                     without asking.",
                    level.name()
                );
                return ExitCode::FAILURE;
            }
            print!(
                "{file} has your edits. Throw them away and put the {} starter back? [y/N] ",
                level.name()
            );
            let _ = io::stdout().flush();
            if !matches!(read_answer().as_str(), "y" | "Y" | "yes" | "Yes") {
                println!("Nothing changed.");
                return ExitCode::SUCCESS;
            }
        }
        let mut kept = None;
        if let Some(mine) = &mine {
            let backup = state::dir(&self.root).join(format!("{}-exercise.rs", ex.step.name));
            if fs::create_dir_all(state::dir(&self.root))
                .and_then(|()| fs::write(&backup, mine))
                .is_ok()
            {
                kept = Some(backup);
            }
        }
        if let Err(e) = ex.restore(level) {
            return fail(&e);
        }
        set_level(&mut state, ex, level);
        state.forget(&format!("hint.{}.", ex.step.name));
        state.forget(&format!("todo.{}", ex.step.name));
        state.forget(&format!("result.{}", ex.step.name));
        let _ = state.save();
        println!("{file} is the {} starter again.", level.name());
        if let Some(backup) = kept {
            let shown = backup.strip_prefix(&self.root).unwrap_or(&backup);
            println!(
                "Your version is kept in {} (until the next reset).",
                shown.display()
            );
        }
        ExitCode::SUCCESS
    }

    // --- level ----------------------------------------------------------------

    fn level(&self, ex: &Exercise, level: Option<Level>) -> ExitCode {
        let n = ex.number();
        let file = ex.file();
        let mut state = State::load(&self.root);
        let now = level_of(&state, ex);
        let Some(level) = level else {
            let other = match now {
                Level::Guided => Level::Challenge,
                Level::Challenge => Level::Guided,
            };
            println!(
                "Step {n} is at the {} level. {}\n`cargo learn level {n} {}` changes it.",
                now.name(),
                describe_level(now, n),
                other.name()
            );
            return ExitCode::SUCCESS;
        };
        // A starter at either level (or no file) holds nothing of the
        // learner's: it becomes this level's starter at once.
        let untouched = match ex.untouched() {
            Ok(u) => u || ex.current().is_none(),
            Err(e) => return fail(&e),
        };
        if untouched {
            if let Err(e) = ex.restore(level) {
                return fail(&e);
            }
            state.forget(&format!("todo.{}", ex.step.name));
            state.forget(&format!("result.{}", ex.step.name));
        }
        set_level(&mut state, ex, level);
        if let Err(e) = state.save() {
            return fail(&format!("could not remember the level: {e}"));
        }
        if untouched {
            println!(
                "Step {n} is at the {} level: {file} is its {} starter now.\n{}",
                level.name(),
                level.name(),
                describe_level(level, n)
            );
        } else {
            println!(
                "Step {n} is at the {} level: its hints are that level's from now on.\n\
                 {file} has your edits and stays as it is; `cargo learn reset {n} {}` puts the\n\
                 {} starter there (it asks before it throws your edits away).",
                level.name(),
                level.name(),
                level.name()
            );
        }
        ExitCode::SUCCESS
    }
}

/// The level kept for step `ex` (guided, until the learner chooses).
fn level_of(state: &State, ex: &Exercise) -> Level {
    state
        .get(&format!("level.{}", ex.step.name))
        .and_then(Level::parse)
        .unwrap_or(Level::Guided)
}

fn set_level(state: &mut State, ex: &Exercise, level: Level) {
    state.set(format!("level.{}", ex.step.name), level.name());
}

/// What the learner meets at `level`, in a line.
fn describe_level(level: Level, n: u32) -> String {
    match level {
        Level::Guided => "Each todo!() says how: which calls to make.".to_string(),
        Level::Challenge => format!(
            "Each todo!() says what its part must achieve, not how; `cargo learn hint {n}`\n\
             gives the method first, then closer hints."
        ),
    }
}

/// One line typed at the terminal, trimmed (empty at end of input).
fn read_answer() -> String {
    let mut answer = String::new();
    let _ = io::stdin().lock().read_line(&mut answer);
    answer.trim().to_string()
}

/// Where a step stands, for `progress`.
enum Status {
    Missing,
    Untouched,
    Passing(usize),
    Failing {
        test: String,
        todo: Option<(String, String)>,
        /// The first line of the failure that says what went wrong.
        reason: Option<String>,
    },
    DoesNotCompile,
    Interrupted,
    Trouble(String),
}

impl Status {
    fn from(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Passed { tests } => Status::Passing(*tests),
            Outcome::Failed { first, .. } => Status::Failing {
                test: first.name.clone(),
                todo: first
                    .todo
                    .as_ref()
                    .map(|t| (t.lesson.clone(), t.at.clone())),
                reason: first.reason.clone(),
            },
            Outcome::DoesNotCompile { .. } => Status::DoesNotCompile,
            Outcome::Interrupted => Status::Interrupted,
            Outcome::TimedOut(d) => {
                Status::Trouble(format!("its tests ran over {} s", d.as_secs()))
            }
            Outcome::Trouble(e) => Status::Trouble(e.lines().next().unwrap_or("").to_string()),
        }
    }

    /// One line for the state file (none: not worth keeping): words, then
    /// for a failure its reason after ` | `.
    fn save(&self) -> Option<String> {
        match self {
            Status::Passing(n) => Some(format!("pass {n}")),
            Status::Failing { test, todo, reason } => {
                let words = match todo {
                    Some((lesson, at)) => format!("fail {test} {lesson} {at}"),
                    None => format!("fail {test}"),
                };
                Some(match reason {
                    Some(reason) => format!("{words} | {reason}"),
                    None => words,
                })
            }
            Status::DoesNotCompile => Some("nocompile".to_string()),
            _ => None,
        }
    }

    fn restore(saved: &str) -> Option<Status> {
        let (saved, reason) = match saved.split_once(" | ") {
            Some((words, reason)) => (words, Some(reason.to_string())),
            None => (saved, None),
        };
        let words: Vec<&str> = saved.split(' ').collect();
        match words.as_slice() {
            ["pass", n] => Some(Status::Passing(n.parse().ok()?)),
            ["fail", test] => Some(Status::Failing {
                test: test.to_string(),
                todo: None,
                reason,
            }),
            ["fail", test, lesson, at] => Some(Status::Failing {
                test: test.to_string(),
                todo: Some((lesson.to_string(), at.to_string())),
                reason,
            }),
            ["nocompile"] => Some(Status::DoesNotCompile),
            _ => None,
        }
    }

    /// The status word(s), and lines under it.
    fn describe(&self, s: Style) -> (String, Vec<String>) {
        match self {
            Status::Missing => (
                s.bad("missing"),
                vec!["(cargo learn reset puts it back)".into()],
            ),
            Status::Untouched => (s.dim("not started (the starter, untouched)"), vec![]),
            Status::Passing(n) => (s.good(&format!("passing ({n} tests)")), vec![]),
            Status::Failing { test, todo, reason } => {
                let mut lines = vec![format!("first failing test: {test}")];
                // Why, in a line: the todo!() it stopped at, or else what
                // the test found wrong first.
                match (todo, reason) {
                    (Some((lesson, at)), _) => {
                        lines.push(format!("stopped at {} ({at})", which_todo(lesson)))
                    }
                    (None, Some(reason)) => lines.push(format!("why: {reason}")),
                    (None, None) => {}
                }
                (s.bad("failing"), lines)
            }
            Status::DoesNotCompile => (s.bad("does not compile"), vec![]),
            Status::Interrupted => (s.dim("not checked (interrupted)"), vec![]),
            Status::Trouble(e) => (s.bad("not checked"), vec![e.clone()]),
        }
    }
}

/// The newest modification time of the files under `dir` (its sources and
/// tests), polled by `watch`: plain std, on macOS and Linux alike.
fn newest_change(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut dirs = vec![dir.join("src"), dir.join("tests")];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else if let Ok(t) = meta.modified() {
                newest = newest.max(Some(t));
            }
        }
    }
    newest
}

/// "the todo!() `name`", or "a todo!()" for one whose message does not
/// start with a part's name (one the learner wrote, say).
fn which_todo(lesson: &str) -> String {
    if lesson.is_empty() {
        "a todo!()".to_string()
    } else {
        format!("the todo!() `{lesson}`")
    }
}
