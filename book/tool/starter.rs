//! The learner's starter of a step, `steps/stepN/src/exercise.rs`, made from
//! the step's solution (`src/main.rs`) and its hints file: the same program
//! with the step's lesson cut out.
//!
//! The lesson is marked in the solution, in as few regions as the step
//! needs, each around the kqueue calls and decisions that are new in it:
//!
//! ```text
//! // LESSON: register_client
//! ev_set(&mut change, client as usize, EVFILT_READ, EV_ADD, 0, 0, ptr::null_mut());
//! ...
//! // LESSON_END
//! ```
//!
//! In the starter the region becomes `todo!("register_client: TEXT");`
//! where TEXT is the lesson's `>` line in `hints.md` ([`crate::hints`]). A
//! region whose code defines a value the code after it uses says so, with
//! the binding's type: `// LESSON: echo -> got: usize` becomes
//! `let got: usize = todo!("echo: TEXT");`, so everything after it still
//! compiles. The starter also loses the `ANCHOR` lines (the book's, not
//! the learner's) and gains a header saying how to check, run, get a hint
//! and start over. Everything else is the solution, byte for byte.
//!
//! Each step has a starter at two levels ([`Level`]), made from the same
//! regions: the *guided* one, whose `todo!()`s say how (the lesson's `>`
//! line: which calls to make), and the *challenge* one, whose `todo!()`s
//! say only what the part must achieve (its `> goal:` line); at that level
//! the method is the first hint. Only the guided starter is committed, as
//! `src/exercise.rs`; `cargo learn level N challenge` (or `reset`) writes
//! the challenge one there on demand, from [`for_step_at`].
//!
//! `scripts/generate.sh` writes the guided starters and `--check` (CI)
//! fails when one is stale. `cargo test -p book` does not look at their content: the
//! learner edits them. `cargo learn` calls [`for_step`] to tell a
//! learner's untouched starter from an edited one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::hints::{self, Lesson};
use crate::steps::Step;

/// Where a step's starter lives, relative to the step folder.
pub const FILE: &str = "src/exercise.rs";

/// The line that opens a lesson region (then ` NAME` or ` NAME -> PAT: TYPE`).
pub const START: &str = "// LESSON:";
/// The line that closes it.
pub const END: &str = "// LESSON_END";

/// rustfmt's default line width, which the starters are formatted to.
const MAX_WIDTH: usize = 100;

/// How much a starter's `todo!()`s say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The method: which calls to make (the lesson's `>` line).
    Guided,
    /// The goal: what the part must achieve (the `> goal:` line); the
    /// method is the first hint.
    Challenge,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::Guided, Level::Challenge];

    /// `guided` or `challenge`, as the learner types it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Guided => "guided",
            Level::Challenge => "challenge",
        }
    }

    pub fn parse(word: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == word)
    }

    /// The lesson's `todo!()` text at this level.
    pub fn todo(self, lesson: &Lesson) -> &str {
        match self {
            Level::Guided => &lesson.todo,
            Level::Challenge => &lesson.goal,
        }
    }

    /// The lesson's hints at this level, from a nudge to nearly the answer.
    pub fn hints(self, lesson: &Lesson) -> Vec<String> {
        match self {
            Level::Guided => lesson.hints.clone(),
            Level::Challenge => lesson.challenge_hints(),
        }
    }
}

/// One `// LESSON:` region of a solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    /// `got: usize` for `// LESSON: echo -> got: usize`.
    pub binding: Option<String>,
    /// 0-based lines of the start and end markers.
    pub start: usize,
    pub end: usize,
    /// The start marker's indentation, which the `todo!()` keeps.
    pub indent: String,
}

/// Whether a line is a lesson marker (the book's listings and the step
/// diffs leave these out).
pub fn is_marker(line: &str) -> bool {
    let t = line.trim();
    t.starts_with(START) || t == END
}

/// The lesson regions of a solution, in order. `path` is only for messages.
pub fn regions(path: &Path, src: &str) -> Result<Vec<Region>, String> {
    let mut found: Vec<Region> = Vec::new();
    let mut open: Option<Region> = None;
    for (i, line) in src.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let t = line.trim();
        if let Some(rest) = t.strip_prefix(START) {
            if let Some(o) = &open {
                return Err(format!(
                    "{}: `{START}` inside the region `{}` (line {}); close it with `{END}` first",
                    at(),
                    o.name,
                    o.start + 1
                ));
            }
            let (name, binding) = match rest.trim().split_once(" -> ") {
                Some((n, b)) => (n.trim(), Some(b.trim().to_string())),
                None => (rest.trim(), None),
            };
            if !hints::is_name(name) {
                return Err(format!(
                    "{}: `{START} {name}`: name the lesson in lower case, digits and _",
                    at()
                ));
            }
            if let Some(b) = &binding {
                if !b.contains(':') {
                    return Err(format!(
                        "{}: `-> {b}`: give the binding's type, as in `-> got: usize`",
                        at()
                    ));
                }
            }
            if found.iter().any(|r| r.name == name) {
                return Err(format!("{}: a second lesson named `{name}`", at()));
            }
            let indent = line[..line.len() - line.trim_start().len()].to_string();
            open = Some(Region {
                name: name.to_string(),
                binding,
                start: i,
                end: i,
                indent,
            });
        } else if t == END {
            let Some(mut region) = open.take() else {
                return Err(format!("{}: `{END}` with no `{START}` before it", at()));
            };
            if i == region.start + 1 {
                return Err(format!("{}: the lesson `{}` is empty", at(), region.name));
            }
            region.end = i;
            found.push(region);
        }
    }
    if let Some(o) = open {
        return Err(format!(
            "{}:{}: the lesson `{}` is never closed with `{END}`",
            path.display(),
            o.start + 1,
            o.name
        ));
    }
    Ok(found)
}

/// `steps/stepN/src/exercise.rs`, relative to the repository root.
pub fn path(step: &Step) -> PathBuf {
    step.file(FILE)
}

/// The (guided) starter of `step`, made from its `src/main.rs` and
/// `hints.md` under `root`: the one `scripts/generate.sh` commits.
pub fn for_step(root: &Path, step: &Step) -> Result<String, String> {
    for_step_at(root, step, Level::Guided)
}

/// The starter of `step` at `level`.
pub fn for_step_at(root: &Path, step: &Step, level: Level) -> Result<String, String> {
    let main = step.file("src/main.rs");
    let hints_path = step.file(hints::FILE);
    let solution =
        fs::read_to_string(root.join(&main)).map_err(|e| format!("{}: {e}", main.display()))?;
    let hints_text = fs::read_to_string(root.join(&hints_path)).map_err(|e| {
        format!(
            "{}: {e} (each step has one: the todo!() text and the hints of each lesson)",
            hints_path.display()
        )
    })?;
    let lessons = hints::parse(&hints_path, &hints_text)?;
    generate_at(step, &main, &solution, &hints_path, &lessons, level)
}

/// The guided starter, from the solution's text and its step's lessons.
pub fn generate(
    step: &Step,
    main_path: &Path,
    solution: &str,
    hints_path: &Path,
    lessons: &[Lesson],
) -> Result<String, String> {
    generate_at(
        step,
        main_path,
        solution,
        hints_path,
        lessons,
        Level::Guided,
    )
}

/// The starter at `level`, from the solution's text and its step's lessons.
pub fn generate_at(
    step: &Step,
    main_path: &Path,
    solution: &str,
    hints_path: &Path,
    lessons: &[Lesson],
    level: Level,
) -> Result<String, String> {
    let regions = regions(main_path, solution)?;
    if regions.is_empty() {
        return Err(format!(
            "{}: no `{START} NAME` ... `{END}` region: mark the lesson of the step, the code the starter leaves as todo!()",
            main_path.display()
        ));
    }
    for r in &regions {
        if !lessons.iter().any(|l| l.name == r.name) {
            return Err(format!(
                "{}: no `## {}` section for the lesson `{START} {}` of {}",
                hints_path.display(),
                r.name,
                r.name,
                main_path.display()
            ));
        }
    }
    for l in lessons {
        if !regions.iter().any(|r| r.name == l.name) {
            return Err(format!(
                "{}: `## {}` names no lesson of {} (no `{START} {}` there)",
                hints_path.display(),
                l.name,
                main_path.display(),
                l.name
            ));
        }
    }

    let lines: Vec<&str> = solution.lines().collect();
    let mut out = String::new();
    let doc_end = lines
        .iter()
        .position(|l| !l.starts_with("//!"))
        .unwrap_or(lines.len());
    out.push_str(&header(step, &lines[..doc_end], level));
    let mut i = doc_end;
    while i < lines.len() {
        let line = lines[i];
        if let Some(r) = regions.iter().find(|r| r.start == i) {
            let lesson = lessons
                .iter()
                .find(|l| l.name == r.name)
                .expect("checked above");
            out.push_str(&todo_line(r, level.todo(lesson)));
            i = r.end + 1;
            continue;
        }
        let t = line.trim_start();
        if !(t.starts_with("// ANCHOR:") || t.starts_with("// ANCHOR_END:")) {
            out.push_str(line);
            out.push('\n');
        }
        i += 1;
    }
    Ok(out)
}

/// The starter's `//!` header: the solution's title marked as the
/// learner's, how to work on it, then the rest of the solution's header.
fn header(step: &Step, doc: &[&str], level: Level) -> String {
    let (n, name) = (step.number, &step.name);
    let title = doc
        .first()
        .and_then(|l| l.strip_prefix("//! # "))
        .unwrap_or(name.as_str());
    let (title_tag, todos, stuck, wrote) = match level {
        Level::Guided => (
            "your turn",
            "Each `todo!()` below says what to write in its place;
//! everything else is given, and compiles.",
            format!("`cargo learn hint {n}`. Start over: `cargo learn reset {n}`."),
            "`scripts/generate.sh` wrote this file from `src/main.rs` and
//! `hints.md`",
        ),
        Level::Challenge => (
            "your turn, challenge",
            "Each `todo!()` below says what its part must achieve, not
//! how: finding the calls is yours. Everything else is given, and
//! compiles.",
            format!(
                "`cargo learn hint {n}` (the first hint is the method). Start
//!   over: `cargo learn reset {n}` (it asks which level)."
            ),
            "`cargo learn` wrote this file, at the challenge level, from
//! `src/main.rs` and `hints.md`",
        ),
    };
    let mut out = format!(
        "//! # {title} ({title_tag})
//!
//! Your version of step {n}: the program of `src/main.rs` with the step's
//! lesson cut out. {todos}
//!
//! - Check it: `cargo learn check {n}` (`cargo test -p {name} --features
//!   exercise`: the step's own tests, run against this file).
//! - Run it: `cargo run -p {name} --features exercise`.
//! - Stuck: {stuck}
//! - The answer: `src/main.rs`, the code the book's chapter shows.
//!
//! {wrote}; it is yours to edit. Without `--features exercise`, the
//! same commands build and test `src/main.rs`.
//!
//! What the finished server does (the header of `src/main.rs`):
"
    );
    for line in doc.iter().skip(1) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The `todo!()` that stands for a region, formatted as rustfmt would.
fn todo_line(region: &Region, text: &str) -> String {
    let mut escaped = String::new();
    for c in format!("{}: {text}", region.name).chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '{' => escaped.push_str("{{"),
            '}' => escaped.push_str("}}"),
            c => escaped.push(c),
        }
    }
    // rustfmt's choices, which a test checks against rustfmt itself: the
    // statement on one line when it fits; for a `let`, else broken after
    // `=` when the rest then fits; else the string on a line of its own
    // when that fits (with room for a comma); else one line as it is.
    let todo = format!("todo!(\"{escaped}\");");
    let indent = &region.indent;
    // The string's line: indentation, quotes, and room for a comma.
    let own_line = width(indent) + 4 + width(&escaped) + 2 < MAX_WIDTH;
    let three_lines =
        |head: &str| format!("{indent}{head}todo!(\n{indent}    \"{escaped}\"\n{indent});\n");
    match &region.binding {
        None => {
            let one = format!("{indent}{todo}");
            if width(&one) <= MAX_WIDTH || !own_line {
                format!("{one}\n")
            } else {
                three_lines("")
            }
        }
        Some(binding) => {
            let one = format!("{indent}let {binding} = {todo}");
            let second = format!("{indent}    {todo}");
            if width(&one) <= MAX_WIDTH {
                format!("{one}\n")
            } else if width(&second) <= MAX_WIDTH {
                format!("{indent}let {binding} =\n{second}\n")
            } else if own_line {
                three_lines(&format!("let {binding} = "))
            } else {
                format!("{one}\n")
            }
        }
    }
}

fn width(line: &str) -> usize {
    line.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Step {
        Step {
            name: "step9".into(),
            number: 9,
            dir: PathBuf::from("steps/step9"),
        }
    }

    fn lesson(name: &str, todo: &str) -> Lesson {
        Lesson {
            name: name.into(),
            todo: todo.into(),
            goal: format!("goal of {name}"),
            hints: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    const SOLUTION: &str = "//! # Step 9: a test
//!
//! What it does.

use x;

pub fn main() {
    // ANCHOR: open
    // LESSON: open -> q: Queue
    let q = Queue::new();
    // LESSON_END
    // ANCHOR_END: open
    loop {
        // LESSON: wait
        q.wait();
        q.wait_more();
        // LESSON_END
    }
}
";

    /// A plain region becomes one `todo!()` statement, a region with a
    /// binding a typed `let`, at the marker's indentation; anchors go,
    /// everything else stays; the header says how to work on the file.
    #[test]
    fn cuts_each_region_to_a_todo_and_keeps_the_rest() {
        let lessons = [
            lesson("open", "make the queue"),
            lesson("wait", "wait for {events} \"now\""),
        ];
        let out = generate(
            &step(),
            Path::new("main.rs"),
            SOLUTION,
            Path::new("hints.md"),
            &lessons,
        )
        .expect("generates");
        assert!(
            out.starts_with("//! # Step 9: a test (your turn)\n"),
            "{out}"
        );
        assert!(out.contains("`cargo learn hint 9`"), "{out}");
        assert!(out.contains("//! What it does.\n\nuse x;\n"), "{out}");
        let body = &out[out.find("pub fn main").expect("main")..];
        assert_eq!(
            body,
            "pub fn main() {
    let q: Queue = todo!(\"open: make the queue\");
    loop {
        todo!(\"wait: wait for {{events}} \\\"now\\\"\");
    }
}
"
        );
    }

    /// At the challenge level each `todo!()` says the lesson's goal, and
    /// the header says so; everything else is the guided starter's.
    #[test]
    fn the_challenge_starter_says_the_goals() {
        let lessons = [lesson("open", "make the queue"), lesson("wait", "wait")];
        let at = |level| {
            generate_at(
                &step(),
                Path::new("main.rs"),
                SOLUTION,
                Path::new("hints.md"),
                &lessons,
                level,
            )
            .expect("generates")
        };
        let (guided, challenge) = (at(Level::Guided), at(Level::Challenge));
        assert!(
            challenge.starts_with("//! # Step 9: a test (your turn, challenge)\n"),
            "{challenge}"
        );
        assert!(
            challenge.contains("(the first hint is the method)"),
            "{challenge}"
        );
        let body = |s: &str| s[s.find("pub fn main").expect("main")..].to_string();
        assert_eq!(
            body(&challenge),
            body(&guided)
                .replace("open: make the queue", "open: goal of open")
                .replace("wait: wait\"", "wait: goal of wait\"")
        );
        assert_eq!(Level::parse("challenge"), Some(Level::Challenge));
        assert_eq!(Level::parse("hard"), None);
    }

    /// The `todo!()` lines are formatted exactly as rustfmt formats them,
    /// at every indentation and length (checked against rustfmt itself
    /// when it is installed, as it is wherever cargo fmt runs).
    #[test]
    fn formats_todos_as_rustfmt_does() {
        let region = |indent: usize, binding: Option<&str>| Region {
            name: "echo".into(),
            binding: binding.map(str::to_string),
            start: 0,
            end: 2,
            indent: " ".repeat(indent),
        };
        let typed = Some("got: usize");
        assert_eq!(
            todo_line(&region(4, typed), "short"),
            "    let got: usize = todo!(\"echo: short\");\n"
        );
        let text = "x".repeat(60);
        assert_eq!(
            todo_line(&region(16, typed), &text),
            format!(
                "{0}let got: usize =\n{0}    todo!(\"echo: {text}\");\n",
                " ".repeat(16)
            )
        );
        assert_eq!(
            todo_line(&region(16, typed), &"y".repeat(120))
                .lines()
                .count(),
            1
        );

        let mut sample = String::new();
        for indent in (4..=32).step_by(4) {
            for len in (20..140).step_by(3) {
                for binding in [None, typed] {
                    let depth = indent / 4;
                    sample.push_str("fn f() {\n");
                    for d in 1..depth {
                        sample.push_str(&format!("{}{{\n", "    ".repeat(d)));
                    }
                    sample.push_str(&todo_line(&region(indent, binding), &"z".repeat(len)));
                    for d in (1..depth).rev() {
                        sample.push_str(&format!("{}}}\n", "    ".repeat(d)));
                    }
                    sample.push_str("}\n");
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("book-starter-fmt-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join("sample.rs");
        fs::write(&file, &sample).expect("write sample");
        let out = std::process::Command::new("rustfmt")
            .args(["--edition", "2021", "--check"])
            .arg(&file)
            .output();
        let _ = fs::remove_dir_all(&dir);
        match out {
            Err(e) => eprintln!("rustfmt not found ({e}); only the fixed cases were checked"),
            Ok(out) => assert!(
                out.status.success(),
                "rustfmt formats some todo!() lines differently:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }

    /// Markers that do not pair up, a lesson without hints, and hints for
    /// no lesson are refused with the line or section named.
    #[test]
    fn refuses_broken_markers_and_unmatched_hints() {
        let p = Path::new("main.rs");
        let open = regions(p, "// LESSON: a\nx\n").unwrap_err();
        assert!(open.contains("never closed"), "{open}");
        let stray = regions(p, "x\n// LESSON_END\n").unwrap_err();
        assert!(stray.contains("main.rs:2"), "{stray}");
        let nested = regions(p, "// LESSON: a\n// LESSON: b\n// LESSON_END\n").unwrap_err();
        assert!(nested.contains("inside the region `a`"), "{nested}");
        let untyped = regions(p, "// LESSON: a -> got\nx\n// LESSON_END\n").unwrap_err();
        assert!(untyped.contains("type"), "{untyped}");
        let empty = regions(p, "// LESSON: a\n// LESSON_END\n").unwrap_err();
        assert!(empty.contains("empty"), "{empty}");

        let h = Path::new("hints.md");
        let missing = generate(&step(), p, SOLUTION, h, &[lesson("open", "x")]).unwrap_err();
        assert!(missing.contains("no `## wait` section"), "{missing}");
        let extra = [
            lesson("open", "x"),
            lesson("wait", "y"),
            lesson("gone", "z"),
        ];
        let extra = generate(&step(), p, SOLUTION, h, &extra).unwrap_err();
        assert!(extra.contains("`## gone` names no lesson"), "{extra}");
        let none = generate(&step(), p, "fn main() {}\n", h, &[]).unwrap_err();
        assert!(none.contains("no `// LESSON: NAME`"), "{none}");
    }
}
