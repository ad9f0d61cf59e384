//! The C ABI of the `kq` crate: `kqueue` and `kevent` exported under their C
//! names in `libkq.a` and `libkq.so`, so a C program written for the BSDs
//! links with `-lkq` on Linux and runs unchanged.
//!
//! The declarations C sees are in `kq-c/include/sys/event.h`; the struct and
//! the constants there are the `kq` crate's (`kq-c/tests/c_abi.rs` compiles
//! the header and compares them). These two functions only forward: the
//! translation already reports errors the C way, `-1` with `errno` set, so
//! there is nothing to convert. `kevent()` goes through `kq::trace`, so
//! `KQ_TRACE=1 ./echo` shows a C program's calls decoded, as it does a
//! step's (the `kq` crate's docs, module `trace`).
//!
//! A crate of its own, so that the `kq` crate stays a plain Rust library: a
//! step binary links it as an rlib and exports no `kevent` of its own.
//!
//! Only built on Linux: on macOS and the BSDs the kernel and the system
//! `<sys/event.h>` are the real thing, and exporting a second `kevent`
//! symbol there would shadow libc's.

#[cfg(target_os = "linux")]
mod exports {
    use kq_rust::{kevent as Kevent, timespec};
    use libc::c_int;

    /// `int kqueue(void);` from C.
    ///
    /// # Safety
    ///
    /// None beyond what C requires: it takes no arguments and returns a new
    /// descriptor or `-1` with `errno` set.
    #[no_mangle]
    pub unsafe extern "C" fn kqueue() -> c_int {
        // SAFETY: the translation's kqueue() has no preconditions; it is
        // unsafe only because it mirrors the C signature.
        unsafe { kq_rust::linux::kqueue() }
    }

    /// `int kevent(int kq, const struct kevent *changelist, int nchanges,
    /// struct kevent *eventlist, int nevents, const struct timespec
    /// *timeout);` from C.
    ///
    /// # Safety
    ///
    /// The C contract of kevent(2): `changelist` points at `nchanges`
    /// readable events (or is null when `nchanges` is 0), `eventlist` at
    /// `nevents` writable ones (or null when `nevents` is 0), and `timeout`
    /// is null or points at a valid `struct timespec`.
    #[no_mangle]
    pub unsafe extern "C" fn kevent(
        kq: c_int,
        changelist: *const Kevent,
        nchanges: c_int,
        eventlist: *mut Kevent,
        nevents: c_int,
        timeout: *const timespec,
    ) -> c_int {
        // SAFETY: the caller upholds kevent(2)'s pointer/length contract
        // (see above), which is exactly the contract of the function we
        // forward to (the translation, traced when KQ_TRACE asks).
        unsafe { kq_rust::trace::kevent(kq, changelist, nchanges, eventlist, nevents, timeout) }
    }
}
