//! The include lint: every `{{#include}}` and `{{#rustdoc_include}}` in the
//! book's Markdown must name a file that exists and, when it names an anchor,
//! an anchor that is there once, closed and not empty.
//!
//! Why a lint of our own: mdBook is forgiving in exactly the wrong way for a
//! tutorial. A missing anchor renders as an empty listing and a missing file
//! leaves the raw directive in the page, and in both cases the build
//! succeeds. A line range (`file.rs:10:20`) silently points at other lines
//! the day someone edits the file, and a whole source file shows whatever
//! it grows into. So this module resolves every directive the way mdBook
//! 0.5 does and reports each problem with its chapter and line.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// One `{{#kind target}}` directive in a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// 1-based line of the chapter where the directive starts.
    pub line: usize,
    /// `include`, `rustdoc_include`, `title`, ...
    pub kind: String,
    /// Everything after the kind, trimmed: `../../steps/step1/src/main.rs:create_queue`.
    pub target: String,
}

/// What an include directive selects from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The whole file: `{{#include file}}`.
    Whole,
    /// The lines between `ANCHOR: name` and `ANCHOR_END: name`.
    Anchor(String),
    /// A line range such as `file:10:20` or `file:5:` (refused by the lint).
    Lines(String),
}

/// An include directive taken apart: the file (relative to the chapter) and
/// the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub path: String,
    pub selector: Selector,
}

/// A problem found in one chapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub chapter: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.chapter.display(),
            self.line,
            self.message
        )
    }
}

/// Finds the directives in `markdown`, as mdBook's link preprocessor does
/// (`{{#kind target}}`, where the target holds no `}`), skipping escaped
/// ones (`\{{#...}}`), which mdBook prints literally.
pub fn directives(markdown: &str) -> Vec<Directive> {
    let mut found = Vec::new();
    let mut rest = markdown;
    let mut offset = 0;
    while let Some(at) = rest.find("{{") {
        let start = offset + at;
        let escaped = markdown[..start].ends_with('\\');
        let after = &rest[at + 2..];
        let consumed = at + 2;
        if escaped {
            // mdBook drops the backslash and leaves the rest alone.
            let skip = after.find("}}").map_or(after.len(), |e| e + 2);
            offset += consumed + skip;
            rest = &rest[consumed + skip..];
            continue;
        }
        if let Some(d) = parse_directive(after) {
            found.push(Directive {
                line: markdown[..start].matches('\n').count() + 1,
                kind: d.0,
                target: d.1,
            });
        }
        offset += consumed;
        rest = &rest[consumed..];
    }
    found
}

/// `\s*#kind\s+target}}` after the opening braces, or None.
fn parse_directive(after: &str) -> Option<(String, String)> {
    let s = after.trim_start();
    let s = s.strip_prefix('#')?;
    let kind_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if kind_len == 0 {
        return None;
    }
    let (kind, s) = s.split_at(kind_len);
    if !s.starts_with(char::is_whitespace) {
        return None;
    }
    let end = s.find('}')?;
    if !s[end..].starts_with("}}") {
        return None;
    }
    let target = s[..end].trim();
    if target.is_empty() {
        return None;
    }
    Some((kind.to_string(), target.to_string()))
}

/// Takes an include target apart the way mdBook 0.5 does: the first word
/// is `path[:selector]`; a selector that starts with a number (or is empty)
/// is a line range, anything else names an anchor.
pub fn parse_include(target: &str) -> Include {
    let word = target.split_whitespace().next().unwrap_or("");
    let (path, rest) = match word.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (word, None),
    };
    let selector = match rest {
        None => Selector::Whole,
        Some(r) => {
            let first = r.split(':').next().unwrap_or("");
            if first.is_empty() || first.parse::<usize>().is_ok() {
                Selector::Lines(r.to_string())
            } else {
                Selector::Anchor(first.to_string())
            }
        }
    };
    Include {
        path: path.to_string(),
        selector,
    }
}

/// The name after `marker` on this line (mdBook: `ANCHOR:\s*([\w_-]+)`).
fn marker_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    let s = line[at + marker.len()..].trim_start();
    let len = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    (len > 0).then(|| &s[..len])
}

/// The anchor that starts on this line, if any.
pub fn anchor_start(line: &str) -> Option<&str> {
    marker_name(line, "ANCHOR:")
}

/// The anchor that ends on this line, if any.
pub fn anchor_end(line: &str) -> Option<&str> {
    marker_name(line, "ANCHOR_END:")
}

/// The lines an anchored include shows (anchor lines of any name left out,
/// as mdBook does), or why the anchor cannot be used.
pub fn anchor_body(text: &str, name: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| anchor_start(lines[i]) == Some(name))
        .collect();
    let ends: Vec<usize> = (0..lines.len())
        .filter(|&i| anchor_end(lines[i]) == Some(name))
        .collect();
    match (starts.as_slice(), ends.as_slice()) {
        ([], _) => Err(format!("anchor `{name}` not found (no `ANCHOR: {name}` line)")),
        ([_, _, ..], _) => Err(format!(
            "anchor `{name}` starts {} times (lines {}); mdBook would show only the first",
            starts.len(),
            one_based(&starts)
        )),
        ([s], []) => Err(format!(
            "anchor `{name}` is never closed (`ANCHOR: {name}` on line {}, no `ANCHOR_END: {name}`)",
            s + 1
        )),
        ([s], [e]) if e < s => Err(format!(
            "anchor `{name}` ends (line {}) before it starts (line {})",
            e + 1,
            s + 1
        )),
        ([s], [e]) => {
            let body: Vec<&str> = lines[s + 1..*e]
                .iter()
                .copied()
                .filter(|l| anchor_start(l).is_none() && anchor_end(l).is_none())
                .collect();
            if body.iter().all(|l| l.trim().is_empty()) {
                Err(format!("anchor `{name}` is empty (lines {}..{})", s + 1, e + 1))
            } else {
                Ok(body.join("\n"))
            }
        }
        ([_], _) => Err(format!(
            "anchor `{name}` is closed {} times (lines {})",
            ends.len(),
            one_based(&ends)
        )),
    }
}

fn one_based(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| (l + 1).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Rust or C source file: one a chapter must show by anchor, because the
/// whole file grows and shrinks with every edit (transcripts, diffs and
/// Markdown tables are shown whole).
fn is_source(path: &str) -> bool {
    Path::new(path)
        .extension()
        .is_some_and(|e| e == "rs" || e == "c" || e == "h")
}

/// Under a `generated` directory: derived by `book-gen` and checked for
/// freshness, so including it whole is including it by name. (No source
/// code is generated today; C listings come from `examples/c/` and
/// `kq-c/include/` by anchor, like the Rust.)
fn is_generated(path: &str) -> bool {
    Path::new(path)
        .components()
        .any(|c| c.as_os_str() == "generated")
}

/// Directive kinds mdBook 0.5 knows and this book allows. `playground` is
/// left out on purpose: nothing in a kqueue book runs on the playground.
const ALLOWED_KINDS: &[&str] = &["include", "rustdoc_include", "title"];

/// Checks every directive of one chapter; `chapter` is the Markdown file.
pub fn check_chapter(chapter: &Path, markdown: &str) -> Vec<Problem> {
    let dir = chapter.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let mut report = |line: usize, message: String| {
        problems.push(Problem {
            chapter: chapter.to_path_buf(),
            line,
            message,
        })
    };
    for d in directives(markdown) {
        if !ALLOWED_KINDS.contains(&d.kind.as_str()) {
            report(
                d.line,
                format!(
                    "`{{{{#{} ...}}}}` is not a directive this book uses",
                    d.kind
                ),
            );
            continue;
        }
        if d.kind == "title" {
            continue;
        }
        let inc = parse_include(&d.target);
        let file = dir.join(&inc.path);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                report(d.line, format!("cannot read {}: {e}", file.display()));
                continue;
            }
        };
        match &inc.selector {
            Selector::Lines(range) => report(
                d.line,
                format!(
                    "`{}:{range}` is a line range; name an anchor instead \
                     (`// ANCHOR: name` in Rust, `/* ANCHOR: name */` in C)",
                    inc.path
                ),
            ),
            Selector::Whole if text.trim().is_empty() => {
                report(d.line, format!("{} is empty", inc.path))
            }
            Selector::Whole if is_source(&inc.path) && !is_generated(&inc.path) => report(
                d.line,
                format!(
                    "`{}` includes a whole source file; name an anchor instead \
                     (`// ANCHOR: name` in Rust, `/* ANCHOR: name */` in C)",
                    inc.path
                ),
            ),
            Selector::Whole => {}
            Selector::Anchor(name) => {
                if let Err(e) = anchor_body(&text, name) {
                    report(d.line, format!("{}: {e}", inc.path));
                }
            }
        }
    }
    problems.extend(check_code_blocks(chapter, markdown));
    problems
}

/// Code shown in the book comes from the repository, never pasted: a fenced
/// block may hold free text only if it is a shell block (`sh`), where a
/// chapter tells the reader what to type. Every other block holds include
/// directives and nothing else.
pub fn check_code_blocks(chapter: &Path, markdown: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut fence: Option<(String, String, usize)> = None; // (marker, language, line)
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &fence {
            None => {
                for marker in ["```", "~~~"] {
                    if let Some(info) = trimmed.strip_prefix(marker) {
                        let lang = info
                            .trim_start_matches(marker.chars().next().unwrap_or('`'))
                            .split([',', ' '])
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        fence = Some((marker.to_string(), lang, i + 1));
                        break;
                    }
                }
            }
            Some((marker, lang, start)) => {
                if trimmed.starts_with(marker.as_str()) {
                    fence = None;
                    continue;
                }
                let t = line.trim();
                let only_directive =
                    t.starts_with("{{#") && t.ends_with("}}") && directives(t).len() == 1;
                if lang != "sh" && !t.is_empty() && !only_directive {
                    problems.push(Problem {
                        chapter: chapter.to_path_buf(),
                        line: i + 1,
                        message: format!(
                            "code pasted into a `{lang}` block (opened on line {start}); include it by anchor instead"
                        ),
                    });
                }
            }
        }
    }
    if let Some((_, _, start)) = fence {
        problems.push(Problem {
            chapter: chapter.to_path_buf(),
            line: start,
            message: "code block never closed".to_string(),
        });
    }
    problems
}

/// Every Markdown file under `src`, sorted, so reports are stable.
pub fn markdown_files(src: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every chapter under `src`.
pub fn check_book(src: &Path) -> std::io::Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for chapter in markdown_files(src)? {
        let text = fs::read_to_string(&chapter)?;
        problems.extend(check_chapter(&chapter, &text));
    }
    Ok(problems)
}
