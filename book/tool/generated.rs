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

use harness::checks::Stage;

use crate::steps::{self, Step};
use crate::{extract, plot, readme, stages, starter};

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
    out.push(Generated {
        path: Path::new(DIR).join("steps.md"),
        content: readme::book_table(root, &steps)?,
    });
    let readme = read(root, readme::FILE)?;
    out.push(Generated {
        path: PathBuf::from(readme::FILE),
        content: readme::with_step_table(root, &readme, &steps)?,
    });
    Ok(out)
}

/// Every step's starter, `steps/stepN/src/exercise.rs` (see
/// [`crate::starter`]). Not among [`static_files`]: `cargo test -p book`
/// checks those for freshness, and a learner edits a starter; only
/// `scripts/generate.sh --check` (CI, on a clean clone) checks these.
pub fn starters(root: &Path) -> Result<Vec<Generated>, String> {
    steps::discover(root)?
        .iter()
        .map(|step| {
            Ok(Generated {
                path: starter::path(step),
                content: starter::for_step(root, step)?,
            })
        })
        .collect()
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

/// The tests `contract_tests!` writes once per option it is given (in the
/// module named after the option).
const OPTION_TESTS: &[&str] = &["refuses_bad_values", "documents_its_default"];

/// The table of a step's tests, from its `tests/*.rs`: their own tests,
/// and those `contract_tests!` and `stage_tests!` write there.
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
        if let Some(options) = extract::contract_tests_in(&src) {
            let shown = format!("{name} (contract_tests!)");
            for t in contract_tests
                .iter()
                .filter(|t| !OPTION_TESTS.contains(&t.name.as_str()))
            {
                rows.push((shown.clone(), t.clone()));
            }
            for option in &options {
                for t in contract_tests
                    .iter()
                    .filter(|t| OPTION_TESTS.contains(&t.name.as_str()))
                {
                    let flag = format!("--{}", option.replace('_', "-"));
                    rows.push((
                        shown.clone(),
                        extract::TestFn {
                            name: format!("{option}::{}", t.name),
                            doc: format!("`{flag}`: {}", t.doc),
                            cases: Vec::new(),
                        },
                    ));
                }
            }
        }
        for call in extract::stage_tests_in(&src) {
            for ident in &call.stages {
                let stage = Stage::from_name(&ident.replace('_', "-")).ok_or_else(|| {
                    format!("steps/{step}/{name}: stage_tests! names `{ident}`, which is no stage of the harness")
                })?;
                let path = match &call.module {
                    Some(m) => format!("{m}::{ident}::"),
                    None => format!("{ident}::"),
                };
                let with = if call.args.is_empty() {
                    String::new()
                } else {
                    format!(", every server started with `{}`", call.args.join(" "))
                };
                rows.push((
                    format!("{name} (stage_tests!)"),
                    extract::TestFn {
                        name: path,
                        doc: format!(
                            "The harness's `{}` stage, one test per check{with}: {}.",
                            stage.name(),
                            stage.about()
                        ),
                        cases: stage.checks().iter().map(|c| c.name.to_string()).collect(),
                    },
                ));
            }
        }
        let promises = extract::house_tests_in(&src);
        if !promises.is_empty() {
            let house = read(root, "harness/src/house.rs")?;
            for promise in promises {
                let doc = extract::fn_doc(&house, &promise).ok_or_else(|| {
                    format!("steps/{step}/{name}: house_tests! names `{promise}`, which harness/src/house.rs has no `pub fn` for")
                })?;
                rows.push((
                    format!("{name} (house_tests!)"),
                    extract::TestFn {
                        name: promise,
                        doc,
                        cases: Vec::new(),
                    },
                ));
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
/// each file's leading `//!` module doc and its `// LESSON:` markers. Every
/// step rewrites that header whole (it retells the step), so in a diff it
/// is a wall of churn above the code that actually grew; the chapters say
/// it is left out. The lesson markers are for the starters, not the
/// reader. The hunk line numbers still count from the top of the real
/// files.
pub fn step_diff(root: &Path, from: &str, to: &str) -> Result<String, String> {
    let a = format!("steps/{from}/src/main.rs");
    let b = format!("steps/{to}/src/main.rs");
    let (a_src, b_src) = (read(root, &a)?, read(root, &b)?);
    let (a_lines, a_body) = shown_lines(&a_src);
    let (b_lines, b_body) = shown_lines(&b_src);
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
        // The same code (a step the scaffolder just made): say so, rather
        // than show an empty listing.
        Some(0) => Ok(format!(
            "--- {a}\n+++ {b}\n# no change: {b} is {a} but for its leading //! doc\n"
        )),
        Some(1) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| format!("{}\n", renumber_hunk_header(l, &a_lines, &b_lines)))
            .collect()),
        _ => Err(format!(
            "diff {a} {b} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// What a step diff shows of a file: every line but the leading `//!`
/// lines (and the blank lines after them) and the lesson markers. Returns
/// the real (1-based) line number of each line shown, and the text.
fn shown_lines(src: &str) -> (Vec<usize>, String) {
    let mut numbers = Vec::new();
    let mut text = String::new();
    let mut in_header = true;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if in_header && (t.starts_with("//!") || t.is_empty()) {
            continue;
        }
        in_header = false;
        if starter::is_marker(line) {
            continue;
        }
        numbers.push(i + 1);
        text.push_str(line);
        text.push('\n');
    }
    (numbers, text)
}

/// `@@ -l,s +l,s @@` with each start taken back to its line in the real
/// file (`a` and `b` map a line shown to its real number). Other lines
/// pass.
fn renumber_hunk_header(line: &str, a: &[usize], b: &[usize]) -> String {
    let renumber = |range: &str, real: &[usize]| -> Option<String> {
        let (start, len) = match range.split_once(',') {
            Some((s, l)) => (s, Some(l)),
            None => (range, None),
        };
        let start = start.parse::<usize>().ok()?;
        // Line 0 (an empty range at the very top) stays 0.
        let start = if start == 0 { 0 } else { *real.get(start - 1)? };
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
            renumber(old, a)?,
            renumber(new, b)?
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
    /// the code, any `//!` further down, and the lines' real numbers stay;
    /// lesson markers go.
    #[test]
    fn shows_all_but_the_module_doc_and_the_lesson_markers() {
        let src = "//! # Step\n//!\n//! Why.\n\nuse x;\n    // LESSON: a\nlet y;\n    // LESSON_END\n//! not a header\n";
        assert_eq!(
            shown_lines(src),
            (
                vec![5, 7, 9],
                "use x;\nlet y;\n//! not a header\n".to_string()
            )
        );
        assert_eq!(shown_lines("use x;\n"), (vec![1], "use x;\n".to_string()));
    }

    /// Hunk starts are taken back to the real files' line numbers; other
    /// lines and the text after the second `@@` are kept.
    #[test]
    fn renumbers_hunk_headers_to_the_real_lines() {
        let a: Vec<usize> = (24..40).collect();
        let b: Vec<usize> = (16..40).collect();
        assert_eq!(
            renumber_hunk_header("@@ -1,7 +1,9 @@ fn main() {", &a, &b),
            "@@ -24,7 +16,9 @@ fn main() {"
        );
        assert_eq!(
            renumber_hunk_header("@@ -5 +0,0 @@", &a, &b),
            "@@ -28 +0,0 @@"
        );
        assert_eq!(
            renumber_hunk_header("-@@ not a hunk", &a, &b),
            "-@@ not a hunk"
        );
    }
}
