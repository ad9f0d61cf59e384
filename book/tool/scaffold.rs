//! The scaffolder: `scripts/new-step.sh` (`book-gen --new-step`) makes step
//! N+1 from the last step, N.
//!
//! A step's code and tests do not write their own name (stepkit's `name!()`
//! and the harness's `this_step!()` take it from Cargo), so the new folder
//! is the old one copied, with the name set only where a step is allowed to
//! write it: `Cargo.toml`'s package and binary (and its description), the
//! README, the hints, the transcript scenario's saved files, and the
//! `cargo test -p stepN` lines of `src/main.rs`'s module doc. Anything else
//! in the copy that still names the old step is an error, said at once.
//! Left out of the copy: step N's exercise solutions (`exercises/`), its
//! classic mistakes (`mistakes/`: step N's lesson's, not the new one's) and
//! its starter (`src/exercise.rs`, which `scripts/generate.sh` writes).
//!
//! It also writes the chapter's skeleton, `book/src/stepN+1-SLUG.md`, with
//! the sections every step chapter has ([`SECTIONS`]), the includes of
//! everything generated for the step, and a `TODO` where prose goes; adds
//! the chapter to `book/src/SUMMARY.md`; and lists the prose that must be
//! written by hand. Until it is, the new step is the old one under a new
//! number: the lesson is the author's to write.

use std::fs;
use std::path::{Path, PathBuf};

use crate::includes::anchor_start;
use crate::steps::{self, Step};
use crate::{readme, scenario, starter};

/// The sections every step chapter has, in this order (the book's shape
/// test holds every chapter to it).
pub const SECTIONS: &[&str] = &[
    "What you'll build",
    "Run it",
    "The kqueue ideas",
    "Your turn",
    "Walkthrough",
    "What changed since the previous step",
    "Test it",
    "Pitfalls",
    "Exercises",
    "Further reading",
];

/// The files of a step that may write its name, and so are renamed.
const NAMED_FILES: &[&str] = &[
    "Cargo.toml",
    "README.md",
    "hints.md",
    "transcripts.txt",
    "src/main.rs",
];

/// What the scaffolder did, and what is left for a person.
#[derive(Debug)]
pub struct Scaffolded {
    pub step: Step,
    /// Files written, relative to the repository root.
    pub written: Vec<PathBuf>,
    /// Prose to write or read over by hand, one item each.
    pub by_hand: Vec<String>,
}

/// `the echo loop` -> `the-echo-loop`: a chapter's file name from a title.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Whether `word` occurs in `text` as a whole word (`step8`, not
/// `step80`).
fn whole_word_at(text: &str, at: usize, word: &str) -> bool {
    let before = text[..at].chars().next_back();
    let after = text[at + word.len()..].chars().next();
    let inside = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    !inside(before) && !inside(after)
}

/// `text` with every whole-word `from` made `to`.
fn rename_word(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in text.match_indices(from) {
        if at < rest || !whole_word_at(text, at, from) {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(to);
        rest = at + from.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// `cargo learn check 8` (and hint, reset, watch) -> the new number.
fn rename_learn_commands(text: &str, from: u32, to: u32) -> String {
    let mut out = text.to_string();
    for verb in ["check", "hint", "reset", "watch"] {
        out = rename_word(
            &out,
            &format!("cargo learn {verb} {from}"),
            &format!("cargo learn {verb} {to}"),
        );
    }
    out
}

/// A step's named file with the new step's name, where the file may write
/// it. `src/main.rs` only in its leading `//!` doc (`cargo test -p step8`).
fn renamed(file: &str, text: &str, old: &Step, new: &Step, title: &str) -> String {
    match file {
        "src/main.rs" => {
            let mut out = String::with_capacity(text.len());
            let mut in_doc = true;
            for line in text.split_inclusive('\n') {
                in_doc &= line.trim_start().starts_with("//!");
                if in_doc {
                    out.push_str(&rename_word(line, &old.name, &new.name));
                } else {
                    out.push_str(line);
                }
            }
            out
        }
        "README.md" => {
            let body = text.split_once('\n').map_or("", |(_, b)| b);
            let body = rename_learn_commands(
                &rename_word(body, &old.name, &new.name),
                old.number,
                new.number,
            );
            format!("# Step {}: {title}\n{body}", new.number)
        }
        "Cargo.toml" => {
            let mut out = String::new();
            for line in text.split_inclusive('\n') {
                if line.starts_with("description = ") {
                    out.push_str(&format!(
                        "description = \"kqueue, step by step: Step {}: {}\"\n",
                        new.number,
                        title.replace('"', "\\\"")
                    ));
                } else if line.trim_end() == format!("name = \"{}\"", old.name) {
                    out.push_str(&format!("name = \"{}\"\n", new.name));
                } else {
                    out.push_str(&rename_word(line, &old.name, &new.name));
                }
            }
            out
        }
        _ => rename_learn_commands(
            &rename_word(text, &old.name, &new.name),
            old.number,
            new.number,
        ),
    }
}

/// Copies `from` to `to`, every file and folder but those `skip` says.
fn copy_tree(
    from: &Path,
    to: &Path,
    rel: &Path,
    skip: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let here = from.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&here)
        .map_err(|e| format!("{}: {e}", here.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        if skip(&rel) {
            continue;
        }
        if entry.path().is_dir() {
            fs::create_dir_all(to.join(&rel))
                .map_err(|e| format!("{}: {e}", to.join(&rel).display()))?;
            copy_tree(from, to, &rel, skip, out)?;
        } else {
            fs::copy(entry.path(), to.join(&rel))
                .map_err(|e| format!("{}: {e}", to.join(&rel).display()))?;
            out.push(rel);
        }
    }
    Ok(())
}

/// The chapter's skeleton: the sections every chapter has, the includes of
/// what is generated for the step, and `TODO` where the prose goes.
pub fn chapter_skeleton(
    root: &Path,
    old: &Step,
    new: &Step,
    title: &str,
) -> Result<String, String> {
    let main_rs = new.file("src/main.rs");
    let src = fs::read_to_string(root.join(&main_rs))
        .map_err(|e| format!("{}: {e}", main_rs.display()))?;
    let lessons = starter::regions(&main_rs, &src)?;
    let anchors: Vec<&str> = src.lines().filter_map(anchor_start).collect();
    let scenario_file = new.file(scenario::FILE);
    let saved = fs::read_to_string(root.join(&scenario_file))
        .map_err(|e| format!("{}: {e}", scenario_file.display()))
        .and_then(|t| scenario::parse(name_of(new), &t))
        .map(|c| scenario::saved_files(&c))?;
    let (n, name) = (new.number, &new.name);
    let mut md = format!("# Step {n}: {title}\n");
    for section in SECTIONS {
        md.push_str(&format!("\n## {section}\n\n"));
        match *section {
            "What you'll build" => md.push_str(&format!(
                "TODO: what this step adds to [step {}](), in a paragraph, and what the learner will see it do.\n",
                old.number
            )),
            "Run it" => {
                md.push_str(&format!("TODO: how to run it (`cargo run -p {name}`) and what each terminal shows.\n"));
                for file in &saved {
                    if !file.ends_with("-your-turn.txt") {
                        md.push_str(&format!("\n```console\n{{{{#include ../generated/transcripts/{file}}}}}\n```\n"));
                    }
                }
            }
            "Your turn" => {
                md.push_str(&format!(
                    "`steps/{name}/src/exercise.rs` is this server with the lesson cut out; {} `todo!()`s:\n\n",
                    lessons.len()
                ));
                for lesson in &lessons {
                    md.push_str(&format!("- `{}`: TODO: what it must achieve;\n", lesson.name));
                }
                md.push_str(&format!(
                    "\nRun the step's own tests against it:\n\n```sh\ncargo learn check {n}\n```\n\n\
                     The first run stops at the first `todo!()` the server reaches:\n\n\
                     ```console\n{{{{#include ../generated/transcripts/{name}-your-turn.txt}}}}\n```\n"
                ));
            }
            "Walkthrough" => {
                md.push_str("TODO: the finished code, part by part.\n");
                for anchor in &anchors {
                    md.push_str(&format!(
                        "\n_steps/{name}/src/main.rs_, TODO: name the function, type or variable this listing (anchor {anchor}) shows, and say what it does.\n\n```rust\n{{{{#include ../../steps/{name}/src/main.rs:{anchor}}}}}\n```\n"
                    ));
                }
            }
            "What changed since the previous step" => md.push_str(&format!(
                "TODO: the change in a sentence (the step's leading `//!` doc and its lesson markers are left out of the diff).\n\n\
                 ```diff\n{{{{#include ../generated/diffs/{}-{name}.diff}}}}\n```\n",
                old.name
            )),
            "Test it" => md.push_str(&format!(
                "```sh\ncargo test -p {name}\n```\n\n{{{{#include ../generated/tests/{name}.md}}}}\n"
            )),
            "Exercises" => {
                for i in 1..=3 {
                    md.push_str(&format!(
                        "{i}. TODO: an exercise that keeps the step's contract (its tests still pass).\n\n   \
                         <details><summary>Hint</summary>\n\n   TODO\n\n   </details>\n\n"
                    ));
                }
            }
            "Further reading" => md.push_str(&format!(
                "- Previous: [Step {}]({}).\n",
                old.number,
                chapter_file(root, old).unwrap_or_default()
            )),
            _ => md.push_str("TODO\n"),
        }
    }
    Ok(md)
}

fn name_of(step: &Step) -> &str {
    &step.name
}

/// The chapter of a step, as SUMMARY.md names it (`step8-at-the-limits.md`).
pub fn chapter_file(root: &Path, step: &Step) -> Option<String> {
    let summary = fs::read_to_string(root.join("book/src/SUMMARY.md")).ok()?;
    let prefix = format!("{}-", step.name);
    summary.lines().find_map(|l| {
        let file = l.split_once("](")?.1.strip_suffix(')')?;
        file.starts_with(&prefix).then(|| file.to_string())
    })
}

/// Makes step N+1 from the last step N (see the module docs). `title`
/// becomes the README's and the chapter's title (`flow control`).
pub fn new_step(root: &Path, title: &str) -> Result<Scaffolded, String> {
    let title = title.trim();
    if title.is_empty() {
        return Err("the new step needs a title, e.g. `flow control`".into());
    }
    let all = steps::discover(root)?;
    let old = all
        .last()
        .cloned()
        .ok_or("no steps/stepN folder to start from")?;
    let number = old.number + 1;
    let new = Step {
        name: format!("step{number}"),
        number,
        dir: Path::new("steps").join(format!("step{number}")),
    };
    if root.join(&new.dir).exists() {
        return Err(format!("{} exists already", new.dir.display()));
    }
    let old_chapter = chapter_file(root, &old)
        .ok_or_else(|| format!("book/src/SUMMARY.md names no chapter for {}", old.name))?;

    // The folder: a copy, renamed where a step may write its name.
    let skip = |rel: &Path| {
        rel == Path::new("exercises")
            || rel == Path::new("mistakes")
            || rel == Path::new(starter::FILE)
            || rel.starts_with("target")
    };
    let mut copied = Vec::new();
    fs::create_dir_all(root.join(&new.dir)).map_err(|e| format!("{}: {e}", new.dir.display()))?;
    copy_tree(
        &root.join(&old.dir),
        &root.join(&new.dir),
        Path::new(""),
        &skip,
        &mut copied,
    )?;
    let mut still_named = Vec::new();
    for rel in &copied {
        let path = root.join(&new.dir).join(rel);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let file = rel.to_string_lossy().replace('\\', "/");
        let text = if NAMED_FILES.contains(&file.as_str()) {
            let t = renamed(&file, &text, &old, &new, title);
            fs::write(&path, &t).map_err(|e| format!("{}: {e}", path.display()))?;
            t
        } else {
            text
        };
        if text
            .match_indices(&old.name)
            .any(|(at, _)| whole_word_at(&text, at, &old.name))
        {
            still_named.push(new.dir.join(rel).display().to_string());
        }
    }
    if !still_named.is_empty() {
        let _ = fs::remove_dir_all(root.join(&new.dir));
        return Err(format!(
            "these files of {} write its name, so a copy would still say {}: {}\n\
             derive it instead (stepkit::name!(), harness::this_step!(), env!(\"CARGO_PKG_NAME\"))",
            old.name,
            old.name,
            still_named.join(", ")
        ));
    }

    // The chapter and its line in SUMMARY.md, after the last step's.
    let chapter = format!("{}-{}.md", new.name, slug(title));
    let skeleton = chapter_skeleton(root, &old, &new, title)?;
    fs::write(root.join("book/src").join(&chapter), skeleton)
        .map_err(|e| format!("book/src/{chapter}: {e}"))?;
    let summary_path = root.join("book/src/SUMMARY.md");
    let summary =
        fs::read_to_string(&summary_path).map_err(|e| format!("book/src/SUMMARY.md: {e}"))?;
    let mut lines: Vec<String> = summary.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("]({old_chapter})")))
        .ok_or_else(|| format!("book/src/SUMMARY.md: no line for {old_chapter}"))?;
    lines.insert(at + 1, format!("- [Step {number}: {title}]({chapter})"));
    fs::write(&summary_path, lines.join("\n") + "\n")
        .map_err(|e| format!("book/src/SUMMARY.md: {e}"))?;

    let mut written: Vec<PathBuf> = copied.iter().map(|r| new.dir.join(r)).collect();
    written.push(Path::new("book/src").join(&chapter));
    written.push(PathBuf::from("book/src/SUMMARY.md"));
    let dir = new.dir.display();
    let by_hand = vec![
        format!("{dir}/src/main.rs: the step's server: its `//!` doc, its code, `// ANCHOR:`s and `// LESSON:` regions"),
        format!("{dir}/README.md: the line under the title (the root README's row), Goal, Your turn, Run, Test, Read, Stuck?"),
        format!("{dir}/hints.md: a section per lesson, from a nudge to nearly the answer"),
        format!("{dir}/transcripts.txt: the chapter's Run it session"),
        format!("{dir}/tests/: the step's own tests; tests/stages.rs names its stages, tests/cli.rs its options"),
        format!("{dir}/mistakes/: at least two classic mistakes of the new lesson, each a diff against src/main.rs whose first line names the test that catches it"),
        format!("book/src/{chapter}: every TODO"),
        format!("book/src/{old_chapter}: its Further reading's Previous/Next line should point on to step {number}"),
        format!("book/src/instructors.md: a session's timetable row, a demo and the mistakes people make for step {number}"),
        "book/src/appendix-c-solutions.md: the answers to the new step's exercises (and steps/…/exercises/*.diff for code ones)".to_string(),
        format!("{}: nothing by hand (the steps' table is generated), but read the step over", readme::FILE),
    ];
    Ok(Scaffolded {
        step: new,
        written,
        by_hand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's name is renamed as a whole word only: `step8` and its
    /// `cargo learn` commands, not `step80` or `step 8`'s prose.
    #[test]
    fn renames_the_step_as_a_whole_word() {
        let text = "cargo test -p step8; step80; the step8 binary; step 8; cargo learn check 8, cargo learn hint 80";
        assert_eq!(
            rename_learn_commands(&rename_word(text, "step8", "step9"), 8, 9),
            "cargo test -p step9; step80; the step9 binary; step 8; cargo learn check 9, cargo learn hint 80"
        );
    }

    /// A chapter's file name comes from its title.
    #[test]
    fn slugs_a_title() {
        assert_eq!(slug("close() vs EV_DELETE"), "close-vs-ev-delete");
        assert_eq!(slug("flow control"), "flow-control");
    }
}
