//! The house's shape: every step folder has all its parts (the test names
//! exactly what is missing), and the step chapters agree with the steps and
//! with each other: one chapter per step, titled as the step's README is,
//! every chapter with the same sections in the same order, each showing its
//! own step.

mod common;

use std::fs;
use std::path::PathBuf;

use book::steps::{self, Step};
use book::{generated, hints, readme, scenario, starter};

/// The sections every step chapter has, in this order (the scaffolder
/// writes them into a new chapter).
const SECTIONS: &[&str] = book::scaffold::SECTIONS;

/// The sections every step README has, in this order.
const README_SECTIONS: &[&str] = &["Goal", "Your turn", "Run", "Test", "Read", "Stuck?"];

/// The steps (`steps/stepN`, not the shared `stepkit`), by number.
fn steps() -> Vec<Step> {
    steps::discover(&common::root()).unwrap_or_else(|e| panic!("finding the steps: {e}"))
}

/// The step chapters of SUMMARY.md: (title, file), in order.
fn step_chapters() -> Vec<(String, String)> {
    common::summary()
        .into_iter()
        .filter(|(_, file)| file.starts_with("step"))
        .collect()
}

/// Everything a step is made of, for one step: what is missing, each
/// problem saying which file or section to add.
fn missing_parts(step: &Step, chapter: Option<&str>, previous: Option<&Step>) -> Vec<String> {
    let root = common::root();
    let mut missing = Vec::new();
    let dir = step.dir.display();
    let read = |rel: &std::path::Path| fs::read_to_string(root.join(rel)).ok();

    // The crate: named after its folder, with a binary and tests.
    match read(&step.file("Cargo.toml")) {
        None => missing.push(format!(
            "{dir}/Cargo.toml: add it (copy the previous step's, with name = \"{}\")",
            step.name
        )),
        Some(toml) if !toml.contains(&format!("name = \"{}\"", step.name)) => {
            missing.push(format!(
                "{dir}/Cargo.toml: the package must be named \"{}\"",
                step.name
            ))
        }
        Some(_) => {}
    }
    if !root.join(step.file("src/main.rs")).is_file() {
        missing.push(format!("{dir}/src/main.rs: add the step's server"));
    }

    // The learner's path: the binary's root that picks the solution or the
    // learner's file, the feature that switches, the lesson marked in the
    // solution, a hints file for each lesson, and the generated starter.
    // (Only that the starter exists: its content is the learner's, and
    // `scripts/generate.sh --check` is what says it is stale.)
    let toml = read(&step.file("Cargo.toml")).unwrap_or_default();
    if !(toml.contains("path = \"src/pick.rs\"") && toml.contains("exercise = []")) {
        missing.push(format!(
            "{dir}/Cargo.toml: declare the binary as steps/step1/Cargo.toml does ([[bin]] name = \"{}\", path = \"src/pick.rs\"; [features] exercise = [])",
            step.name
        ));
    }
    if !read(&step.file("src/pick.rs")).is_some_and(|p| p.contains("stepkit::pick!();")) {
        missing.push(format!(
            "{dir}/src/pick.rs: copy steps/step1/src/pick.rs (its one line, stepkit::pick!(), builds src/main.rs, or src/exercise.rs with --features exercise)"
        ));
    }
    // What crates.io and `cargo metadata` show: the README's title.
    if let Some(title) = read(&step.file("README.md"))
        .as_deref()
        .and_then(|t| t.lines().next())
    {
        let want = format!(
            "description = \"kqueue, step by step: {}\"",
            title.trim_start_matches("# ").replace('"', "\\\"")
        );
        if !toml.contains(&want) {
            missing.push(format!(
                "{dir}/Cargo.toml: under [package], add `{want}` (its README's title)"
            ));
        }
    }
    let lessons = match starter::for_step(&root, step) {
        Ok(_) => read(&step.file(hints::FILE))
            .and_then(|t| hints::parse(&step.file(hints::FILE), &t).ok())
            .unwrap_or_default(),
        Err(e) => {
            missing.push(format!(
                "{e}\n    (the learner's starter is made from the `// LESSON: NAME` ... `// LESSON_END` regions of {dir}/src/main.rs and the `## NAME` sections of {dir}/{}: book/tool/starter.rs, book/tool/hints.rs)",
                hints::FILE
            ));
            Vec::new()
        }
    };
    if !root.join(starter::path(step)).is_file() {
        missing.push(format!(
            "{}: not generated yet; run scripts/generate.sh",
            starter::path(step).display()
        ));
    }
    let tests = common::files_with_ext_if_any(&root.join(step.file("tests")), "rs");
    if tests.is_empty() {
        missing.push(format!(
            "{dir}/tests/: add the step's tests (one .rs file or more)"
        ));
    }

    // Its README: title, tagline, the same sections as the others.
    match read(&step.file("README.md")) {
        None => missing.push(format!(
            "{dir}/README.md: add it, starting `# Step {}: TITLE`, a line saying what the step is about, then the sections {README_SECTIONS:?}",
            step.number
        )),
        Some(text) => {
            if readme::title(&text).is_none() || !text.starts_with(&format!("# Step {}: ", step.number)) {
                missing.push(format!("{dir}/README.md: the first line must be `# Step {}: TITLE`", step.number));
            }
            if readme::tagline(&text).is_none() {
                missing.push(format!(
                    "{dir}/README.md: under the title, add one line saying what the step is about (the root README's table shows it)"
                ));
            }
            let sections: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("## ")).collect();
            if sections != README_SECTIONS {
                missing.push(format!(
                    "{dir}/README.md: the sections must be {README_SECTIONS:?} in this order; it has {sections:?}"
                ));
            }
        }
    }

    // Its transcript scenario, and the transcripts it writes.
    let scenario_path = step.file(scenario::FILE);
    let saved = match read(&scenario_path) {
        None => {
            missing.push(format!(
                "{}: add the scenario of the chapter's \"Run it\" transcripts (format: book/tool/scenario.rs)",
                scenario_path.display()
            ));
            Vec::new()
        }
        Some(text) => match scenario::parse(&step.name, &text) {
            Ok(commands) => scenario::saved_files(&commands),
            Err(e) => {
                missing.push(format!("{dir}/{e}"));
                Vec::new()
            }
        },
    };
    let mut generated: Vec<PathBuf> = saved
        .iter()
        .map(|f| generated::transcript_path(f))
        .collect();
    let your_turn = generated::transcript_path(&format!("{}-your-turn.txt", step.name));
    generated.push(your_turn.clone());
    generated.push(generated::tests_path(step));
    if let Some(previous) = previous {
        generated.push(generated::diff_path(previous, step));
    }
    for g in &generated {
        if !root.join(g).is_file() {
            missing.push(format!(
                "{}: not generated yet; run scripts/generate.sh",
                g.display()
            ));
        }
    }

    // Its chapter, which shows all of that.
    match chapter {
        None => missing.push(format!(
            "book/src/SUMMARY.md: add `- [Step {}: TITLE]({}-SLUG.md)` after the previous step's chapter, and write book/src/{}-SLUG.md",
            step.number, step.name, step.name
        )),
        Some(file) => match fs::read_to_string(common::src().join(file)) {
            Err(_) => missing.push(format!("book/src/{file}: listed in SUMMARY.md but missing")),
            Ok(text) => {
                let mut wanted = vec![format!("../../steps/{}/src/main.rs:", step.name)];
                // (The "Your turn" transcript is asked for below, in its
                // section.)
                wanted.extend(generated.iter().filter(|g| **g != your_turn).map(|g| {
                    format!("../{}", g.strip_prefix("book").unwrap_or(g).display())
                }));
                for w in wanted {
                    if !text.contains(&w) {
                        missing.push(format!("book/src/{file}: include {w}"));
                    }
                }
                // "Your turn": the file to open, the command, every part
                // to write (by its lesson's name), the first failure.
                let section = text
                    .split("\n## Your turn\n")
                    .nth(1)
                    .map(|rest| rest.split("\n## ").next().unwrap_or(""))
                    .unwrap_or("");
                let mut wanted_there = vec![
                    starter::path(step).display().to_string(),
                    format!("cargo learn check {}", step.number),
                    format!(
                        "../{}",
                        your_turn.strip_prefix("book").unwrap_or(&your_turn).display()
                    ),
                ];
                wanted_there.extend(lessons.iter().map(|l| format!("`{}`", l.name)));
                for w in wanted_there {
                    if !section.contains(&w) {
                        missing.push(format!(
                            "book/src/{file}: the section \"Your turn\" should name {w}"
                        ));
                    }
                }
            }
        },
    }
    missing
}

/// Every step folder has all its parts: crate, README (title, tagline,
/// sections), src/main.rs, tests, transcript scenario, the learner's path
/// (the binary's root and exercise feature, lesson markers, hints, the
/// starter), its chapter in SUMMARY.md in order, and its generated files
/// (the diff from the previous step, the tests table, the transcripts),
/// each included by the chapter, whose "Your turn" names the starter, the
/// command and every part to write. A failure lists exactly what to add.
#[test]
fn every_step_folder_has_all_its_parts() {
    let steps = steps();
    let chapters = step_chapters();
    let mut problems = Vec::new();
    // SUMMARY.md: one chapter per step, in the steps' order.
    let chapter_steps: Vec<String> = chapters
        .iter()
        .map(|(_, f)| f.split('-').next().unwrap_or("").to_string())
        .collect();
    let step_names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
    for name in &chapter_steps {
        if !step_names.contains(name) {
            problems.push(format!(
                "book/src/SUMMARY.md lists a chapter for {name}, but there is no steps/{name}"
            ));
        }
    }
    let in_summary: Vec<&String> = chapter_steps
        .iter()
        .filter(|n| step_names.contains(n))
        .collect();
    let in_order: Vec<&String> = step_names
        .iter()
        .filter(|n| chapter_steps.contains(n))
        .collect();
    if in_summary != in_order {
        problems.push(format!(
            "book/src/SUMMARY.md: the step chapters must be in the steps' order {step_names:?}; they are {chapter_steps:?}"
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        let chapter = chapters
            .iter()
            .find(|(_, f)| f.split('-').next() == Some(step.name.as_str()))
            .map(|(_, f)| f.as_str());
        let previous = i.checked_sub(1).map(|p| &steps[p]);
        problems.extend(missing_parts(step, chapter, previous));
    }
    assert!(
        problems.is_empty(),
        "{} thing(s) missing from the steps (CONTRIBUTING.md, \"Add a step\"):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// A step chapter's title is its step README's title, and the chapter's
/// own heading: a reader moving between them sees one name.
#[test]
fn chapter_titles_match_the_step_readmes() {
    for (title, file) in step_chapters() {
        let step = file.split('-').next().unwrap_or("");
        let text = fs::read_to_string(common::root().join("steps").join(step).join("README.md"))
            .unwrap_or_else(|e| panic!("steps/{step}/README.md: {e}"));
        let readme_title = text.lines().next().unwrap_or("").trim_start_matches("# ");
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

/// Every exercise solution (`steps/stepN/exercises/*.diff`) is shown by a
/// chapter (Appendix C), so none lingers unseen and none is missing.
#[test]
fn every_exercise_solution_is_shown() {
    let mut all_chapters = String::new();
    for chapter in book::includes::markdown_files(&common::src()).expect("list chapters") {
        all_chapters.push_str(&fs::read_to_string(chapter).expect("read chapter"));
    }
    let mut unshown = Vec::new();
    let mut solutions = 0;
    for step in steps() {
        let dir = common::root().join(step.file("exercises"));
        for diff in common::files_with_ext_if_any(&dir, "diff") {
            solutions += 1;
            let name = diff.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let wanted = format!("../../steps/{}/exercises/{name}", step.name);
            if !all_chapters.contains(&wanted) {
                unshown.push(wanted);
            }
        }
    }
    assert!(solutions > 0, "no steps/stepN/exercises/*.diff at all");
    assert!(
        unshown.is_empty(),
        "exercise solutions no chapter includes (show them in book/src/appendix-c-solutions.md): {unshown:?}"
    );
}

/// Every exercise solution still applies to its step's `src/main.rs` as it
/// is now: each hunk's old lines are found there, in order, unchanged.
#[test]
fn every_exercise_solution_applies_to_its_steps_main_rs() {
    let mut stale = Vec::new();
    for step in steps() {
        let dir = common::root().join(step.file("exercises"));
        let main_rs = step.file("src/main.rs");
        let source = fs::read_to_string(common::root().join(&main_rs)).expect("read main.rs");
        let lines: Vec<&str> = source.lines().collect();
        for diff in common::files_with_ext_if_any(&dir, "diff") {
            let text = fs::read_to_string(&diff).expect("read a diff");
            let name = diff.strip_prefix(common::root()).unwrap_or(&diff).display();
            if let Err(why) = hunks_apply(&text, &lines) {
                stale.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "exercise solutions that no longer apply to their step's src/main.rs (apply them with \
         `patch -o /tmp/solution.rs steps/stepN/src/main.rs < DIFF`, check the result, then remake \
         the diff with `diff -u`):\n  {}",
        stale.join("\n  ")
    );
}

/// Every step has at least two classic mistakes (`steps/stepN/mistakes/
/// *.diff`), each saying on its first line what it is and the test that
/// catches it (a test of the step's or a check of the harness), is named
/// by the instructors' page, and still applies to its step's `src/main.rs`
/// as it is now. (`.ci/run` proves each fails there, at that test.)
#[test]
fn every_step_has_mistakes_that_apply_to_its_main_rs() {
    let mut checks = String::new();
    for file in common::files_with_ext_if_any(&common::root().join("harness/src/checks"), "rs") {
        checks.push_str(&fs::read_to_string(file).expect("read a harness check"));
    }
    let instructors =
        fs::read_to_string(common::src().join("instructors.md")).expect("read instructors.md");
    let mut problems = Vec::new();
    for step in steps() {
        let main_rs = step.file("src/main.rs");
        let source = fs::read_to_string(common::root().join(&main_rs)).expect("read main.rs");
        let lines: Vec<&str> = source.lines().collect();
        let mut tests = String::new();
        for file in common::files_with_ext_if_any(&common::root().join(step.file("tests")), "rs") {
            tests.push_str(&fs::read_to_string(file).expect("read a test file"));
        }
        let dir = common::root().join(step.file("mistakes"));
        let mistakes = common::files_with_ext_if_any(&dir, "diff");
        if mistakes.len() < 2 {
            problems.push(format!(
                "{}/mistakes/: {} mistake(s); write at least two, each a learner's classic \
                 mistake in the step's lesson, as `diff -u` against src/main.rs (CONTRIBUTING.md, \
                 \"The learner's path\")",
                step.dir.display(),
                mistakes.len()
            ));
        }
        for diff in mistakes {
            let text = fs::read_to_string(&diff).expect("read a diff");
            let name = diff.strip_prefix(common::root()).unwrap_or(&diff).display();
            let first = text.lines().next().unwrap_or("");
            let caught = first
                .strip_prefix("The mistake: ")
                .and_then(|rest| rest.rsplit_once(". Caught by: "))
                .map(|(_, test)| test);
            match caught {
                None => problems.push(format!(
                    "{name}: its first line should be `The mistake: WHAT. Caught by: TEST`, not {first:?}"
                )),
                // `A or B`: which of two fails first depends on timing.
                Some(caught) => {
                    for test in caught.split(" or ") {
                        if !tests.contains(&format!("fn {test}("))
                            && !checks.contains(&format!("    {test}: \""))
                        {
                            problems.push(format!(
                                "{name}: names {test:?}, which is neither a test in {}/tests/ \
                                 nor a check of the harness",
                                step.dir.display()
                            ));
                        }
                    }
                }
            }
            let file = diff.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            if !instructors.contains(&format!("`{file}`")) {
                problems.push(format!(
                    "{name}: book/src/instructors.md (\"Mistakes people make\") should name it, \
                     `{file}`, with the test that catches it"
                ));
            }
            if let Err(why) = hunks_apply(&text, &lines) {
                problems.push(format!(
                    "{name}: {why}; make the same mistake in a copy of {} and remake the diff \
                     with `diff -u`",
                    main_rs.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the steps' classic mistakes:\n  {}",
        problems.join("\n  ")
    );
}

/// Whether every hunk of the unified diff `diff` finds its old lines (context
/// and removed lines) in `lines`, each hunk after the one before, as `patch
/// --fuzz=0` needs them. The error names the first hunk that does not.
fn hunks_apply(diff: &str, lines: &[&str]) -> Result<(), String> {
    let mut hunks: Vec<(String, Vec<&str>)> = Vec::new();
    for line in diff.lines() {
        if line.starts_with("@@") {
            hunks.push((line.to_string(), Vec::new()));
        } else if let Some((_, old)) = hunks.last_mut() {
            if let Some(rest) = line.strip_prefix(' ').or_else(|| line.strip_prefix('-')) {
                old.push(rest);
            } else if line.is_empty() {
                old.push("");
            }
        }
    }
    if hunks.is_empty() {
        return Err("no hunks".into());
    }
    let mut from = 0;
    for (header, old) in &hunks {
        let found = (from..=lines.len().saturating_sub(old.len()))
            .find(|&at| lines[at..at + old.len()] == old[..])
            .ok_or_else(|| format!("the hunk `{header}` finds its old lines nowhere"))?;
        from = found + old.len();
    }
    Ok(())
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

/// The instructors' page plans every step: each step's chapter is linked
/// from a session's timetable, and has a demo (`**Step N.**`) and its
/// mistakes (`- **Step N**`); a step added without them fails here. (The
/// introduction's table of steps is generated, so it names every step.)
#[test]
fn the_instructors_page_plans_every_step() {
    let text =
        fs::read_to_string(common::src().join("instructors.md")).expect("read instructors.md");
    let mut missing = Vec::new();
    for step in steps() {
        let n = step.number;
        if !text.contains(&format!("]({}-", step.name)) {
            missing.push(format!("a timetable row linking step {n}'s chapter"));
        }
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("**Step {n}.**")))
        {
            missing.push(format!("a demo for step {n} (a paragraph starting `**Step {n}.**` under \"A demo for each step\")"));
        }
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("- **Step {n}**")))
        {
            missing.push(format!(
                "the mistakes people make in step {n} (`- **Step {n}**: ...`)"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "book/src/instructors.md names fewer steps than exist; add:\n{}",
        missing.join("\n")
    );
    let intro =
        fs::read_to_string(common::src().join("introduction.md")).expect("read introduction.md");
    assert!(
        intro.contains("{{#include ../generated/steps.md}}"),
        "book/src/introduction.md should include ../generated/steps.md, the table of every step"
    );
}

/// How deep in block quotes a Markdown line is: `> > x` is 2.
fn quote_depth(line: &str) -> usize {
    let mut rest = line.trim_start();
    let mut depth = 0;
    while let Some(after) = rest.strip_prefix('>') {
        depth += 1;
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    depth
}

/// The 1-based lines of `markdown` that open a block quote right under a
/// line of text, outside code blocks: in this book a quote (and a `> [!NOTE]`)
/// always follows a blank line, so such a line is prose that was wrapped
/// before a `>` (a shell redirection, `data > 0`), which Markdown then
/// renders as a quote.
fn accidental_quotes(markdown: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    let mut previous = "";
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(marker) => {
                if trimmed.starts_with(marker) {
                    fence = None;
                }
            }
            None => {
                if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
                    fence = Some(marker);
                } else if !previous.trim().is_empty() && quote_depth(line) > quote_depth(previous) {
                    found.push(i + 1);
                }
            }
        }
        previous = line;
    }
    found
}

/// A wrapped line that starts with `>` is caught (in a list item, and
/// inside a quote, where it would open a quote in the quote); quotes after
/// a blank line, `>` in the middle of a line and in code blocks are not.
#[test]
fn finds_a_wrapped_line_that_markdown_would_render_as_a_quote() {
    let md = "1. in a second terminal `nc 127.0.0.1 8080 < /dev/null\n   > /dev/null &`\n\n\
              > a quote, `data`\n> > 0 is not nested\n\n> [!NOTE]\n> fine, `data` > 0\n\n\
              ```sh\necho x\n> y\n```\n";
    assert_eq!(accidental_quotes(md), [2, 5]);
}

/// No chapter has a line of prose that Markdown renders as a block quote
/// by accident (a wrapped line starting with `>`).
#[test]
fn no_wrapped_line_of_a_chapter_starts_a_quote() {
    let mut found = Vec::new();
    for (name, text) in every_page() {
        for line in accidental_quotes(&text) {
            let shown = text.lines().nth(line - 1).unwrap_or("").trim();
            found.push(format!("{name}:{line}: {shown}"));
        }
    }
    assert!(
        found.is_empty(),
        "lines that start a block quote right under a line of text (rewrap them so that \
         no line starts with `>`; a quote meant as one goes after a blank line):\n  {}",
        found.join("\n  ")
    );
}

/// A walkthrough's listing label, `_steps/step4/src/main.rs_, `Clients::remove`:
/// the three modes.`, as (line, file, the names in backticks before the
/// label's colon).
fn listing_labels(markdown: &str) -> Vec<(usize, String, Vec<String>)> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut labels = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix('_') else {
            continue;
        };
        let Some((file, after)) = rest.split_once("_, ") else {
            continue;
        };
        if !file.contains('/') || file.contains(' ') {
            continue;
        }
        // The label runs on over its paragraph, up to the first colon
        // outside backticks (`Clients::remove` has two inside).
        let mut paragraph = after.to_string();
        for more in lines[i + 1..].iter().take_while(|l| !l.trim().is_empty()) {
            paragraph.push(' ');
            paragraph.push_str(more.trim());
        }
        let mut head = String::new();
        let mut in_code = false;
        for c in paragraph.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if c == ':' && !in_code {
                break;
            }
            head.push(c);
        }
        let names = head
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        labels.push((i + 1, file.to_string(), names));
    }
    labels
}

/// A source file as a learner reads it, for looking names up: without the
/// `ANCHOR` and `LESSON` lines (the starter has neither) and without
/// comments (`//` and `/* */`, in Rust and C).
fn code_without_comments(source: &str) -> String {
    let mut code = String::new();
    let mut in_block = false;
    for line in source.lines() {
        if book::includes::anchor_start(line).is_some()
            || book::includes::anchor_end(line).is_some()
            || starter::is_marker(line)
        {
            continue;
        }
        let mut rest = line;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(end) => {
                        rest = &rest[end + 2..];
                        in_block = false;
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("//");
                let block = rest.find("/*");
                match (line_comment, block) {
                    (Some(l), b) if b.is_none_or(|b| l < b) => {
                        code.push_str(&rest[..l]);
                        break;
                    }
                    (_, Some(b)) => {
                        code.push_str(&rest[..b]);
                        code.push(' ');
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    _ => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        code.push('\n');
    }
    code
}

/// Whether `word` is an identifier of `code`, whole (not part of a longer one).
fn has_identifier(code: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// What is wrong with a label's names, looked up in `code`: each must be an
/// item the file has (a function, type, field, constant, variable, macro;
/// `Type::method` by each part), not only an anchor's name, which the
/// starter and the rendered listing leave out.
fn unknown_label_names(names: &[String], code: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    for name in names {
        let bare = name.trim_end_matches("()").trim_end_matches('!');
        let parts: Vec<&str> = bare.split("::").collect();
        let is_path = parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if !is_path || !parts.iter().all(|p| has_identifier(code, p)) {
            unknown.push(name.clone());
        }
    }
    unknown
}

/// A label naming only an anchor (or a comment's word) is caught; one
/// naming a function, a method by its type, a variable or a macro is not.
#[test]
fn finds_a_label_that_names_no_item_of_its_file() {
    let md = "_steps/step9/src/main.rs_, `remove_client`: the modes.\n\n\
              _steps/step9/src/main.rs_, `Clients::remove` and\n`stale`: both.\n\n\
              _steps/step9/src/main.rs_, in `main`: `EV_SET` and `kevent(changes)`.\n";
    let labels = listing_labels(md);
    let names: Vec<&Vec<String>> = labels.iter().map(|(_, _, n)| n).collect();
    assert_eq!(
        names,
        [
            &vec!["remove_client".to_string()],
            &vec!["Clients::remove".into(), "stale".into()],
            &vec!["main".into()]
        ]
    );
    assert_eq!(labels[1].0, 3);
    let code = code_without_comments(
        "// ANCHOR: remove_client\nimpl Clients {\n    fn remove(&self) {} // remove_client\n}\n\
         /* make_room */ fn main() { let stale = true; }\n// ANCHOR_END: remove_client\n",
    );
    let all: Vec<String> = [
        "remove_client",
        "Clients::remove",
        "stale",
        "main",
        "make_room",
        "Clients::add",
        "removed",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        unknown_label_names(&all, &code),
        ["remove_client", "make_room", "Clients::add", "removed"]
    );
}

/// Every listing label of every chapter names things the labelled file
/// has, as a learner reads it: the starter and the rendered listing leave
/// the `ANCHOR` lines out, so a label naming an anchor names nothing they
/// can find.
#[test]
fn every_listing_label_names_items_of_its_file() {
    let mut wrong = Vec::new();
    let mut labels_seen = 0;
    for (name, text) in every_page() {
        for (line, file, names) in listing_labels(&text) {
            labels_seen += 1;
            let Ok(source) = fs::read_to_string(common::root().join(&file)) else {
                wrong.push(format!(
                    "{name}:{line}: labels {file}, which does not exist"
                ));
                continue;
            };
            let unknown = unknown_label_names(&names, &code_without_comments(&source));
            if !unknown.is_empty() {
                wrong.push(format!(
                    "{name}:{line}: the label names {}, which {file} has nowhere in its code \
                     (only in a comment or an ANCHOR line, or not at all)",
                    unknown
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    assert!(
        labels_seen > 50,
        "found only {labels_seen} listing labels: is the label format still `_FILE_, `name`: ...`?"
    );
    assert!(
        wrong.is_empty(),
        "listing labels a learner cannot find in the file (name the function, type, field, \
         constant or variable the listing shows, or where it is, as in \"in `main`\"):\n  {}",
        wrong.join("\n  ")
    );
}

/// A lesson that makes a value (`// LESSON: echo -> got: usize`) is a
/// `let got: usize = todo!(...);` in the starter, and the statements its
/// last hint shows do not compile put in place of the `todo!()` alone: that
/// hint says to replace the whole `let` statement, naming it exactly.
#[test]
fn a_value_lessons_last_hint_says_to_replace_its_whole_let() {
    let mut wrong = Vec::new();
    for step in steps() {
        let main_rs = step.file("src/main.rs");
        let source = fs::read_to_string(common::root().join(&main_rs)).expect("read main.rs");
        let regions = starter::regions(&main_rs, &source).expect("the lesson markers");
        let hints_path = step.file(hints::FILE);
        let text = fs::read_to_string(common::root().join(&hints_path)).expect("read hints.md");
        let lessons = hints::parse(&hints_path, &text).expect("parse hints.md");
        for region in regions {
            let Some(binding) = &region.binding else {
                continue;
            };
            let wanted = format!("In place of the whole `let {binding} = todo!(...);` statement:");
            let last = lessons
                .iter()
                .find(|l| l.name == region.name)
                .and_then(|l| l.hints.last())
                .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            if !last.starts_with(&wanted) {
                wrong.push(format!(
                    "{}, `## {}`: the last hint should start `{wanted}`; it starts {:?}",
                    hints_path.display(),
                    region.name,
                    last.chars().take(70).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "hints whose code would not compile where the learner puts it:\n  {}",
        wrong.join("\n  ")
    );
}

/// Every lesson of every step has a goal, and the challenge starter made
/// from them names no kqueue call in any `todo!()`: at that level the
/// learner finds the calls (the method is the first hint, not the task).
#[test]
fn every_lesson_has_a_goal_and_the_challenge_todos_name_no_call() {
    let mut wrong = Vec::new();
    for step in steps() {
        let hints_path = step.file(hints::FILE);
        let text = fs::read_to_string(common::root().join(&hints_path)).expect("read hints.md");
        // parse() refuses a lesson without a goal; say it here as a test.
        let lessons = match hints::parse(&hints_path, &text) {
            Ok(l) => l,
            Err(e) => {
                wrong.push(e);
                continue;
            }
        };
        for lesson in lessons.iter().filter(|l| l.goal.trim().is_empty()) {
            wrong.push(format!(
                "{}, `## {}`: no goal",
                hints_path.display(),
                lesson.name
            ));
        }
        let challenge = starter::for_step_at(&common::root(), &step, starter::Level::Challenge)
            .unwrap_or_else(|e| panic!("the challenge starter of {}: {e}", step.name));
        let guided = starter::for_step(&common::root(), &step).expect("the guided starter");
        let todos = todo_texts(&challenge);
        if todos.len() != lessons.len() || todos.len() != todo_texts(&guided).len() {
            wrong.push(format!(
                "{}: the challenge starter has {} todo!()s, the guided one {}, the lessons are {}",
                step.name,
                todos.len(),
                todo_texts(&guided).len(),
                lessons.len()
            ));
        }
        for todo in todos {
            // The lesson's name comes first, as in `ev_delete: ...`: the
            // learner's handle on the part, not a call to make.
            let text = todo.split_once(": ").map_or(todo.as_str(), |(_, t)| t);
            for word in hints::CALL_WORDS {
                if text
                    .to_ascii_lowercase()
                    .contains(&word.to_ascii_lowercase())
                {
                    wrong.push(format!("{}: todo!(\"{todo}\") names `{word}`", step.name));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "challenge starters that give the method away, or lessons without a goal:\n  {}",
        wrong.join("\n  ")
    );
}

/// The texts of the `todo!("...")`s of a starter, on one line or three.
fn todo_texts(src: &str) -> Vec<String> {
    src.match_indices("todo!(")
        .filter_map(|(at, m)| {
            let rest = src[at + m.len()..].trim_start().strip_prefix('"')?;
            let mut text = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(text),
                    '\\' => text.extend(chars.next()),
                    c => text.push(c),
                }
            }
            None
        })
        .collect()
}

/// Every Markdown page of the book: its path from the repository root, and
/// its text.
fn every_page() -> Vec<(String, String)> {
    book::includes::markdown_files(&common::src())
        .expect("list chapters")
        .into_iter()
        .map(|chapter| {
            let text = fs::read_to_string(&chapter).expect("read chapter");
            let name = chapter
                .strip_prefix(common::root())
                .unwrap_or(&chapter)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}
