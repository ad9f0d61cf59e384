//! `book-gen`: regenerates `book/generated/`.
//!
//! ```text
//! book-gen --static
//! book-gen --harness PATH --step step1=PATH ... --step step5=PATH
//! ```
//!
//! `--static` writes what needs no running program (step diffs, `kq` doc
//! sections, test tables); with the binaries it also runs the
//! steps and the harness for the transcripts. `scripts/book-transcripts.sh`
//! builds the binaries and passes them; run that rather than this.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use book::generated;
use book::transcripts::{self, Bins};

const USAGE: &str = "usage: book-gen --static
       book-gen --harness PATH --step step1=PATH ... --step step5=PATH";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bins = match parse(&args) {
        Ok(bins) => bins,
        Err(msg) => {
            eprintln!("book-gen: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = generated::repo_root();
    let mut files = match generated::static_files(&root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("book-gen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(bins) = bins {
        match transcripts::all(&bins) {
            Ok(t) => files.extend(t),
            Err(e) => {
                eprintln!("book-gen: transcripts: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match generated::write_all(&root, &files) {
        Ok(changed) => {
            for path in &changed {
                eprintln!("book-gen: wrote {}", path.display());
            }
            eprintln!(
                "book-gen: {} file(s) checked, {} changed",
                files.len(),
                changed.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("book-gen: writing: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` for `--static`, the binaries otherwise.
fn parse(args: &[String]) -> Result<Option<Bins>, String> {
    if args == ["--static"] {
        return Ok(None);
    }
    let mut steps = HashMap::new();
    let mut harness = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--harness" => harness = Some(PathBuf::from(value)),
            "--step" => {
                let (name, path) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--step takes NAME=PATH, not '{value}'"))?;
                steps.insert(name.to_string(), PathBuf::from(path));
            }
            _ => return Err(format!("unknown argument '{flag}'")),
        }
    }
    let harness = harness.ok_or("--harness is missing")?;
    for step in generated::STEPS {
        if !steps.contains_key(step) {
            return Err(format!("--step {step}=PATH is missing"));
        }
    }
    Ok(Some(Bins { steps, harness }))
}
