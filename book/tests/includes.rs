//! Every listing in the book comes from the repository by named anchor, and
//! the lint that checks it catches each way an include goes wrong.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use book::includes::{self, Selector};
use rstest::rstest;

/// Every `{{#include}}` / `{{#rustdoc_include}}` in the book names a file
/// that exists and an anchor that is there once, closed and not empty; no
/// line ranges, no whole Rust/C files, no code pasted into a listing.
#[test]
fn every_include_resolves_to_a_named_anchor() {
    let problems = includes::check_book(&common::src()).expect("read book/src");
    let report: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        report.is_empty(),
        "{} problem(s) in the book's includes:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The chapters include code from steps/, the stepkit and generated files,
/// and do it often: a lint that found no directives would pass vacuously.
#[test]
fn the_chapters_include_code_by_anchor() {
    let mut anchored = 0;
    for chapter in includes::markdown_files(&common::src()).expect("list chapters") {
        let text = fs::read_to_string(&chapter).expect("read chapter");
        anchored += includes::directives(&text)
            .iter()
            .filter(|d| {
                matches!(
                    includes::parse_include(&d.target).selector,
                    Selector::Anchor(_)
                )
            })
            .count();
    }
    assert!(
        anchored >= 40,
        "only {anchored} anchored includes in book/src"
    );
}

/// A source file with well-formed and broken anchors, for the lint's
/// self-tests.
const SOURCE: &str = "\
fn main() {
    // ANCHOR: good
    let kq = kqueue();
    // ANCHOR_END: good
    // ANCHOR: empty
    // ANCHOR_END: empty
    // ANCHOR: unclosed
    let x = 1;
    // ANCHOR: twice
    a();
    // ANCHOR_END: twice
    // ANCHOR: twice
    b();
    // ANCHOR_END: twice
    // ANCHOR: outer
    // ANCHOR: inner
    c();
    // ANCHOR_END: inner
    // ANCHOR_END: outer
}
";

/// Writes `chapter` next to `src.rs` (holding [`SOURCE`]) in a fresh
/// directory and lints it.
fn lint(chapter: &str) -> Vec<String> {
    // Cases run in parallel: each gets a directory of its own.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("include-lint")
        .join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    fs::write(dir.join("src.rs"), SOURCE).expect("write source");
    fs::write(dir.join("session.txt"), "$ step1\nlistening\n").expect("write transcript");
    fs::create_dir_all(dir.join("generated")).expect("create generated dir");
    fs::write(dir.join("generated").join("excerpt.c"), "int main(void);\n").expect("write excerpt");
    let md = dir.join("chapter.md");
    fs::write(&md, chapter).expect("write chapter");
    includes::check_chapter(&md, chapter)
        .iter()
        .map(|p| p.message.clone())
        .collect()
}

/// Each broken include is reported with a message naming what is wrong.
#[rstest]
#[case::missing_file("```rust\n{{#include nope.rs:good}}\n```\n", "cannot read")]
#[case::missing_anchor(
    "```rust\n{{#include src.rs:absent}}\n```\n",
    "anchor `absent` not found"
)]
#[case::empty_anchor("```rust\n{{#include src.rs:empty}}\n```\n", "anchor `empty` is empty")]
#[case::unclosed_anchor("```rust\n{{#include src.rs:unclosed}}\n```\n", "never closed")]
#[case::duplicated_anchor("```rust\n{{#include src.rs:twice}}\n```\n", "starts 2 times")]
#[case::line_range("```rust\n{{#include src.rs:2:4}}\n```\n", "line range")]
#[case::open_line_range("```rust\n{{#include src.rs:2:}}\n```\n", "line range")]
#[case::rustdoc_line_range("```rust\n{{#rustdoc_include src.rs:3}}\n```\n", "line range")]
#[case::whole_rust_file("```rust\n{{#include src.rs}}\n```\n", "whole source file")]
#[case::whole_rust_file_rustdoc(
    "```rust,ignore\n{{#rustdoc_include src.rs}}\n```\n",
    "whole source file"
)]
#[case::pasted_code("```rust\nlet kq = kqueue();\n```\n", "code pasted")]
#[case::unclosed_fence("```rust\n{{#include src.rs:good}}\n", "never closed")]
#[case::playground("{{#playground src.rs}}\n", "not a directive this book uses")]
fn reports_a_broken_include(#[case] chapter: &str, #[case] expected: &str) {
    let problems = lint(chapter);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "chapter {chapter:?}: expected a problem containing {expected:?}, got {problems:?}"
    );
}

/// Well-formed includes pass: a named anchor, a nested one, a whole
/// transcript, a whole generated excerpt, an escaped directive, and shell
/// commands typed into a `sh` block.
#[rstest]
#[case::anchor("```rust\n{{#include src.rs:good}}\n```\n")]
#[case::rustdoc_anchor("```rust,ignore\n{{#rustdoc_include src.rs:good}}\n```\n")]
#[case::nested_anchor("```rust\n{{#include src.rs:inner}}\n{{#include src.rs:outer}}\n```\n")]
#[case::whole_transcript("```console\n{{#include session.txt}}\n```\n")]
#[case::whole_generated_excerpt("```c\n{{#include generated/excerpt.c}}\n```\n")]
#[case::escaped("Write \\{{#include file:anchor}} to include.\n")]
#[case::shell_block("```sh\ncargo run -p step3\nnc 127.0.0.1 8080\n```\n")]
fn accepts_a_good_include(#[case] chapter: &str) {
    let problems = lint(chapter);
    assert!(
        problems.is_empty(),
        "chapter {chapter:?}: expected no problems, got {problems:?}"
    );
}

/// The anchor body is what mdBook shows: the lines between the markers,
/// without any anchor lines nested inside.
#[test]
fn anchor_body_leaves_out_nested_markers() {
    assert_eq!(
        includes::anchor_body(SOURCE, "outer").as_deref(),
        Ok("    c();"),
        "outer anchor of {SOURCE:?}"
    );
}
