//! One step seen from the learner's side: its starter (as the generator
//! makes it now), the learner's file, which `todo!()`s are left in it, its
//! lessons and hints, its title and chapter.

use std::fs;
use std::path::{Path, PathBuf};

use book::hints::{self, Lesson};
use book::starter::Level;
use book::steps::Step;
use book::{extract, readme, starter};

pub struct Exercise {
    pub step: Step,
    root: PathBuf,
}

impl Exercise {
    pub fn new(root: &Path, step: Step) -> Exercise {
        Exercise {
            step,
            root: root.to_path_buf(),
        }
    }

    pub fn number(&self) -> u32 {
        self.step.number
    }

    /// `steps/step3/src/exercise.rs`, as the learner would type it.
    pub fn file(&self) -> String {
        starter::path(&self.step).display().to_string()
    }

    fn path(&self) -> PathBuf {
        self.root.join(starter::path(&self.step))
    }

    /// The learner's file, if it is there.
    pub fn current(&self) -> Option<String> {
        fs::read_to_string(self.path()).ok()
    }

    /// The starter at `level` as the generator makes it from the step's
    /// solution.
    pub fn starter(&self, level: Level) -> Result<String, String> {
        starter::for_step_at(&self.root, &self.step, level)
    }

    /// Whether the learner's file is the starter at `level`. Whitespace
    /// does not count, so `cargo fmt` (of any version) leaves a starter
    /// untouched.
    pub fn is_starter(&self, level: Level) -> Result<bool, String> {
        let starter = self.starter(level)?;
        Ok(self
            .current()
            .is_some_and(|mine| same_tokens(&mine, &starter)))
    }

    /// Whether the learner's file is a starter, at either level: nothing of
    /// theirs is in it.
    pub fn untouched(&self) -> Result<bool, String> {
        for level in Level::ALL {
            if self.is_starter(level)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes the starter at `level` over the learner's file.
    pub fn restore(&self, level: Level) -> Result<(), String> {
        let starter = self.starter(level)?;
        fs::write(self.path(), starter).map_err(|e| format!("{}: {e}", self.file()))
    }

    /// The lessons, in the order of `hints.md`.
    pub fn lessons(&self) -> Result<Vec<Lesson>, String> {
        let rel = self.step.file(hints::FILE);
        let text = fs::read_to_string(self.root.join(&rel))
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        hints::parse(&rel, &text)
    }

    /// The lessons whose `todo!()` is still in the learner's file.
    pub fn todos_left(&self) -> Result<Vec<Lesson>, String> {
        let mine = self.current().unwrap_or_default();
        Ok(self
            .lessons()?
            .into_iter()
            .filter(|l| has_todo(&mine, &l.name))
            .collect())
    }

    /// `create a kqueue`, from the step's README.
    pub fn title(&self) -> String {
        fs::read_to_string(self.root.join(self.step.file("README.md")))
            .ok()
            .and_then(|t| readme::title(&t).map(str::to_string))
            .unwrap_or_default()
    }

    /// The step's chapter: its title and file under `book/src`, from
    /// `SUMMARY.md`.
    pub fn chapter(&self) -> Option<(String, String)> {
        let summary = fs::read_to_string(self.root.join("book/src/SUMMARY.md")).ok()?;
        summary.lines().find_map(|l| {
            let open = l.find('[')?;
            let mid = l[open..].find("](")? + open;
            let close = l[mid..].find(')')? + mid;
            let file = &l[mid + 2..close];
            file.starts_with(&format!("{}-", self.step.name))
                .then(|| (l[open + 1..mid].to_string(), file.to_string()))
        })
    }

    /// The step's tests, in the order its test files (by name) declare
    /// them: the order a failure is picked in.
    pub fn test_order(&self) -> Vec<String> {
        let dir = self.root.join(self.step.file("tests"));
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "rs"));
        files.sort();
        files
            .iter()
            .filter_map(|f| fs::read_to_string(f).ok())
            .flat_map(|src| extract::tests_in(&src).into_iter().map(|t| t.name))
            .collect()
    }

    /// A fingerprint of what a check's result depends on that the learner
    /// changes: their file and the step's tests.
    pub fn fingerprint(&self) -> String {
        let mut hash = Fnv::default();
        hash.add(self.current().unwrap_or_default().as_bytes());
        let dir = self.root.join(self.step.file("tests"));
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            hash.add(&fs::read(f).unwrap_or_default());
        }
        format!("{:016x}", hash.0)
    }
}

/// Whether `text` still holds the `todo!()` of the lesson `name`
/// (`todo!("name: ...")`, on one line or three).
pub fn has_todo(text: &str, name: &str) -> bool {
    let wanted = format!("\"{name}: ");
    text.match_indices("todo!(")
        .any(|(at, m)| text[at + m.len()..].trim_start().starts_with(&wanted))
}

/// The two texts are the same but for whitespace.
fn same_tokens(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// FNV-1a, 64 bits: enough to notice that a file changed.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A todo is found on one line or broken over three (as rustfmt does),
    /// and only the lesson named.
    #[test]
    fn finds_a_lessons_todo_in_either_layout() {
        let one = "    let n: usize = todo!(\"wait: kevent()\");\n";
        let three = "    todo!(\n        \"echo: read it\"\n    );\n";
        assert!(has_todo(one, "wait"));
        assert!(has_todo(three, "echo"));
        assert!(!has_todo(one, "echo"));
        assert!(!has_todo("    // the wait: lesson\n", "wait"));
    }

    /// Whitespace does not make a file "edited"; a changed token does.
    #[test]
    fn compares_files_by_their_tokens() {
        assert!(same_tokens("fn a() {\n    b();\n}\n", "fn a() { b(); }"));
        assert!(!same_tokens("fn a() { b(); }", "fn a() { c(); }"));
    }
}
