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

/// The chapters include code from steps/, the stepkit, the C originals and
/// generated files, and do it often: a lint that found no directives would
/// pass vacuously.
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

/// The C the book shows (the servers of `examples/c/`, the declarations of
/// `kq-c/include/sys/event.h`) comes from those files by named anchor, like
/// the Rust: no whole-file include, no copy under `book/generated/`.
#[test]
fn c_listings_come_from_the_c_sources_by_anchor() {
    let mut from_sources = Vec::new();
    let mut wrong = Vec::new();
    for chapter in includes::markdown_files(&common::src()).expect("list chapters") {
        let text = fs::read_to_string(&chapter).expect("read chapter");
        for d in includes::directives(&text) {
            let inc = includes::parse_include(&d.target);
            let is_c = Path::new(&inc.path)
                .extension()
                .is_some_and(|e| e == "c" || e == "h");
            if !is_c {
                continue;
            }
            let name = chapter.file_name().unwrap_or_default().to_string_lossy();
            let from_a_source = inc.path.starts_with("../../examples/c/")
                || inc.path.starts_with("../../kq-c/include/");
            match &inc.selector {
                Selector::Anchor(anchor) if from_a_source => {
                    from_sources.push(format!("{}:{anchor}", inc.path))
                }
                _ => wrong.push(format!("{name}:{}: {}", d.line, d.target)),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "C included other than by anchor from examples/c/ or kq-c/include/: {wrong:?}"
    );
    // Appendix B's eleven listings and the header's three.
    assert!(
        from_sources.len() >= 14,
        "only {} C listings included by anchor: {from_sources:?}",
        from_sources.len()
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

/// A C file with anchors as the C originals write them (`/* ANCHOR: x */`,
/// one marker per line, the comment above a function inside its anchor).
const C_SOURCE: &str = "\
#include <stdio.h>

/* ANCHOR: hello */
/* Says hello. */
static void
hello(void)
{
	puts(\"hello\");
}
/* ANCHOR_END: hello */

/* ANCHOR: empty */
/* ANCHOR_END: empty */
";

/// A header with an anchored declaration.
const C_HEADER: &str = "\
#ifndef H_
#define H_
/* ANCHOR: prototype */
int\thello(void);
/* ANCHOR_END: prototype */
#endif
";

/// Writes `chapter` next to `src.rs` (holding [`SOURCE`]), `src.c`
/// ([`C_SOURCE`]) and `src.h` ([`C_HEADER`]) in a fresh directory and
/// lints it.
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
    fs::write(dir.join("src.c"), C_SOURCE).expect("write C source");
    fs::write(dir.join("src.h"), C_HEADER).expect("write C header");
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
#[case::missing_c_file("```c\n{{#include nope.c:hello}}\n```\n", "cannot read")]
#[case::missing_c_anchor("```c\n{{#include src.c:mksock}}\n```\n", "anchor `mksock` not found")]
#[case::empty_c_anchor("```c\n{{#include src.c:empty}}\n```\n", "anchor `empty` is empty")]
#[case::c_line_range("```c\n{{#include src.c:3:9}}\n```\n", "line range")]
#[case::whole_c_file("```c\n{{#include src.c}}\n```\n", "whole source file")]
#[case::whole_header("```c\n{{#include src.h}}\n```\n", "whole source file")]
#[case::pasted_code("```rust\nlet kq = kqueue();\n```\n", "code pasted")]
#[case::pasted_c("```c\nint kq = kqueue();\n```\n", "code pasted")]
#[case::unclosed_fence("```rust\n{{#include src.rs:good}}\n", "never closed")]
#[case::playground("{{#playground src.rs}}\n", "not a directive this book uses")]
fn reports_a_broken_include(#[case] chapter: &str, #[case] expected: &str) {
    let problems = lint(chapter);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "chapter {chapter:?}: expected a problem containing {expected:?}, got {problems:?}"
    );
}

/// Well-formed includes pass: a named anchor (in Rust, C or a header), a
/// nested one, a whole transcript, a whole generated file, an escaped
/// directive, and shell commands typed into a `sh` block.
#[rstest]
#[case::anchor("```rust\n{{#include src.rs:good}}\n```\n")]
#[case::rustdoc_anchor("```rust,ignore\n{{#rustdoc_include src.rs:good}}\n```\n")]
#[case::c_anchor("```c\n{{#include src.c:hello}}\n```\n")]
#[case::header_anchor("```c\n{{#include src.h:prototype}}\n```\n")]
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

/// A C anchor shows the function with its comment and without the
/// `/* ANCHOR... */` lines themselves.
#[test]
fn c_anchor_body_is_the_function_without_markers() {
    assert_eq!(
        includes::anchor_body(C_SOURCE, "hello").as_deref(),
        Ok("/* Says hello. */\nstatic void\nhello(void)\n{\n\tputs(\"hello\");\n}"),
        "hello anchor of {C_SOURCE:?}"
    );
}
