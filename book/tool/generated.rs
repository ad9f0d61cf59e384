//! `book/generated/`: what the chapters include that is derived from the
//! repository rather than cut out of it by anchor: transcripts, step diffs,
//! `kq` doc sections, tables of tests. No copy of source code lives here;
//! Rust and C listings are included by `ANCHOR:` from the files themselves.
//! The files are committed, so the book builds without running anything,
//! and checked for freshness: the pure ones (diffs, kq doc sections, test
//! tables) by `cargo test -p book`, the transcripts by
//! `scripts/book-transcripts.sh --check` in `.ci/run`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::extract;

/// One generated file: where it goes (relative to the repository root) and
/// what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub path: PathBuf,
    pub content: String,
}

/// Where generated files live, relative to the repository root.
pub const DIR: &str = "book/generated";

/// The step crates the book has a chapter for, in order.
pub const STEPS: [&str; 5] = ["step1", "step2", "step3", "step4", "step5"];

/// Sections of the `kq` crate docs the appendix shows: (file, heading, slug).
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
    ("kq/src/lib.rs", "Cost", "cost"),
    ("kq/src/linux/mod.rs", "Shape", "shape"),
];

/// Every generated file that needs no running program: step diffs, `kq`
/// doc sections, test tables.
pub fn static_files(root: &Path) -> Result<Vec<Generated>, String> {
    let mut out = Vec::new();
    for pair in STEPS.windows(2) {
        out.push(Generated {
            path: Path::new(DIR)
                .join("diffs")
                .join(format!("{}-{}.diff", pair[0], pair[1])),
            content: step_diff(root, pair[0], pair[1])?,
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
    for step in STEPS {
        out.push(Generated {
            path: Path::new(DIR).join("tests").join(format!("{step}.md")),
            content: step_tests(root, step, &contract_tests)?,
        });
    }
    Ok(out)
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

/// `diff -u` of two steps' `src/main.rs`, with stable headers.
pub fn step_diff(root: &Path, from: &str, to: &str) -> Result<String, String> {
    let a = format!("steps/{from}/src/main.rs");
    let b = format!("steps/{to}/src/main.rs");
    let out = Command::new("diff")
        .args(["-u", "--label", &a, "--label", &b, &a, &b])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run diff (diffutils): {e}"))?;
    // diff exits 1 when the files differ, which is the point here.
    match out.status.code() {
        Some(0) | Some(1) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => Err(format!(
            "diff {a} {b} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
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
