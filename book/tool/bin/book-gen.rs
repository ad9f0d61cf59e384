//! `book-gen`: regenerates `book/generated/` and the root README's table of
//! steps.
//!
//! ```text
//! book-gen --static          what needs no running program
//! book-gen --bins DIR        everything: also the transcripts, running the
//!                            step binaries and the harness found in DIR
//! book-gen --list-steps      the steps, one per line, in order
//! book-gen --starter STEP LEVEL  print STEP's starter at LEVEL (guided or
//!                            challenge), as `cargo learn` writes it (CI
//!                            checks the challenge starters with it)
//! book-gen --new-step TITLE   make step N+1 from the last step N
//!                            (scripts/new-step.sh; see book::scaffold)
//! ```
//!
//! `--static` writes step diffs, `kq` doc sections, test and stage tables,
//! the idle-descriptor plot and the README's table; `--bins` also plays
//! every step's transcript scenario. `scripts/generate.sh` builds the
//! binaries and passes their directory; run that rather than this.

use std::path::PathBuf;
use std::process::ExitCode;

use book::transcripts::{self, Bins};
use book::{generated, steps};

const USAGE: &str = "usage: book-gen --static
       book-gen --bins DIR     (DIR holds stepN for every step, and harness)
       book-gen --list-steps
       book-gen --starter STEP guided|challenge
       book-gen --new-step TITLE";

/// `--new-step TITLE`: the scaffolder, and what it leaves to a person.
fn new_step(root: &std::path::Path, title: &str) -> ExitCode {
    match book::scaffold::new_step(root, title) {
        Ok(done) => {
            println!(
                "book-gen: made {} ({} files), its chapter and its line in book/src/SUMMARY.md",
                done.step.dir.display(),
                done.written.len()
            );
            println!(
                "\nNow run scripts/generate.sh (the starter, the transcripts, the tables), then"
            );
            println!(
                "  cargo test -p {0}; cargo learn check {1}; cargo test -p book",
                done.step.name, done.step.number
            );
            println!(
                "\nWrite by hand (the new step is the last one under a new number until you do):"
            );
            for item in &done.by_hand {
                println!("  - {item}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = generated::repo_root();
    let steps = match steps::discover(&root) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let bins = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--list-steps"] => {
            for s in &steps {
                println!("{}", s.name);
            }
            return ExitCode::SUCCESS;
        }
        ["--new-step", title] => return new_step(&root, title),
        ["--starter", step, level] => {
            let Some(step) = steps.iter().find(|s| s.name == step) else {
                return fail(&format!("no step `{step}` (book-gen --list-steps)"));
            };
            let Some(level) = book::starter::Level::parse(level) else {
                return fail(&format!("`{level}` is not a level: guided or challenge"));
            };
            return match book::starter::for_step_at(&root, step, level) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        ["--static"] => None,
        ["--bins", dir] => {
            let dir = PathBuf::from(dir);
            let mut bins = Bins {
                steps: Default::default(),
                harness: dir.join("harness"),
            };
            for s in &steps {
                bins.steps.insert(s.name.clone(), dir.join(&s.name));
            }
            let missing: Vec<String> = bins
                .steps
                .values()
                .chain([&bins.harness])
                .filter(|p| !p.is_file())
                .map(|p| p.display().to_string())
                .collect();
            if !missing.is_empty() {
                return fail(&format!(
                    "not built: {} (cargo build --workspace --bins)",
                    missing.join(", ")
                ));
            }
            Some(bins)
        }
        _ => {
            eprintln!("book-gen: unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut files = match generated::static_files(&root) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    match generated::starters(&root) {
        Ok(s) => files.extend(s),
        Err(e) => return fail(&format!("starters: {e}")),
    }
    if let Some(bins) = bins {
        match transcripts::all(&root, &steps, &bins) {
            Ok(t) => files.extend(t),
            Err(e) => return fail(&format!("transcripts: {e}")),
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
        Err(e) => fail(&format!("writing: {e}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("book-gen: {msg}");
    ExitCode::FAILURE
}
