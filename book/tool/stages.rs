//! Which steps exercise which of the harness's stages, derived from the
//! steps' own tests: a step runs a stage when a file in its `tests/` names
//! it in `harness::stage_tests!(...)`, or as `Stage::Echo`. The harness itself names no step (it checks any
//! server, in any language), so this table is the one place the relation
//! is written, and it is written by the generator.

use std::fs;
use std::path::Path;

use harness::checks::Stage;

use crate::steps::Step;

/// Whether `src` names `Stage::<variant>` as a whole word.
fn names(src: &str, variant: &str) -> bool {
    let needle = format!("Stage::{variant}");
    src.match_indices(&needle).any(|(at, _)| {
        !src[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// For each stage, in the harness's order: the steps whose tests run it.
pub fn steps_per_stage(root: &Path, steps: &[Step]) -> Result<Vec<(Stage, Vec<String>)>, String> {
    let mut sources = Vec::new();
    for step in steps {
        let dir = root.join(step.file("tests"));
        let mut text = String::new();
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(
                    &fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                );
            }
        }
        sources.push((step.name.clone(), text));
    }
    Ok(Stage::ALL
        .into_iter()
        .map(|stage| {
            let variant = format!("{stage:?}");
            let ident = stage.name().replace('-', "_");
            let users = sources
                .iter()
                .filter(|(_, src)| {
                    names(src, &variant)
                        || crate::extract::stage_tests_in(src)
                            .iter()
                            .any(|call| call.stages.contains(&ident))
                })
                .map(|(name, _)| name.clone())
                .collect();
            (stage, users)
        })
        .collect())
}

/// The table the instructors' page shows beside `harness --list`.
pub fn table(root: &Path, steps: &[Step]) -> Result<String, String> {
    let mut out = String::from(
        "| stage | what a server must do | the steps whose tests run it |\n|---|---|---|\n",
    );
    for (stage, users) in steps_per_stage(root, steps)? {
        let users = if users.is_empty() {
            "(none yet)".to_string()
        } else {
            users.join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {users} |\n",
            stage.name(),
            stage.about()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Stage::Echo` counts; `Stage::EchoTwice` or a mere `echo` does not.
    #[test]
    fn names_a_stage_as_a_whole_word() {
        assert!(names("checks::run(Stage::Echo, c)", "Echo"));
        assert!(names("[Stage::Listen, Stage::Echo]", "Echo"));
        assert!(!names("Stage::EchoTwice", "Echo"));
        assert!(!names("the echo stage", "Echo"));
    }
}
