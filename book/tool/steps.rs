//! The list of steps, written nowhere: it is whatever `steps/step<N>`
//! folders exist, in numeric order (`step10` after `step9`). Every tool
//! that needs the steps asks here: the book generator (diffs, test tables,
//! transcripts, the README's table), the book's shape tests, and, through
//! `book-gen --list-steps`, the generation script. `steps/stepkit` is the
//! steps' shared plumbing, not a step.

use std::fs;
use std::path::{Path, PathBuf};

/// One step: `steps/step<number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The folder's, package's and binary's name: `step3`.
    pub name: String,
    pub number: u32,
    /// `steps/step3`, relative to the repository root.
    pub dir: PathBuf,
}

impl Step {
    /// A file of the step, relative to the repository root:
    /// `steps/step3/README.md`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The step number in a folder name: `step12` -> 12; anything else
/// (`stepkit`, `step`, `step3a`) -> None.
pub fn number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("step")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every `steps/step<N>` folder under `root`, by number.
pub fn discover(root: &Path) -> Result<Vec<Step>, String> {
    let dir = root.join("steps");
    let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut steps = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        if !entry.path().is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Some(number) = number(&name) {
            steps.push(Step {
                dir: Path::new("steps").join(&name),
                name,
                number,
            });
        }
    }
    steps.sort_by_key(|s| s.number);
    for pair in steps.windows(2) {
        if pair[0].number == pair[1].number {
            return Err(format!(
                "steps/{} and steps/{} are the same step number",
                pair[0].name, pair[1].name
            ));
        }
    }
    if steps.is_empty() {
        return Err(format!("no step<N> folders in {}", dir.display()));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `step` followed by digits is a step; stepkit is not.
    #[test]
    fn only_step_and_digits_name_a_step() {
        assert_eq!(number("step1"), Some(1));
        assert_eq!(number("step10"), Some(10));
        for not_a_step in ["stepkit", "step", "step3a", "Step3", "steps"] {
            assert_eq!(number(not_a_step), None, "{not_a_step}");
        }
    }

    /// Steps sort by number, so step10 comes after step9, and stepkit and
    /// files are left out.
    #[test]
    fn sorts_numerically_and_skips_what_is_not_a_step() {
        let root = std::env::temp_dir().join(format!("book-steps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["step9", "step10", "step2", "stepkit"] {
            fs::create_dir_all(root.join("steps").join(d)).expect("create step dir");
        }
        fs::write(root.join("steps").join("step11"), "a file").expect("write file");
        let names: Vec<String> = discover(&root)
            .expect("discover")
            .into_iter()
            .map(|s| s.name)
            .collect();
        let _ = fs::remove_dir_all(&root);
        assert_eq!(names, ["step2", "step9", "step10"]);
    }
}
