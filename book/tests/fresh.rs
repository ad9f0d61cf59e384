//! The generated files (step diffs, `kq` doc sections, tables of tests and
//! stages, the plot, the README's table of steps) match the repository as
//! it is now. The transcripts need the step binaries running, so `.ci/run`
//! checks those with `scripts/generate.sh --check`.

mod common;

use std::fs;

use book::generated;

/// Each generated file on disk equals what the repository generates now;
/// a stale one names the file and the command that refreshes it.
#[test]
fn generated_listings_match_the_repository() {
    let root = common::root();
    let files = generated::static_files(&root).unwrap_or_else(|e| panic!("generating: {e}"));
    assert!(!files.is_empty(), "nothing generated");
    let mut stale = Vec::new();
    for f in &files {
        let on_disk = fs::read_to_string(root.join(&f.path)).unwrap_or_default();
        if on_disk != f.content {
            let first_difference = on_disk
                .lines()
                .zip(f.content.lines())
                .position(|(a, b)| a != b)
                .map_or_else(
                    || "lengths differ".to_string(),
                    |i| format!("first difference at line {}", i + 1),
                );
            stale.push(format!("  {} ({first_difference})", f.path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "{} generated file(s) are stale:\n{}\nrun scripts/generate.sh (or, without \
         the transcripts, `cargo run -p book --bin book-gen -- --static`) and commit what it wrote",
        stale.len(),
        stale.join("\n")
    );
}

/// Every generated file is used by some chapter, so a renamed or dropped
/// listing does not linger unseen.
#[test]
fn every_generated_file_is_included_by_a_chapter() {
    let root = common::root();
    let mut all_chapters = String::new();
    for chapter in book::includes::markdown_files(&common::src()).expect("list chapters") {
        all_chapters.push_str(&fs::read_to_string(chapter).expect("read chapter"));
    }
    let dir = root.join(generated::DIR);
    let mut unused = Vec::new();
    for ext in ["txt", "diff", "c", "md", "svg"] {
        for file in common::files_with_ext(&dir, ext) {
            let rel = file.strip_prefix(&dir).expect("under generated/");
            if rel == std::path::Path::new("README.md") {
                continue;
            }
            let needle = format!("../generated/{}", rel.display());
            if !all_chapters.contains(&needle) {
                unused.push(needle);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "generated files no chapter includes: {unused:?}"
    );
}
