//! What `cargo learn` remembers between runs, for this learner only:
//! `.learn/state` in the repository (git ignores `.learn/`). One `key` TAB
//! `value` per line: how many hints of each lesson were shown, which
//! `todo!()` the last check stopped at, the last check's result for each
//! step (so that `progress` need not run every step's tests again). Losing
//! the file loses nothing but that.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub struct State {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

/// The folder of learner-local files (the state, backups of reset files).
pub fn dir(root: &Path) -> PathBuf {
    root.join(".learn")
}

impl State {
    /// The state of the learner working in `root` (empty when there is none
    /// yet, or it cannot be read).
    pub fn load(root: &Path) -> State {
        let path = dir(root).join("state");
        let values = fs::read_to_string(&path)
            .map(|text| {
                text.lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(k, v)| (k.to_string(), unescape(v)))
                    .collect()
            })
            .unwrap_or_default();
        State { path, values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    /// Forgets every key that starts with `prefix`.
    pub fn forget(&mut self, prefix: &str) {
        self.values.retain(|k, _| !k.starts_with(prefix));
    }

    pub fn save(&self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut text = String::new();
        for (k, v) in &self.values {
            text.push_str(k);
            text.push('\t');
            text.push_str(&escape(v));
            text.push('\n');
        }
        fs::write(&self.path, text)
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with newlines, tabs and backslashes come back as they went in.
    #[test]
    fn keeps_values_with_newlines_and_tabs() {
        let root = std::env::temp_dir().join(format!("learn-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut s = State::load(&root);
        s.set("a", "one\ntwo\tthree \\n");
        s.set("hint.step3.echo", "2");
        s.save().expect("save");
        let back = State::load(&root);
        assert_eq!(back.get("a"), Some("one\ntwo\tthree \\n"));
        assert_eq!(back.get("hint.step3.echo"), Some("2"));
        let mut back = back;
        back.forget("hint.");
        assert_eq!(back.get("hint.step3.echo"), None);
        let _ = fs::remove_dir_all(&root);
    }
}
