//! The errno check of every system call the harness makes: `cvt`, in the
//! style of `kq/src/linux/os.rs`. Each call is `cvt(unsafe { libc::... })`
//! with its `// SAFETY:` comment, in a small function of its own.
//!
//! The fake server (`src/bin/fake-server.rs`) includes this file too, and
//! the bench uses it (`harness::sys::cvt`): one copy for the checkers.
//! The steps keep their own in stepkit (a step never links the harness),
//! and `kq` its own.

use std::io;

/// What system calls return: `c_int` (i32) or `ssize_t` (isize), where -1
/// means the call failed and errno says why.
pub trait SyscallRet: Copy {
    fn failed(self) -> bool;
}

impl SyscallRet for i32 {
    fn failed(self) -> bool {
        self < 0
    }
}

impl SyscallRet for isize {
    fn failed(self) -> bool {
        self < 0
    }
}

/// -1 means the call failed with errno; anything else is its result.
pub fn cvt<T: SyscallRet>(r: T) -> io::Result<T> {
    if r.failed() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
