//! Shared by the book's tests: where things are, and the book built once.

#![allow(dead_code)] // each test binary uses a different part of this

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    book::generated::repo_root()
}

/// `book/src`.
pub fn src() -> PathBuf {
    root().join("book").join("src")
}

/// Where the tests render the book: `<target dir>/book`, next to cargo's
/// own `tmp`, so it lands in `target/book/` for a reader and in
/// `$CARGO_TARGET_DIR/book/` when that is set.
pub fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target tmp dir has a parent")
        .join("book")
}

/// The chapters `SUMMARY.md` lists, in order: (title, file).
pub fn summary() -> Vec<(String, String)> {
    let text = fs::read_to_string(src().join("SUMMARY.md")).expect("read SUMMARY.md");
    text.lines()
        .filter_map(|l| {
            let open = l.find('[')?;
            let mid = l[open..].find("](")? + open;
            let close = l[mid..].find(')')? + mid;
            Some((l[open + 1..mid].to_string(), l[mid + 2..close].to_string()))
        })
        .collect()
}

/// Builds the book once per test binary, into [`out_dir`], and returns it.
/// A failed build panics with mdBook's error chain.
pub fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = out_dir();
        // Start clean: a page left over from a renamed chapter must not
        // make a check pass.
        let _ = fs::remove_dir_all(&out);
        let mut md = mdbook_driver::MDBook::load(root().join("book"))
            .unwrap_or_else(|e| panic!("loading book/book.toml and SUMMARY.md: {e:#}"));
        md.config.build.build_dir = out.clone();
        // After mdBook's own (it runs them first): dedent the listings and
        // leave out the lesson markers (book/tool/listings.rs).
        md.with_preprocessor(Listings);
        md.build()
            .unwrap_or_else(|e| panic!("building the book into {}: {e:#}", out.display()));
        out
    })
}

/// The book's listings preprocessor: [`book::listings::tidy`] on every
/// chapter.
struct Listings;

impl mdbook_preprocessor::Preprocessor for Listings {
    fn name(&self) -> &str {
        "listings"
    }

    fn run(
        &self,
        _ctx: &mdbook_preprocessor::PreprocessorContext,
        mut book: mdbook_driver::book::Book,
    ) -> mdbook_driver::errors::Result<mdbook_driver::book::Book> {
        book.for_each_chapter_mut(|chapter| {
            chapter.content = book::listings::tidy(&chapter.content)
        });
        Ok(book)
    }
}

/// Every file under `dir` with extension `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Like [`files_with_ext`], but an absent `dir` has none.
pub fn files_with_ext_if_any(dir: &Path, ext: &str) -> Vec<PathBuf> {
    if dir.is_dir() {
        files_with_ext(dir, ext)
    } else {
        Vec::new()
    }
}
