//! The step chapters agree with the workspace and with each other: one
//! chapter per step crate, titled as the step's README is, every chapter
//! with the same sections in the same order, each showing its own step.

mod common;

use std::fs;

/// The sections every step chapter has, in this order.
const SECTIONS: &[&str] = &[
    "What you'll build",
    "Run it",
    "The kqueue ideas",
    "Walkthrough",
    "What changed since the previous step",
    "Test it",
    "Pitfalls",
    "Exercises",
    "Further reading",
];

/// The step crates (`steps/stepN`, not the shared `stepkit`), sorted.
fn step_dirs() -> Vec<String> {
    let mut steps: Vec<String> = fs::read_dir(common::root().join("steps"))
        .expect("read steps/")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("step")
                .is_some_and(|d| d.parse::<u32>().is_ok())
        })
        .collect();
    steps.sort();
    steps
}

/// The step chapters of SUMMARY.md: (title, file), in order.
fn step_chapters() -> Vec<(String, String)> {
    common::summary()
        .into_iter()
        .filter(|(_, file)| file.starts_with("step"))
        .collect()
}

/// Each step crate has exactly one chapter (`stepN-*.md`) in SUMMARY.md,
/// in order, and the list of steps the generator knows is the same.
#[test]
fn every_step_crate_has_a_chapter_in_order() {
    let steps = step_dirs();
    let chapters: Vec<String> = step_chapters()
        .iter()
        .map(|(_, f)| f.split('-').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        chapters, steps,
        "SUMMARY.md's step chapters (left) must match the crates in steps/ (right)"
    );
    assert_eq!(
        book::generated::STEPS.to_vec(),
        steps,
        "book::generated::STEPS must list the crates in steps/"
    );
}

/// A step chapter's title is its step README's title, and the chapter's
/// own heading: a reader moving between them sees one name.
#[test]
fn chapter_titles_match_the_step_readmes() {
    for (title, file) in step_chapters() {
        let step = file.split('-').next().unwrap_or("");
        let readme = fs::read_to_string(common::root().join("steps").join(step).join("README.md"))
            .unwrap_or_else(|e| panic!("steps/{step}/README.md: {e}"));
        let readme_title = readme.lines().next().unwrap_or("").trim_start_matches("# ");
        let chapter = fs::read_to_string(common::src().join(&file)).expect("read chapter");
        let heading = chapter
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("# ");
        assert_eq!(title, readme_title, "SUMMARY.md vs steps/{step}/README.md");
        assert_eq!(title, heading, "SUMMARY.md vs the first line of {file}");
    }
}

/// Every step chapter has the same `##` sections in the same order.
#[test]
fn every_step_chapter_has_the_same_sections() {
    for (_, file) in step_chapters() {
        let text = fs::read_to_string(common::src().join(&file)).expect("read chapter");
        let sections: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("## ")).collect();
        assert_eq!(sections, SECTIONS, "the sections of {file}");
    }
}

/// Each step chapter shows its own step: code from `steps/stepN`, its table
/// of tests, its transcript, and (after step 1) the diff from the step
/// before.
#[test]
fn every_step_chapter_shows_its_own_step() {
    let steps = step_dirs();
    for (i, (_, file)) in step_chapters().iter().enumerate() {
        let step = &steps[i];
        let text = fs::read_to_string(common::src().join(file)).expect("read chapter");
        let mut wanted = vec![
            format!("../../steps/{step}/src/main.rs:"),
            format!("../generated/tests/{step}.md"),
            format!("../generated/transcripts/{step}"),
        ];
        if i > 0 {
            wanted.push(format!("../generated/diffs/{}-{step}.diff", steps[i - 1]));
        }
        for w in wanted {
            assert!(text.contains(&w), "{file} does not include {w}");
        }
    }
}

/// Every step chapter hides its hints: exercises have `<details>` blocks.
#[test]
fn every_step_chapter_hides_its_hints() {
    for (_, file) in step_chapters() {
        let text = fs::read_to_string(common::src().join(&file)).expect("read chapter");
        let exercises = text.split("## Exercises").nth(1).unwrap_or("");
        assert!(
            exercises.matches("<details>").count() >= 3,
            "{file}: expected at least 3 hidden hints under Exercises"
        );
    }
}
