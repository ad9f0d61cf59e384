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

/// The errno check, the harness's (`harness::sys::cvt`): -1 means the
/// call failed with errno; anything else is its result.
pub use harness::sys::cvt;

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

/// CPU time the calling thread has used, in ns (its schedstat run time):
/// the load generator is one thread, so this says whether it, rather than
/// the server, was the side that ran out of CPU.
pub fn thread_cpu_ns() -> u64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU use of the whole machine and of the bench with its children, to
/// tell whether something else ran during a phase (other builds or tests on
/// a shared machine disturb every timing figure here).
#[derive(Clone, Copy)]
pub struct Load {
    /// Non-idle CPU time of all CPUs (/proc/stat: user, nice, system, irq,
    /// softirq; ticks, as µs).
    machine_us: u64,
    /// This process plus every child it has reaped (getrusage), in µs.
    ours_us: u64,
    at: std::time::Instant,
}

impl Load {
    /// Take it between phases, when no child is running: then every child
    /// of the phase has been reaped and is in RUSAGE_CHILDREN.
    pub fn now() -> Load {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks: u64 = [0, 1, 2, 5, 6]
            .iter()
            .map(|&i| f.get(i).unwrap_or(&0))
            .sum();
        // SAFETY: sysconf has no memory preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let usage = |who| {
            // SAFETY: rusage is plain data; all-zero is valid.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `ru` is a valid rusage to fill.
            unsafe { libc::getrusage(who, &mut ru) };
            let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            us(ru.ru_utime) + us(ru.ru_stime)
        };
        Load {
            machine_us: ticks * 1_000_000 / hz,
            ours_us: usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN),
            at: std::time::Instant::now(),
        }
    }

    /// CPU used by everything but the bench and its children since `self`,
    /// in % of one CPU (tick-sampled, so ±a few %).
    pub fn others_since(&self) -> f64 {
        let now = Load::now();
        let machine = now.machine_us.saturating_sub(self.machine_us) as f64;
        let ours = now.ours_us.saturating_sub(self.ours_us) as f64;
        let secs = (now.at - self.at).as_secs_f64().max(1e-3);
        ((machine - ours) / 1e6 / secs * 100.0).max(0.0)
    }
}

/// Time the hypervisor gave this VM's CPUs to something else, summed over
/// all CPUs since boot, in ms (/proc/stat's `steal`, in clock ticks): a VM
/// stalled by its host shows here, and nowhere inside it. 0 on a machine
/// that does not report it.
pub fn steal_ms() -> u64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(8)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
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

/// Makes `cmd`'s child die with this process, however this process ends:
/// Drop kills children on a normal exit or a panic, but not when the bench
/// is interrupted (Ctrl-C) or killed, or aborts writing to a closed pipe
/// (`bench | head`); a server left behind would hold its CPU and
/// sockets into the next run.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe syscalls (prctl, getppid); it touches no
    // memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            cvt(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            // The parent may have died before the prctl: then no signal
            // will come, so do not start at all.
            if libc::getppid() != parent {
                return Err(io::Error::other("the bench exited"));
            }
            Ok(())
        })
    }
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
        let mut child = die_with_parent(&mut Command::new(program))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // The reader sends the first line, then keeps draining stdout so a
        // chatty server never blocks on a full pipe; it ends when the
        // child dies.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines {
                if line.is_err() {
                    break;
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
        // The same reading of the line as the harness's, which the steps'
        // tests wait for.
        server.addr = harness::parse_listening_line(&line)
            .map_err(|e| io::Error::other(format!("{name}: {e}")))?;
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

/// The syscall tracepoints counted, by kind. `raw_syscalls:sys_enter` is
/// every syscall; the others split it so a difference between servers can be
/// named (kq's FIONREAD shows up as `ioctl`). std and tokio read and write
/// sockets with recv/send, which are recvfrom/sendto on x86_64.
pub const KINDS: [(&str, &[&str]); 5] = [
    ("read", &["read", "recvfrom", "readv"]),
    ("write", &["write", "sendto", "writev"]),
    ("epoll_wait", &["epoll_wait", "epoll_pwait"]),
    ("epoll_ctl", &["epoll_ctl"]),
    ("ioctl", &["ioctl"]),
];

fn perf_events() -> Vec<String> {
    let mut e = vec!["raw_syscalls:sys_enter".to_string()];
    for (_, calls) in KINDS {
        e.extend(calls.iter().map(|c| format!("syscalls:sys_enter_{c}")));
    }
    e
}

pub fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", &perf_events().join(","), "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sys_enter"))
        .unwrap_or(false)
}

/// An event counted beside the system calls: a uprobe ([`Uprobe`]), or a
/// tracepoint with a filter (`syscalls:sys_enter_read` with `fd == 11`).
#[derive(Clone, Debug)]
pub struct Extra {
    pub event: String,
    pub filter: Option<String>,
}

/// Syscalls one process entered in a window: the total and, in the order
/// of [`KINDS`], the count of each kind; then each [`Extra`] event asked
/// for, in the order asked.
#[derive(Clone, Debug, Default)]
pub struct Syscalls {
    pub total: u64,
    pub kinds: [u64; KINDS.len()],
    pub extra: Vec<u64>,
}

/// `perf stat` counting every syscall one process enters (and any
/// [`Extra`] events): the one place the bench counts system calls. perf's
/// own running time is the time the task was on a CPU, not wall time, so
/// the caller makes the window exact instead: it starts the count while the
/// server is idle (blocked in its wait, entering no syscalls), gives perf
/// time to attach, drives a known number of messages, lets the server go
/// idle again, and waits for perf to finish (a fixed window) or stops it
/// ([`SyscallCount::stop`]). Syscalls / messages is then exact, whatever
/// perf's attach latency.
pub struct SyscallCount {
    child: Option<Child>,
    events: Vec<String>,
}

impl SyscallCount {
    /// Counts for `window` (wall time) from now.
    pub fn start(pid: u32, window: Duration) -> io::Result<SyscallCount> {
        SyscallCount::start_with(pid, Some(window), &[])
    }

    /// Counts the syscalls and `extra` events for `window` from now, or
    /// until [`SyscallCount::stop`] without one.
    pub fn start_with(
        pid: u32,
        window: Option<Duration>,
        extra: &[Extra],
    ) -> io::Result<SyscallCount> {
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x,", "-e", &perf_events().join(",")]);
        let mut events = perf_events();
        for x in extra {
            cmd.args(["-e", &x.event]);
            if let Some(f) = &x.filter {
                cmd.args(["--filter", f]);
            }
            events.push(x.event.clone());
        }
        cmd.arg("-p").arg(pid.to_string());
        if let Some(w) = window {
            cmd.args(["--", "sleep"])
                .arg(format!("{:.3}", w.as_secs_f64()));
        }
        let child = die_with_parent(&mut cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(SyscallCount {
            child: Some(child),
            events,
        })
    }

    /// Waits for perf to finish and returns the counts, from its CSV lines
    /// `COUNT,,EVENT,...` (`<not counted>` = none at all).
    pub fn finish(mut self) -> Option<Syscalls> {
        let out = self.child.take()?.wait_with_output().ok()?;
        parse_perf_csv(&String::from_utf8_lossy(&out.stderr), &self.events)
    }

    /// Ends an open window now (perf prints its counts on SIGINT) and
    /// returns the counts.
    pub fn stop(self) -> Option<Syscalls> {
        let pid = self.child.as_ref()?.id() as libc::pid_t;
        // SAFETY: kill() has no memory effects; `pid` is our own child,
        // not yet reaped (finish() reaps it), so the number is still its.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.finish()
    }
}

/// The counts of `events`, in their order, from perf's CSV: one line
/// `COUNT,,EVENT,...` per event, in the order they were given (the same
/// tracepoint may come twice, with and without a filter).
fn parse_perf_csv(text: &str, events: &[String]) -> Option<Syscalls> {
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let count = f.next()?.trim();
            let event = f.nth(1)?;
            Some((count, event))
        })
        .filter(|(_, e)| events.iter().any(|x| x == e))
        .collect();
    if lines.len() != events.len() || lines.iter().zip(events).any(|((_, e), x)| e != x) {
        return None;
    }
    let counts: Vec<u64> = lines
        .iter()
        .map(|(c, _)| {
            if c.starts_with("<not") {
                Some(0)
            } else {
                c.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let mut s = Syscalls {
        total: counts[0],
        ..Syscalls::default()
    };
    let mut i = 1;
    for (k, (_, calls)) in KINDS.iter().enumerate() {
        for _ in *calls {
            s.kinds[k] += counts[i];
            i += 1;
        }
    }
    s.extra = counts[i..].to_vec();
    Some(s)
}

impl Drop for SyscallCount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A uprobe on a function of a binary (`perf probe -x BINARY`), counted
/// as an [`Extra`] event: how often the program called it. Needs root (or
/// a tracefs the user may write); removed on drop. Its group is
/// `bench<PID>`, so concurrent benches do not remove each other's probes,
/// and a bench that was killed leaves a group the next one removes.
pub struct Uprobe {
    group: String,
    pub event: String,
}

impl Uprobe {
    /// Probes `symbol` (a Rust path, `kq::safe::Kqueue::kevent`) in
    /// `binary` as event `bench<PID>:name`.
    pub fn add(binary: &Path, symbol: &str, name: &str) -> Result<Uprobe, String> {
        remove_stale_probes();
        let group = format!("bench{}", std::process::id());
        let event = format!("{group}:{name}");
        // perf probe's syntax takes `:` escaped inside a function name.
        let spec = format!("{event}={}", symbol.replace(':', "\\:"));
        let out = Command::new("perf")
            .args(["probe", "-q", "-x"])
            .arg(binary)
            .args(["-a", &spec])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("perf probe: {e}"))?;
        // Dropped even when perf failed half-way: nothing is left behind.
        let probe = Uprobe { group, event };
        if !out.status.success() {
            return Err(format!(
                "perf probe -x {} {symbol}: {}",
                binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(probe)
    }

    pub fn extra(&self) -> Extra {
        Extra {
            event: self.event.clone(),
            filter: None,
        }
    }
}

impl Drop for Uprobe {
    fn drop(&mut self) {
        delete_probe_group(&self.group);
    }
}

fn delete_probe_group(group: &str) {
    let _ = Command::new("perf")
        .args(["probe", "-q", "-d", &format!("{group}:*")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Removes the probe groups of benches that no longer run (killed before
/// their probes' drop).
fn remove_stale_probes() {
    let Ok(out) = Command::new("perf")
        .args(["probe", "-l"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stale: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split(':').next())
        .filter(|g| {
            g.strip_prefix("bench")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect();
    stale.dedup();
    for g in stale {
        delete_probe_group(g);
    }
}

/// The descriptors of `pid` that are timerfds: where kq's EVFILT_TIMER
/// lives on Linux, and what a tick reads once each time it fires.
pub fn timerfds(pid: u32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:[timerfd]")
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// The send and receive queues, in bytes, of the TCP socket from `local`
/// to `remote` (IPv4), as /proc/net/tcp shows them: `tx_queue` is what was
/// written and not yet acknowledged by the peer, `rx_queue` what arrived
/// and was not yet read.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |a: SocketAddr| -> Option<String> {
        let SocketAddr::V4(v4) = a else { return None };
        // The address as the kernel's u32 in host order (little endian
        // here), the port big-endian: 127.0.0.1:8080 is 0100007F:1F90.
        Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ))
    };
    let (l, r) = (hex(local)?, hex(remote)?);
    let text = fs::read_to_string("/proc/net/tcp").ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&l.as_str()) || f.get(2) != Some(&r.as_str()) {
            return None;
        }
        let (tx, rx) = f.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perf's CSV is read per event, `<not counted>` is zero, and kinds sum
    /// their syscalls (read + recvfrom + readv, ...).
    #[test]
    fn perf_csv_counts_each_kind() {
        let text = "\
3004,,raw_syscalls:sys_enter,400,100.00,,
1000,,syscalls:sys_enter_read,400,100.00,,
<not counted>,,syscalls:sys_enter_recvfrom,0,100.00,,
0,,syscalls:sys_enter_readv,400,100.00,,
990,,syscalls:sys_enter_write,400,100.00,,
10,,syscalls:sys_enter_sendto,400,100.00,,
0,,syscalls:sys_enter_writev,400,100.00,,
3,,syscalls:sys_enter_epoll_wait,400,100.00,,
0,,syscalls:sys_enter_epoll_pwait,400,100.00,,
1,,syscalls:sys_enter_epoll_ctl,400,100.00,,
1000,,syscalls:sys_enter_ioctl,400,100.00,,
";
        let s = parse_perf_csv(text, &perf_events()).expect("all events present");
        assert_eq!(
            (s.total, s.kinds, s.extra.len()),
            (3004, [1000, 1000, 3, 1, 1000], 0),
            "parsed from:\n{text}"
        );
        let missing = parse_perf_csv("12,,raw_syscalls:sys_enter,1,100.00,,\n", &perf_events());
        assert!(
            missing.is_none(),
            "a missing tracepoint must not read as zero: {missing:?}"
        );
    }

    /// Extra events follow the syscalls in the order asked, and the same
    /// tracepoint counted twice (the second with a filter) is told apart by
    /// its place.
    #[test]
    fn perf_csv_reads_extra_events_in_order() {
        let mut text = String::from("3004,,raw_syscalls:sys_enter,400,100.00,,\n");
        for e in &perf_events()[1..] {
            text.push_str(&format!("5,,{e},400,100.00,,\n"));
        }
        text.push_str("2000,,bench1:kevent,400,100.00,,\n");
        text.push_str("3,,syscalls:sys_enter_read,400,100.00,,\n");
        let mut events = perf_events();
        events.push("bench1:kevent".into());
        events.push("syscalls:sys_enter_read".into());
        let s = parse_perf_csv(&text, &events).expect("every event present");
        assert_eq!(s.extra, vec![2000, 3], "extras parsed from:\n{text}");
        assert_eq!(s.kinds[0], 15, "read + recvfrom + readv from:\n{text}");
    }

    /// /proc/net/tcp gives a connection's queues: bytes written to a peer
    /// that does not read sit in the peer's receive queue.
    #[test]
    fn tcp_queues_show_unread_bytes() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut a = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (b, _) = l.accept().expect("accept");
        a.write_all(&[7u8; 100]).expect("write");
        let (from, to) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = None;
        while std::time::Instant::now() < deadline {
            got = tcp_queues(to, from);
            if got.is_some_and(|(_, rx)| rx == 100) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            got,
            Some((0, 100)),
            "the reader's side {to} <- {from}: (tx_queue, rx_queue) after 100 bytes sent"
        );
    }
}
