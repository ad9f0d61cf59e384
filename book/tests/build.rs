//! The book builds with mdBook 0.5 (the pinned `mdbook-driver`), and what it
//! renders is whole: every chapter is there under its title, no directive
//! was left unexpanded, every listing has code in it, and search knows the
//! words a reader will look for. `cargo test -p book` leaves the HTML in
//! `target/book/` (open `target/book/index.html`).

mod common;

use std::fs;

use common::{built, files_with_ext, summary};

/// Every chapter in SUMMARY.md is rendered to HTML, with its title in the
/// page's `<title>`.
#[test]
fn renders_every_chapter_under_its_title() {
    let out = built();
    let chapters = summary();
    assert!(chapters.len() >= 11, "SUMMARY.md lists only {chapters:?}");
    for (title, file) in chapters {
        let html = out.join(file.replace(".md", ".html"));
        let page = fs::read_to_string(&html).unwrap_or_else(|e| {
            panic!("chapter {file} ({title}): no page {}: {e}", html.display())
        });
        let escaped = title.replace('&', "&amp;").replace('<', "&lt;");
        assert!(
            page.contains(&format!("<title>{escaped} - ")),
            "{}: expected <title>{escaped} - ...</title>; the page has {:?}",
            html.display(),
            page.lines().find(|l| l.contains("<title>"))
        );
    }
}

/// No page holds a raw `{{#...}}` directive: mdBook leaves one behind when
/// an included file is missing, and the build still succeeds.
#[test]
fn leaves_no_raw_directive_in_any_page() {
    let out = built();
    let pages = files_with_ext(out, "html");
    assert!(!pages.is_empty(), "no HTML under {}", out.display());
    for page in pages {
        let html = fs::read_to_string(&page).expect("read page");
        if let Some(at) = html.find("{{#") {
            let context: String = html[at..].chars().take(120).collect();
            panic!("{} still holds a directive: {context:?}", page.display());
        }
    }
}

/// Every Rust and C listing of the rendered book: (its page, its code).
fn rust_and_c_listings(out: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut listings = Vec::new();
    for page in files_with_ext(out, "html") {
        let html = fs::read_to_string(&page).expect("read page");
        for block in html.split("<pre><code").skip(1) {
            let (attrs, body) = block.split_once('>').unwrap_or(("", ""));
            if attrs.contains("language-rust") || attrs.contains("language-c\"") {
                let code = body.split("</code>").next().unwrap_or("");
                listings.push((page.clone(), code.to_string()));
            }
        }
    }
    assert!(
        listings.len() >= 40,
        "only {} Rust and C listings found",
        listings.len()
    );
    listings
}

/// No Rust or C listing shows an `ANCHOR:` / `ANCHOR_END:` marker, nor a
/// starter's `LESSON` marker: mdBook drops the marker lines of an anchored
/// include (Rust `// ANCHOR:` and C `/* ANCHOR: */` alike), the book's
/// listings preprocessor the lesson markers, so one in a listing means a
/// file was included whole or a marker was mistyped. (The step diffs show
/// the anchors as the files have them, so `diff` blocks are left alone.)
#[test]
fn shows_no_anchor_marker_in_a_rust_or_c_listing() {
    for (page, code) in rust_and_c_listings(built()) {
        for marker in ["ANCHOR:", "ANCHOR_END:", "LESSON:", "LESSON_END"] {
            if let Some(at) = code.find(marker) {
                let context: String = code[at..].chars().take(120).collect();
                panic!("{}: a listing shows a marker: {context:?}", page.display());
            }
        }
    }
}

/// Every Rust and C listing starts at the left margin: the shared
/// indentation of an anchored listing (16 spaces deep in a loop) is taken
/// off, so on a phone the code is not a quarter of the screen to the right.
#[test]
fn dedents_every_listing() {
    for (page, code) in rust_and_c_listings(built()) {
        let flush = code
            .lines()
            .filter(|l| !l.trim().is_empty())
            .any(|l| !l.starts_with(' ') && !l.starts_with('\t'));
        assert!(
            flush,
            "{}: a listing is indented as a whole: {:?}",
            page.display(),
            code.lines().next().unwrap_or("")
        );
    }
}

/// Every code block of a step chapter has code in it: an include that
/// rendered as nothing (mdBook's answer to a missing anchor) shows as an
/// empty `<code>` element.
#[test]
fn renders_no_empty_listing() {
    let out = built();
    for page in files_with_ext(out, "html") {
        let html = fs::read_to_string(&page).expect("read page");
        for (i, block) in html.split("<pre><code").skip(1).enumerate() {
            let body = block.split_once('>').map_or("", |(_, b)| b);
            let code = body.split("</code>").next().unwrap_or("");
            assert!(
                !code.trim().is_empty(),
                "{}: code block {} is empty",
                page.display(),
                i + 1
            );
        }
    }
}

/// The search index is built and holds the words a learner searches for.
#[test]
fn search_index_knows_the_kqueue_vocabulary() {
    let out = built();
    let index = files_with_ext(out, "js")
        .into_iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("searchindex"))
        })
        .unwrap_or_else(|| panic!("no searchindex*.js under {}", out.display()));
    let text = fs::read_to_string(&index).expect("read search index");
    for word in ["ev_delete", "ev_set", "evfilt_read", "chatserv", "knote"] {
        assert!(
            text.to_lowercase().contains(word),
            "{} does not contain {word:?}",
            index.display()
        );
    }
}

/// The diagrams the chapters show are copied into the output.
#[test]
fn copies_the_diagrams() {
    let out = built();
    for svg in files_with_ext(&common::src().join("img"), "svg") {
        let name = svg.file_name().expect("file name");
        assert!(
            out.join("img").join(name).is_file(),
            "{} was not copied into {}",
            svg.display(),
            out.join("img").display()
        );
    }
}
