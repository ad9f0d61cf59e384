//! `book/generated/`: what the chapters include that is derived from the
//! repository rather than cut out of it by anchor: transcripts, step diffs,
//! `kq` doc sections, tables of tests and stages, the measured plot; and
//! the root README's table of steps. No copy of source code lives here;
//! Rust and C listings are included by `ANCHOR:` from the files themselves.
//! The files are committed, so the book builds without running anything,
//! and checked for freshness: the pure ones by `cargo test -p book`, the
//! transcripts (which run the steps) by `scripts/generate.sh --check` in
//! `.ci/run`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::steps::{self, Step};
use crate::{extract, plot, readme, stages};

/// One generated file: where it goes (relative to the repository root) and
/// what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    pub content: String,
}

/// Where generated files live, relative to the repository root.
pub const DIR: &str = "book/generated";

/// Sections of the `kq` crate docs the appendix shows: (file, heading, slug).
/// Each becomes `book/generated/kq/<slug>.md`; a moved section is one edit
/// here.
pub const DOC_SECTIONS: &[(&str, &str, &str)] = &[
    (
        "kq/src/lib.rs",
        "kqueue and epoll, side by side",
        "side-by-side",
    ),
    (
        "kq/src/lib.rs",
        "Where Linux differs (each is tested in `kq/tests`)",
        "where-linux-differs",
    ),
    ("kq/src/linux/mod.rs", "Shape", "shape"),
];

/// Every generated file that needs no running program: step diffs, `kq`
/// doc sections, test tables, the stages table, the idle-descriptor plot
/// (drawn from the bench's committed data) and the README's table of steps.
pub fn static_files(root: &Path) -> Result<Vec<Generated>, String> {
    let steps = steps::discover(root)?;
    let mut out = Vec::new();
    for pair in steps.windows(2) {
        out.push(Generated {
            path: diff_path(&pair[0], &pair[1]),
            content: step_diff(root, &pair[0].name, &pair[1].name)?,
        });
    }
    for (file, heading, slug) in DOC_SECTIONS {
        let src = read(root, file)?;
        let content = extract::doc_section(&src, heading).map_err(|e| format!("{file}: {e}"))?;
        out.push(Generated {
            path: Path::new(DIR).join("kq").join(format!("{slug}.md")),
            content,
        });
    }
    let contract = read(root, "harness/src/contract.rs")?;
    let contract_tests = contract
        .find("macro_rules! contract_tests")
        .map(|at| extract::tests_in(&contract[at..]))
        .unwrap_or_default();
    if contract_tests.is_empty() {
        return Err("harness/src/contract.rs: no tests in `macro_rules! contract_tests`".into());
    }
    for step in &steps {
        out.push(Generated {
            path: tests_path(step),
            content: step_tests(root, &step.name, &contract_tests)?,
        });
    }
    out.push(Generated {
        path: Path::new(DIR).join("stages.md"),
        content: stages::table(root, &steps)?,
    });
    let data = read(root, plot::IDLE_FDS_DATA).map_err(|e| {
        format!("{e}\n(the bench writes it: cargo run --release -p bench -- --idle)")
    })?;
    out.push(Generated {
        path: PathBuf::from(plot::IDLE_FDS_SVG),
        content: plot::idle_fds_svg(&data).map_err(|e| format!("{}: {e}", plot::IDLE_FDS_DATA))?,
    });
    let readme = read(root, readme::FILE)?;
    out.push(Generated {
        path: PathBuf::from(readme::FILE),
        content: readme::with_step_table(root, &readme, &steps)?,
    });
    Ok(out)
}

/// `book/generated/diffs/stepA-stepB.diff`: what changed from one step to
/// the next.
pub fn diff_path(from: &Step, to: &Step) -> PathBuf {
    Path::new(DIR)
        .join("diffs")
        .join(format!("{}-{}.diff", from.name, to.name))
}

/// `book/generated/tests/stepN.md`: the table of a step's tests.
pub fn tests_path(step: &Step) -> PathBuf {
    Path::new(DIR)
        .join("tests")
        .join(format!("{}.md", step.name))
}

/// `book/generated/transcripts/FILE`.
pub fn transcript_path(file: &str) -> PathBuf {
    Path::new(DIR).join("transcripts").join(file)
}

/// The table of a step's tests, from its `tests/*.rs`.
fn step_tests(
    root: &Path,
    step: &str,
    contract_tests: &[extract::TestFn],
) -> Result<String, String> {
    let dir = root.join("steps").join(step).join("tests");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files {
        let src = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = format!(
            "tests/{}",
            file.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        if src.contains("contract_tests!(") {
            for t in contract_tests {
                rows.push((format!("{name} (contract_tests!)"), t.clone()));
            }
        }
        let tests = extract::tests_in(&src);
        let attributes = extract::test_attributes(&src);
        if tests.len() != attributes {
            return Err(format!(
                "steps/{step}/{name}: {attributes} test attributes but {} tests understood; \
                 book/tool/extract.rs `tests_in` needs teaching",
                tests.len()
            ));
        }
        for t in tests {
            rows.push((name.clone(), t));
        }
    }
    if rows.is_empty() {
        return Err(format!("steps/{step}/tests: no tests found"));
    }
    Ok(extract::test_table(&rows))
}

/// `diff -u` of two steps' `src/main.rs`, with stable headers, leaving out
/// each file's leading `//!` module doc. Every step rewrites that header
/// whole (it retells the step), so in a diff it is a wall of churn above
/// the code that actually grew; the chapters say it is left out. The hunk
/// line numbers still count from the top of the real files.
pub fn step_diff(root: &Path, from: &str, to: &str) -> Result<String, String> {
    let a = format!("steps/{from}/src/main.rs");
    let b = format!("steps/{to}/src/main.rs");
    let (a_src, b_src) = (read(root, &a)?, read(root, &b)?);
    let (a_skip, a_body) = without_module_doc(&a_src);
    let (b_skip, b_body) = without_module_doc(&b_src);
    // diff(1) compares files, so the bodies go to a scratch directory of
    // this call's own: tests may generate in parallel.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "book-step-diff-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let (a_tmp, b_tmp) = (scratch.join("a.rs"), scratch.join("b.rs"));
    let out = fs::write(&a_tmp, a_body)
        .and_then(|()| fs::write(&b_tmp, b_body))
        .map_err(|e| format!("{}: {e}", scratch.display()))
        .and_then(|()| {
            Command::new("diff")
                .args(["-u", "--label", &a, "--label", &b])
                .arg(&a_tmp)
                .arg(&b_tmp)
                .output()
                .map_err(|e| format!("cannot run diff (diffutils): {e}"))
        });
    let _ = fs::remove_dir_all(&scratch);
    let out = out?;
    // diff exits 1 when the files differ, which is the point here.
    match out.status.code() {
        Some(0) | Some(1) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| format!("{}\n", shift_hunk_header(l, a_skip, b_skip)))
            .collect()),
        _ => Err(format!(
            "diff {a} {b} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Splits a source file after its leading `//!` lines and the blank lines
/// that follow them: (how many lines that is, the rest).
fn without_module_doc(src: &str) -> (usize, &str) {
    let mut skipped = 0;
    let mut rest = src;
    let mut in_doc = true;
    while let Some((line, after)) = rest.split_once('\n') {
        let t = line.trim();
        let header = if in_doc && t.starts_with("//!") {
            true
        } else if t.is_empty() {
            in_doc = false;
            true
        } else {
            false
        };
        if !header {
            break;
        }
        skipped += 1;
        rest = after;
    }
    (skipped, rest)
}

/// `@@ -l,s +l,s @@` with each start moved down by the lines left out of
/// its file, so the numbers are those of the real file. Other lines pass.
fn shift_hunk_header(line: &str, a_skip: usize, b_skip: usize) -> String {
    let shift = |range: &str, by: usize| -> Option<String> {
        let (start, len) = match range.split_once(',') {
            Some((s, l)) => (s, Some(l)),
            None => (range, None),
        };
        let start = start.parse::<usize>().ok()? + by;
        Some(match len {
            Some(l) => format!("{start},{l}"),
            None => start.to_string(),
        })
    };
    let parsed = (|| {
        let rest = line.strip_prefix("@@ -")?;
        let (old, rest) = rest.split_once(" +")?;
        let (new, tail) = rest.split_once(" @@")?;
        Some(format!(
            "@@ -{} +{} @@{tail}",
            shift(old, a_skip)?,
            shift(new, b_skip)?
        ))
    })();
    parsed.unwrap_or_else(|| line.to_string())
}

fn read(root: &Path, file: &str) -> Result<String, String> {
    fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))
}

/// Writes `files` under `root`; returns the paths whose content changed.
pub fn write_all(root: &Path, files: &[Generated]) -> std::io::Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for f in files {
        let path = root.join(&f.path);
        if fs::read_to_string(&path).ok().as_deref() == Some(f.content.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, &f.content)?;
        changed.push(f.path.clone());
    }
    Ok(changed)
}

/// The repository root, from the book package's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("book/ has a parent")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header is the leading `//!` block and the blank lines after it;
    /// the code, and any `//!` further down, stay.
    #[test]
    fn leaves_out_only_the_leading_module_doc() {
        let src = "//! # Step\n//!\n//! Why.\n\nuse x;\n//! not a header\n";
        assert_eq!(without_module_doc(src), (4, "use x;\n//! not a header\n"));
        assert_eq!(without_module_doc("use x;\n"), (0, "use x;\n"));
    }

    /// Hunk starts are moved to the real files' line numbers; other lines
    /// and the text after the second `@@` are kept.
    #[test]
    fn shifts_hunk_headers_to_the_real_line_numbers() {
        assert_eq!(
            shift_hunk_header("@@ -1,7 +1,9 @@ fn main() {", 23, 15),
            "@@ -24,7 +16,9 @@ fn main() {"
        );
        assert_eq!(shift_hunk_header("@@ -5 +5,0 @@", 2, 3), "@@ -7 +8,0 @@");
        assert_eq!(shift_hunk_header("-@@ not a hunk", 2, 3), "-@@ not a hunk");
    }
}
