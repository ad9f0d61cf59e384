//! Asking the OS about another process: is it still there, is it stopped,
//! how much CPU has it used. Linux answers in `/proc/PID/stat`; macOS and
//! the BSDs through `ps`, which every one of them has (FreeBSD rarely mounts
//! /proc, and macOS has none).

use std::process::Command;
use std::time::Duration;

/// The process's state letter (`R`, `S`, `T` stopped, `Z` exited but not
/// yet reaped, ...), or None when there is no such process.
pub fn state(pid: u32) -> Option<char> {
    if cfg!(target_os = "linux") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) STATE ...": the state follows the last ')', since the
        // command name may itself hold spaces and parentheses.
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    } else {
        let out = ps(pid, "stat=")?;
        out.trim_start().chars().next()
    }
}

/// Whether any thread of the process is running or ready to run (state
/// `R`): a process that spins is, however little CPU a busy machine gives
/// it; one that waits for events is not. None when it cannot be told.
pub fn is_runnable(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut any = false;
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some((_, rest)) = stat.rsplit_once(')') {
                any |= rest.trim_start().starts_with('R');
            }
        }
        Some(any)
    } else {
        // ps shows the process's state, `R` if a thread can run.
        state(pid).map(|c| c == 'R')
    }
}

/// Whether the process has exited (gone, or a zombie waiting for its
/// parent to reap it).
pub fn has_exited(pid: u32) -> bool {
    matches!(state(pid), None | Some('Z') | Some('X'))
}

/// The CPU time (user + system, all threads) the process has used so far,
/// if the OS can tell. Resolution: 10 ms.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    if cfg!(target_os = "linux") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the command: state is field 3 of proc(5), utime 14, stime
        // 15; here the state is index 0, so utime is 11 and stime 12.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        Some(Duration::from_micros(ticks * 1_000_000 / hz))
    } else {
        parse_ps_time(&ps(pid, "time=")?)
    }
}

/// Where [`cpu_time`] comes from, for failure messages.
pub fn how_cpu_measured() -> &'static str {
    if cfg!(target_os = "linux") {
        "user + system time from /proc/PID/stat"
    } else {
        "user + system time from ps -o time="
    }
}

/// `ps -o FIELD -p PID`, or None when the process is gone.
fn ps(pid: u32, field: &str) -> Option<String> {
    let out = Command::new("ps")
        .args(["-o", field, "-p", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.trim().is_empty()).then_some(text)
}

/// `ps -o time=` output: `[[DD-]HH:]MM:SS[.cc]`, e.g. `0:01.25`.
fn parse_ps_time(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let mut seconds = 0.0;
    for part in clock.split(':') {
        seconds = seconds * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(Duration::from_secs_f64(seconds + days as f64 * 86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// macOS and the BSDs print minutes and seconds, longer runs hours and
    /// days too.
    #[test]
    fn reads_the_cpu_time_ps_prints() {
        for (text, ms) in [
            ("0:00.12\n", 120),
            ("  1:02.50", 62_500),
            ("01:00:01", 3_601_000),
            ("2-00:00:00", 172_800_000),
        ] {
            let got = parse_ps_time(text).map(|d| d.as_millis());
            assert_eq!(got, Some(ms), "parsed {text:?}, expected {ms} ms");
        }
        assert_eq!(parse_ps_time("TIME"), None, "a header is not a time");
    }

    /// This very process is running, has used some CPU, and is not stopped.
    #[test]
    fn sees_its_own_process() {
        let me = std::process::id();
        let st = state(me);
        assert!(
            matches!(st, Some('R') | Some('S') | Some('D')),
            "expected this test's own state to be running or sleeping, got {st:?}"
        );
        assert!(!has_exited(me), "this process has not exited");
        assert!(cpu_time(me).is_some(), "expected a CPU time for pid {me}");
    }
}
