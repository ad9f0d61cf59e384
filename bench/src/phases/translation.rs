//! Phase F: the translation's cost in instructions per returned event
//! (scripts/translation-cost.sh under callgrind).

use std::path::Path;
use std::process::Command;

use crate::report::{Cell, Report, Table};

/// Runs scripts/translation-cost.sh (callgrind; needs valgrind) and shows
/// its figures; returns kq's added instructions per returned event.
pub fn run(rep: &mut Report) -> Result<f64, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/translation-cost.sh");
    let mut t = Table::new(
        "F. Translation cost: user-space instructions per returned event (callgrind, scripts/translation-cost.sh, 64 ready sockets; deterministic)",
        &["loop", "instructions/event"],
    );
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let result = if !found {
        Err(
            "not measured: valgrind not installed (.ci/run installs it: apt-get install valgrind)"
                .to_string(),
        )
    } else {
        eprintln!("running {} ...", script.display());
        match Command::new(&script).output() {
            Err(e) => Err(format!("{}: {e}", script.display())),
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let grab = |label: &str| -> Option<f64> {
                    text.lines()
                        .find_map(|l| l.trim().strip_prefix(label))?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                };
                match (
                    grab("kq::kevent()"),
                    grab("raw epoll_wait"),
                    grab("added by kq"),
                ) {
                    (Some(kq), Some(ep), Some(added)) => {
                        t.row(vec![Cell::text("kq::kevent()"), Cell::num(kq, 1)]);
                        t.row(vec![Cell::text("raw epoll_wait"), Cell::num(ep, 1)]);
                        t.row(vec![Cell::text("added by kq"), Cell::num(added, 1)]);
                        Ok(added)
                    }
                    _ => Err(format!(
                        "failed: {} printed no figures ({}): {}",
                        script.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    )),
                }
            }
        }
    };
    if let Err(e) = &result {
        t.row(vec![Cell::text("kq::kevent()"), Cell::Text(e.clone())]);
    }
    rep.table(t);
    result
}
