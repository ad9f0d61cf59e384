//! Counting another process's open descriptors, for the leak checks.
//!
//! Each OS answers differently: Linux lists them in `/proc/PID/fd`, macOS
//! through `proc_pidinfo(PROC_PIDLISTFDS)`, and the BSDs through their
//! `fstat -p PID` command (FreeBSD rarely mounts /proc). Where none of these
//! works, the count is `None` and the leak checks say they could not count.

/// How many descriptors process `pid` has open, if this OS can tell.
pub fn open_fds(pid: u32) -> Option<usize> {
    imp::open_fds(pid)
}

/// Where the count comes from, for failure messages.
pub fn how_counted() -> &'static str {
    imp::HOW
}

#[cfg(target_os = "linux")]
mod imp {
    pub const HOW: &str = "counted in /proc/PID/fd";

    pub fn open_fds(pid: u32) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count())
    }
}

#[cfg(target_vendor = "apple")]
mod imp {
    use std::mem::size_of;

    pub const HOW: &str = "counted with proc_pidinfo(PROC_PIDLISTFDS)";

    pub fn open_fds(pid: u32) -> Option<usize> {
        let pid = libc::c_int::try_from(pid).ok()?;
        let entry = size_of::<libc::proc_fdinfo>();
        let need = list_fds(pid, &mut Vec::new())?;
        // Room for a few more than asked: descriptors may open meanwhile,
        // and a short buffer would silently cut the list.
        let mut buf = Vec::with_capacity(need / entry + 32);
        list_fds(pid, &mut buf).map(|bytes| bytes / entry)
    }

    /// proc_pidinfo(PROC_PIDLISTFDS) into `buf`'s spare capacity; with an
    /// empty buffer, the size it would need. Returns bytes.
    fn list_fds(pid: libc::c_int, buf: &mut Vec<libc::proc_fdinfo>) -> Option<usize> {
        let bytes = libc::c_int::try_from(buf.capacity() * size_of::<libc::proc_fdinfo>()).ok()?;
        let ptr = if bytes == 0 {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        // SAFETY: `ptr` is null (size query) or points at `bytes` writable
        // bytes of `buf`'s capacity; the kernel writes at most that many.
        let n = unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, ptr, bytes) };
        (n > 0).then_some(n as usize)
    }
}

#[cfg(all(unix, not(target_os = "linux"), not(target_vendor = "apple")))]
mod imp {
    pub const HOW: &str = "counted with fstat -p PID";

    pub fn open_fds(pid: u32) -> Option<usize> {
        let out = std::process::Command::new("fstat")
            .args(["-p", &pid.to_string()])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        super::count_fstat_rows(&String::from_utf8_lossy(&out.stdout), pid)
    }
}

/// Counts the numbered descriptors in BSD `fstat -p PID` output: the column
/// after the PID is the descriptor (`3`, or `3*` for a socket) or a word
/// (`text`, `wd`, `root`, `jail`, `tr`, `mmap`, `ctty`) for the process's
/// other references, which are not descriptors. `None` when no row names
/// the process (it is gone, or the output is not what we know).
#[cfg_attr(any(target_os = "linux", target_vendor = "apple"), allow(dead_code))]
pub(crate) fn count_fstat_rows(output: &str, pid: u32) -> Option<usize> {
    let pid = pid.to_string();
    let mut rows = 0;
    let mut fds = 0;
    for line in output.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // The command name may hold spaces: find the PID column itself.
        let Some(at) = cols.iter().position(|c| *c == pid) else {
            continue;
        };
        rows += 1;
        let fd = cols.get(at + 1).map_or("", |c| c.trim_end_matches('*'));
        if !fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit()) {
            fds += 1;
        }
    }
    (rows > 0).then_some(fds)
}

#[cfg(test)]
mod tests {
    use super::count_fstat_rows;

    /// FreeBSD's fstat marks sockets with `*` and lists text/wd/root rows,
    /// which are not descriptors.
    #[test]
    fn counts_descriptors_in_freebsd_fstat_output() {
        let out = "\
USER     CMD          PID   FD MOUNT      INUM MODE         SZ|DV R/W
kq       step3       4242 text /usr/home  1234 -rwxr-xr-x  900000  r
kq       step3       4242 ctty /dev        110 crw--w----   pts/0 rw
kq       step3       4242   wd /usr/home     4 drwxr-xr-x     512  r
kq       step3       4242 root /             2 drwxr-xr-x    1024  r
kq       step3       4242    0 /dev        110 crw--w----   pts/0 rw
kq       step3       4242    1 -             - pipe         0 rw
kq       step3       4242    2 -             - pipe         0 rw
kq       step3       4242    3* internet stream tcp fffff80012345678
kq       step3       4242    4 - kqueue fffff80087654321
kq       step3       4242    5* internet stream tcp fffff80011111111
";
        let got = count_fstat_rows(out, 4242);
        assert_eq!(
            got,
            Some(6),
            "sent FreeBSD fstat output, expected 6 descriptors, got {got:?}"
        );
    }

    /// NetBSD's layout is the same; other processes' rows do not count.
    #[test]
    fn counts_only_the_rows_of_the_given_process() {
        let out = "\
USER     CMD          PID   FD  MOUNT         INUM MODE         SZ|DV R/W
kq       my server    77    wd  /home/kq       123 drwxr-xr-x     512 r
kq       my server    77     0  /dev/pts         3 crw--w----   pts/3 rw
kq       my server    77     3* internet stream tcp 0xffff
kq       sh           78     0  /dev/pts         3 crw--w----   pts/3 rw
";
        let got = count_fstat_rows(out, 77);
        assert_eq!(
            got,
            Some(2),
            "expected 2 descriptors of pid 77, got {got:?}"
        );
    }

    /// A process that fstat does not list (gone) cannot be counted.
    #[test]
    fn no_rows_means_the_count_is_unknown() {
        let out = "USER     CMD          PID   FD MOUNT      INUM MODE         SZ|DV R/W\n";
        let got = count_fstat_rows(out, 4242);
        assert_eq!(
            got, None,
            "expected no count for a missing process, got {got:?}"
        );
    }
}
