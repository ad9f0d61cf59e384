//! A step's hints file, `steps/stepN/hints.md`: for each lesson of the step
//! (each `// LESSON:` region of its `src/main.rs`), what the guided
//! starter's `todo!()` says (the method), what the challenge starter's says
//! (the goal), and hints graded from a nudge to nearly the answer.
//! `cargo learn hint N` shows them one at a time; the starter generator
//! ([`crate::starter`]) takes each `todo!()`'s text from here.
//!
//! # Format
//!
//! ```text
//! # Step 3: hints
//!
//! Anything before the first `##` is a note for the reader of the file.
//!
//! ## register_client
//!
//! > register the new client for EVFILT_READ on the same queue
//! > goal: the new client's bytes wake the loop, as the listener's do
//!
//! 1. A nudge: which call has this step already used for the listener?
//! 2. More: ...
//!    (a hint may take several lines, indented under its number)
//! 3. Nearly the answer: ...
//! ```
//!
//! Each `## NAME` section is one lesson, named as its marker. Its two `>`
//! lines are the two starters' `todo!()` texts: the first the guided
//! starter's, which says how (the calls to make); the second, starting
//! `goal:`, the challenge starter's, which says only what the part must
//! achieve, as the learner could observe it, and names no kqueue call
//! ([`names_a_call`]). Its numbered items are the hints, in order (at
//! least [`MIN_HINTS`]). At the challenge level the guided text is the
//! first hint ([`Lesson::challenge_hints`]), then these.
//!
//! A lesson that makes a value (`// LESSON: echo -> got: usize`) is a
//! `let got: usize = todo!("...");` in the starter, and the statements that
//! make `got` do not fit where the `todo!()` is: its last hint starts
//! ``In place of the whole `let got: usize = todo!(...);` statement:``,
//! then shows them (the shape test checks it).

use std::path::Path;

/// The file's name in a step folder.
pub const FILE: &str = "hints.md";

/// Every lesson has at least this many hints: a nudge, a closer look, and
/// nearly the answer.
pub const MIN_HINTS: usize = 3;

/// One lesson's part of the hints file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    /// The name of its `// LESSON: NAME` marker.
    pub name: String,
    /// What the guided starter's `todo!()` says: the method.
    pub todo: String,
    /// What the challenge starter's `todo!()` says: the goal (the `> goal:`
    /// line).
    pub goal: String,
    /// The hints, from a nudge to nearly the answer; each may span lines.
    pub hints: Vec<String>,
}

/// What a goal may not name: the kqueue calls, flags and filters whose
/// choice is the lesson (matched without regard to case).
pub const CALL_WORDS: [&str; 4] = ["EV_", "EVFILT_", "kevent", "ev_set"];

/// The first of [`CALL_WORDS`] that `text` names, if any.
pub fn names_a_call(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    CALL_WORDS
        .into_iter()
        .find(|w| lower.contains(&w.to_ascii_lowercase()))
}

/// How the first challenge hint introduces the guided text.
pub const METHOD: &str = "The method, as the guided starter's todo!() puts it:";

impl Lesson {
    /// The hints at the challenge level: first the method (the guided
    /// starter's `todo!()` text), then the hints of the guided level.
    pub fn challenge_hints(&self) -> Vec<String> {
        let mut hints = vec![format!(
            "{METHOD}
{}",
            self.todo
        )];
        hints.extend(self.hints.iter().cloned());
        hints
    }
}

/// Parses a hints file. `path` is only for messages.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Lesson>, String> {
    let mut lessons: Vec<Lesson> = Vec::new();
    let mut in_hint = false;
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        if let Some(name) = line.strip_prefix("## ") {
            let name = name.trim();
            if !is_name(name) {
                return Err(format!(
                    "{}: `## {name}`: a section is named as its lesson marker (lower case, digits, _)",
                    at()
                ));
            }
            if lessons.iter().any(|l| l.name == name) {
                return Err(format!("{}: a second section `## {name}`", at()));
            }
            lessons.push(Lesson {
                name: name.to_string(),
                todo: String::new(),
                goal: String::new(),
                hints: Vec::new(),
            });
            in_hint = false;
            continue;
        }
        let Some(lesson) = lessons.last_mut() else {
            continue; // the note before the first section
        };
        let item = numbered_item(line);
        // A code block may open on a hint's own line: "3. ```rust".
        let fence = item.unwrap_or(line).trim_start().starts_with("```");
        if in_fence {
            // Inside a code block: part of the hint, whatever it looks like.
            push_line(lesson, line);
            in_fence = !fence;
            continue;
        }
        if let (Some(quoted), false) = (line.strip_prefix("> "), in_hint) {
            let (slot, what) = match quoted.trim().strip_prefix("goal:") {
                Some(_) => (&mut lesson.goal, "goal"),
                None => (&mut lesson.todo, "todo!() text"),
            };
            if !slot.is_empty() {
                return Err(format!(
                    "{}: `## {}` has a second {what} line; each is one `>` line",
                    at(),
                    lesson.name
                ));
            }
            let text = quoted.trim();
            *slot = text
                .strip_prefix("goal:")
                .unwrap_or(text)
                .trim()
                .to_string();
            if what == "goal" {
                if let Some(word) = names_a_call(slot) {
                    return Err(format!(
                        "{}: `## {}`: the goal names `{word}`; say what the part must achieve, \
                         as the learner would see it, not which call makes it so (that is \
                         the first hint at the challenge level)",
                        at(),
                        lesson.name
                    ));
                }
            }
            continue;
        }
        if let Some(rest) = item {
            lesson.hints.push(rest.to_string());
            in_hint = true;
            in_fence = fence;
            continue;
        }
        if in_hint {
            if line.trim().is_empty() || line.starts_with("   ") {
                push_line(lesson, line);
                in_fence = fence;
            } else {
                in_hint = false;
            }
        }
    }
    for lesson in &mut lessons {
        for hint in &mut lesson.hints {
            *hint = hint.trim_end().to_string();
        }
        if lesson.todo.is_empty() {
            return Err(format!(
                "{}: `## {}` needs a `> ` line: what the starter's todo!() says",
                path.display(),
                lesson.name
            ));
        }
        if lesson.goal.is_empty() {
            return Err(format!(
                "{}: `## {}` needs a `> goal: ` line: what the part must achieve (the challenge starter's todo!())",
                path.display(),
                lesson.name
            ));
        }
        if lesson.hints.len() < MIN_HINTS {
            return Err(format!(
                "{}: `## {}` has {} hint(s); give at least {MIN_HINTS}, from a nudge to nearly the answer",
                path.display(),
                lesson.name,
                lesson.hints.len()
            ));
        }
    }
    Ok(lessons)
}

/// A lesson's name: what follows `// LESSON:` and `## `.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Adds a line to the lesson's last hint, without the list's indentation.
fn push_line(lesson: &mut Lesson, line: &str) {
    let hint = lesson.hints.last_mut().expect("a hint is open");
    hint.push('\n');
    hint.push_str(line.strip_prefix("   ").unwrap_or(line));
}

/// `3. text` -> `text` (a numbered list item at the start of a line).
fn numbered_item(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    line[digits..].strip_prefix(". ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# Step 9: hints\n\nA note.\n\n## open_it\n\n> open the queue\n> goal: have a queue\n\n\
        1. A nudge.\n2. More,\n   over two lines:\n\n   ```rust\n   let x = 1;\n\n   2. not a hint\n   ```\n3. ```\n   > not a todo\n   ```\n\n\
        ## close_it\n\n> close it\n> goal: it is gone\n\n1. a\n2. b\n3. c\n";

    /// Sections, the todo line and multi-line hints (a code block in one
    /// included) come out as written.
    #[test]
    fn reads_lessons_todos_and_graded_hints() {
        let lessons = parse(Path::new("hints.md"), GOOD).expect("parses");
        assert_eq!(lessons.len(), 2);
        assert_eq!(lessons[0].name, "open_it");
        assert_eq!(lessons[0].todo, "open the queue");
        assert_eq!(lessons[0].goal, "have a queue");
        assert_eq!(lessons[1].goal, "it is gone");
        assert_eq!(
            lessons[0].hints,
            [
                "A nudge.",
                "More,\nover two lines:\n\n```rust\nlet x = 1;\n\n2. not a hint\n```",
                "```\n> not a todo\n```"
            ]
        );
        assert_eq!(lessons[1].hints, ["a", "b", "c"]);
    }

    /// A section without its todo line, or with too few hints, is refused
    /// with the file and the section named.
    #[test]
    fn refuses_a_lesson_without_a_todo_or_enough_hints() {
        let no_todo = parse(Path::new("h.md"), "## a\n\n1. x\n2. y\n3. z\n").unwrap_err();
        assert!(no_todo.contains("h.md") && no_todo.contains("`## a`") && no_todo.contains("`> `"));
        let few = parse(
            Path::new("h.md"),
            "## a\n\n> do it\n> goal: done\n\n1. x\n2. y\n",
        )
        .unwrap_err();
        assert!(few.contains("2 hint(s)"), "{few}");
        let twice = parse(Path::new("h.md"), "## a\n> x\n1. a\n2. b\n3. c\n## a\n").unwrap_err();
        assert!(twice.contains("second section"), "{twice}");
    }

    /// A lesson without its goal line, with two, or with a goal that names
    /// a kqueue call is refused with the section named.
    #[test]
    fn refuses_a_missing_doubled_or_call_naming_goal() {
        let none = parse(Path::new("h.md"), "## a\n> do it\n1. x\n2. y\n3. z\n").unwrap_err();
        assert!(
            none.contains("`## a`") && none.contains("`> goal: `"),
            "{none}"
        );
        let two = "## a\n> do it\n> goal: x\n> goal: y\n1. x\n2. y\n3. z\n";
        let two = parse(Path::new("h.md"), two).unwrap_err();
        assert!(two.contains("second goal"), "{two}");
        for word in [
            "EV_ADD it",
            "an EVFILT_READ knote",
            "call Kevent()",
            "ev_set() it",
        ] {
            let text = format!("## a\n> do it\n> goal: {word}\n1. x\n2. y\n3. z\n");
            let err = parse(Path::new("h.md"), &text).unwrap_err();
            assert!(err.contains("the goal names"), "{word}: {err}");
        }
    }

    /// At the challenge level the guided todo!() text comes first, then
    /// the guided hints in their order.
    #[test]
    fn challenge_hints_start_with_the_method() {
        let lessons = parse(Path::new("hints.md"), GOOD).expect("parses");
        let hints = lessons[1].challenge_hints();
        assert_eq!(
            hints,
            [
                format!("{METHOD}\nclose it"),
                "a".into(),
                "b".into(),
                "c".into()
            ]
        );
    }
}
