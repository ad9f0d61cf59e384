//! The machine and the processes under test: limits, CPU placement, /proc
//! readings, child servers (tracked by pid, killed by pid), and `perf stat`
//! for syscall counts.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Raises RLIMIT_NOFILE's soft limit to the hard one; returns (soft, hard).
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, 0);
    }
    let want = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `want` is a valid rlimit; failure leaves the old limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        lim.rlim_cur = lim.rlim_max;
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// How many CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling thread (and the processes it spawns afterwards) to `cpu`.
pub fn pin_self(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET bounds-checks `cpu` against the set's size.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 = this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Unpins the calling thread.
pub fn unpin_self() {
    // SAFETY: as in pin_self.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: as in pin_self.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

pub fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// CPU time a process has used, in ns: the sum of its threads' schedstat
/// run times (ns resolution), or utime+stime from stat (ticks) without it.
pub fn cpu_ns(pid: u32) -> u64 {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let p = t.path().join("schedstat");
            if let Some(ns) = fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any {
        return total;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after ')'.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 1_000_000_000 / hz
}

/// A `/proc/<pid>/status` field in bytes (the file reports kB).
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    kb_field(&format!("/proc/{pid}/status"), field)
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo_bytes(field: &str) -> u64 {
    kb_field("/proc/meminfo", field)
}

fn kb_field(path: &str, field: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// A server under test. Dropping it kills exactly this child (by its pid)
/// and reaps it.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `program args...` and waits (at most 10 s) for its
    /// `listening on HOST:PORT` line.
    pub fn start(name: &str, program: &Path, args: &[String]) -> io::Result<Server> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // The reader keeps draining stdout after the first line so a chatty
        // server never blocks on a full pipe; it ends when the child dies.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(a) = line.trim().strip_prefix("listening on ") {
                        let _ = tx.send(a.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().expect("literal"),
        };
        let line = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
            io::Error::other(format!(
                "{} ({}) printed no `listening on HOST:PORT` within 10 s",
                name,
                program.display()
            ))
        })?;
        server.addr = line.parse().map_err(|_| {
            io::Error::other(format!(
                "{name}: cannot parse address in `listening on {line}`"
            ))
        })?;
        if !server.addr.ip().is_loopback() {
            // Only loopback: connect to 127.0.0.1 on that port.
            server.addr.set_ip([127, 0, 0, 1].into());
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server has exited (crashed).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sys_enter"))
        .unwrap_or(false)
}

/// `perf stat` counting every syscall one process enters. perf's own
/// running time is the time the task was on a CPU, not wall time, so the
/// caller makes the window exact instead: it starts the count while the
/// server is idle (blocked in its wait, entering no syscalls), gives perf
/// time to attach, drives a known number of messages, lets the server go
/// idle again and waits for perf to finish. Syscalls / messages is then
/// exact, whatever perf's attach latency.
pub struct SyscallCount {
    child: Option<Child>,
}

impl SyscallCount {
    /// Counts for `window` (wall time) from now.
    pub fn start(pid: u32, window: Duration) -> io::Result<SyscallCount> {
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .args(["--", "sleep"])
            .arg(format!("{:.3}", window.as_secs_f64()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(SyscallCount { child: Some(child) })
    }

    /// Waits for perf to finish and returns the count, from its CSV line
    /// `COUNT,,raw_syscalls:sys_enter,...` (`<not counted>` = none at all).
    pub fn finish(mut self) -> Option<u64> {
        let out = self.child.take()?.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let line = text
            .lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))?;
        let first = line.split(',').next()?.trim();
        if first.starts_with("<not") {
            return Some(0);
        }
        first.parse().ok()
    }
}

impl Drop for SyscallCount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
