//! The root README's table of steps, written from the steps' own READMEs
//! between two markers, so that adding a step never means editing the root
//! README by hand.
//!
//! A step README begins with its title and, under it, one line saying what
//! the step is about (its tagline):
//!
//! ```text
//! # Step 3: the echo loop
//!
//! The classic simple kqueue echo server; clients dropped with `close()` alone.
//!
//! ## Goal
//! ```
//!
//! and its row in the root README reads `the echo loop: the classic simple
//! kqueue echo server; ...`.

use std::fs;
use std::path::Path;

use crate::steps::Step;

/// The README whose table is generated, relative to the repository root.
pub const FILE: &str = "README.md";

/// The line before the generated rows, and the line after them.
pub const BEGIN: &str = "<!-- steps: written by scripts/generate.sh from each steps/stepN/README.md (its title and the line under it); do not edit -->";
pub const END: &str = "<!-- end of steps -->";

/// `# Step 3: the echo loop` -> `the echo loop`.
pub fn title(readme: &str) -> Option<&str> {
    let first = readme.lines().next()?.strip_prefix("# Step ")?;
    let (number, title) = first.split_once(": ")?;
    (number.bytes().all(|b| b.is_ascii_digit()) && !title.trim().is_empty()).then(|| title.trim())
}

/// The paragraph between the title and the first `##` section, on one line.
pub fn tagline(readme: &str) -> Option<String> {
    let mut lines = readme.lines().skip(1).skip_while(|l| l.trim().is_empty());
    let mut words = Vec::new();
    for line in lines.by_ref() {
        if line.trim().is_empty() || line.starts_with('#') {
            break;
        }
        words.push(line.trim());
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// The table's rows, one per step.
fn rows(root: &Path, steps: &[Step]) -> Result<String, String> {
    let mut out = String::from("| step | what you build |\n|---|---|\n");
    for step in steps {
        let path = step.file("README.md");
        let text =
            fs::read_to_string(root.join(&path)).map_err(|e| format!("{}: {e}", path.display()))?;
        let title = title(&text).ok_or_else(|| {
            format!(
                "{}: the first line must be `# Step {}: TITLE`",
                path.display(),
                step.number
            )
        })?;
        let tagline = tagline(&text).ok_or_else(|| {
            format!(
                "{}: under the title, one line saying what the step is about (it becomes the root README's row)",
                path.display()
            )
        })?;
        let tagline = tagline.strip_suffix('.').unwrap_or(&tagline);
        let tagline = lower_first(tagline);
        out.push_str(&format!(
            "| [`{dir}`]({dir}/README.md) | {title}: {tagline} |\n",
            dir = step.dir.display()
        ));
    }
    Ok(out)
}

/// The book's table of steps (the introduction shows it): each step's
/// chapter, linked under its title, and its tagline; made from the same
/// READMEs as the root README's table, so it names every step there is.
pub fn book_table(root: &Path, steps: &[Step]) -> Result<String, String> {
    let mut out = String::from("| step | what you build |\n|---|---|\n");
    for step in steps {
        let path = step.file("README.md");
        let text =
            fs::read_to_string(root.join(&path)).map_err(|e| format!("{}: {e}", path.display()))?;
        let (Some(title), Some(tagline)) = (title(&text), tagline(&text)) else {
            return Err(format!("{}: no title or tagline", path.display()));
        };
        let chapter = crate::scaffold::chapter_file(root, step)
            .ok_or_else(|| format!("book/src/SUMMARY.md names no chapter for {}", step.name))?;
        out.push_str(&format!(
            "| [Step {}: {title}]({chapter}) | {} |\n",
            step.number,
            tagline.strip_suffix('.').unwrap_or(&tagline)
        ));
    }
    Ok(out)
}

/// The tagline continues the title after a colon: `The classic ...` ->
/// `the classic ...` (code such as `` `users[NUSERS]` `` is left alone).
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c)
            if c.is_ascii_uppercase()
                && !chars.clone().next().is_some_and(|n| n.is_ascii_uppercase()) =>
        {
            c.to_ascii_lowercase().to_string() + chars.as_str()
        }
        Some(c) => c.to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `readme` with the lines between [`BEGIN`] and [`END`] replaced by the
/// table of `steps`.
pub fn with_step_table(root: &Path, readme: &str, steps: &[Step]) -> Result<String, String> {
    let begin = readme
        .find(BEGIN)
        .ok_or_else(|| format!("{FILE}: no line `{BEGIN}` (the table of steps goes after it)"))?;
    let after_begin = begin + BEGIN.len();
    let end = readme[after_begin..]
        .find(END)
        .map(|e| after_begin + e)
        .ok_or_else(|| format!("{FILE}: no line `{END}` after the steps' marker"))?;
    Ok(format!(
        "{}\n{}\n{}",
        &readme[..after_begin],
        rows(root, steps)?,
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The title and the tagline come from the README's first lines; a
    /// README without them has neither.
    #[test]
    fn reads_title_and_tagline() {
        let text =
            "# Step 3: the echo loop\n\nThe classic echo server;\nclients dropped.\n\n## Goal\n";
        assert_eq!(title(text), Some("the echo loop"));
        assert_eq!(
            tagline(text).as_deref(),
            Some("The classic echo server; clients dropped.")
        );
        assert_eq!(title("# Echo\n"), None);
        assert_eq!(tagline("# Step 3: x\n\n## Goal\n"), None);
    }

    /// Only a capital that starts a word is lowered.
    #[test]
    fn lowers_only_a_leading_word() {
        assert_eq!(lower_first("The room"), "the room");
        assert_eq!(lower_first("`users[]`"), "`users[]`");
        assert_eq!(lower_first("EV_DELETE first"), "EV_DELETE first");
    }

    /// The generated rows replace what is between the markers, and nothing
    /// else; missing markers are named.
    #[test]
    fn replaces_only_between_the_markers() {
        let readme = format!("intro\n{BEGIN}\nold rows\n{END}\nrest\n");
        let out = with_step_table(Path::new("/nonexistent"), &readme, &[]).expect("no steps");
        assert_eq!(
            out,
            format!("intro\n{BEGIN}\n| step | what you build |\n|---|---|\n\n{END}\nrest\n")
        );
        let e = with_step_table(Path::new("/"), "no markers\n", &[]).unwrap_err();
        assert!(e.contains("no line `<!-- steps:"), "{e}");
    }
}
