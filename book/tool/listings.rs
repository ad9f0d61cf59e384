//! What the book does to its code listings after mdBook has included them:
//! an anchored listing comes out of the middle of a function, indented as
//! deep as its source (16 spaces inside a `for` inside a `loop`), which on
//! a phone is a quarter of the screen. So every Rust and C listing is
//! dedented by the indentation its lines share, and the starters' lesson
//! markers (`// LESSON: ...`, [`crate::starter`]) are left out, as mdBook
//! leaves out `ANCHOR` lines.
//!
//! The same markers are left out of the diffs the book shows (the
//! exercises' solutions, against a step's `src/main.rs`).
//!
//! `cargo test -p book` runs this as a preprocessor after mdBook's own
//! (`book/tests/common`). A plain `mdbook build` has not got it: its
//! listings keep their indentation and markers, and are otherwise the same.

use crate::starter;

/// The chapter's Markdown with every Rust and C code block tidied.
pub fn tidy(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut block: Option<(String, Vec<&str>)> = None;
    for line in markdown.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        match &mut block {
            None => {
                if let Some(info) = bare.strip_prefix("```") {
                    let lang = info.split(',').next().unwrap_or("").trim();
                    if lang == "rust" || lang == "c" || lang == "diff" {
                        out.push_str(line);
                        block = Some((lang.to_string(), Vec::new()));
                        continue;
                    }
                }
                out.push_str(line);
            }
            Some((lang, lines)) => {
                if bare.trim_start().starts_with("```") {
                    if lang == "diff" {
                        out.push_str(&tidy_diff(lines));
                    } else {
                        out.push_str(&tidy_code(lines));
                    }
                    out.push_str(line);
                    block = None;
                } else {
                    lines.push(bare);
                }
            }
        }
    }
    if let Some((_, lines)) = block {
        out.push_str(&tidy_code(&lines));
    }
    out
}

/// A diff (an exercise's solution, against a step's `src/main.rs`): lesson
/// markers out, whether context, added or removed. Nothing is dedented: a
/// diff's first column is its own.
fn tidy_diff(lines: &[&str]) -> String {
    let mut out = String::new();
    for l in lines {
        let body = l.get(1..).unwrap_or("");
        let marker = matches!(l.chars().next(), Some(' ' | '+' | '-')) && starter::is_marker(body);
        if !marker {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// One listing: lesson markers out, then the shared indentation.
fn tidy_code(lines: &[&str]) -> String {
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !starter::is_marker(l))
        .collect();
    let indent = kept
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for l in kept {
        out.push_str(l.get(indent..).unwrap_or(l.trim_start()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Rust listing loses its shared indentation and the lesson markers;
    /// its own structure (deeper lines, blank lines) stays.
    #[test]
    fn dedents_listings_and_drops_lesson_markers() {
        let md = "Text\n\n```rust,ignore\n        // LESSON: echo -> got: usize\n        let x = 1;\n\n            y();\n        // LESSON_END\n```\n\nMore\n";
        assert_eq!(
            tidy(md),
            "Text\n\n```rust,ignore\nlet x = 1;\n\n    y();\n```\n\nMore\n"
        );
    }

    /// C listings are dedented too; transcripts, diffs and other blocks
    /// are left exactly as they are.
    #[test]
    fn leaves_other_blocks_alone() {
        let md =
            "```c\n    int kq;\n```\n```diff\n-    a\n+    b\n```\n```console\n  $ indented\n```\n";
        assert_eq!(
            tidy(md),
            "```c\nint kq;\n```\n```diff\n-    a\n+    b\n```\n```console\n  $ indented\n```\n"
        );
    }
}
