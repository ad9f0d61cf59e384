//! The plumbing every network step shares, so that each step's `main.rs`
//! holds only its event loop and reads top to bottom like the C it teaches.
//!
//! Nothing here touches kqueue: that is the steps' business. What is here is
//! what chatserv.c keeps in helper functions: `mksock()` (socket, bind,
//! listen), accepting, one `read()` or one `write()` on a descriptor, and
//! `O_NONBLOCK`. Loops that are lessons (writing a whole buffer, and what
//! that costs a server on a blocking socket) stay in the steps' own code.
//! Each step's options are declared once, typed, with [`options!`].
//!
//! The steps use raw descriptors (`c_int`), not `TcpStream`, because kqueue
//! speaks in descriptor numbers, and watching those numbers get freed and
//! reused is part of the lesson.

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};

mod output;
pub use output::{flush, log_without_blocking, say_line, QUEUE_BYTES};

/// Set by `--quiet`, the one place it is kept: the steps stop narrating
/// every event.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `--quiet` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The step's name, `step8`, from Cargo (the package's name): the prefix
/// of every line a step writes on stderr, as a C program writes
/// getprogname() before its messages (warn(3)). A step never writes its
/// own name; this is the one place it comes from.
#[macro_export]
macro_rules! name {
    () => {
        env!("CARGO_PKG_NAME")
    };
}

/// Narrates the event loop on stderr (accepts, reads, EOFs, removals), so a
/// learner can watch it work; `--quiet` turns it off, for benchmarks, where
/// a write(2) to stderr per event would cost more than the event itself.
/// After [`log_without_blocking`] (steps 6 to 8), the line goes to a writer
/// thread instead, and is dropped (counted) rather than waited for.
/// Each line starts with the step's name: `log!("accepted fd {fd}")`
/// writes `step3: accepted fd 5`. Errors are written with [`say!`], which
/// `--quiet` does not silence.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        if !$crate::is_quiet() {
            $crate::say!($($arg)*);
        }
    };
}

/// One line on stderr, whatever `--quiet` says, with the step's name in
/// front, like warnx(3): for errors, and for what a learner must see.
/// Blocking, unless [`log_without_blocking`] was called ([`say_line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line($crate::name!(), format_args!($($arg)*))
    };
}

/// A step binary's root, `src/pick.rs`, is this one line: it builds the
/// complete program, `src/main.rs`, or with `--features exercise` the
/// learner's `src/exercise.rs`, under the same binary name, so the step's
/// tests run against either unchanged (`cargo learn check N`).
#[macro_export]
#[rustfmt::skip]
macro_rules! pick {
    () => {
        // Until every todo!() is written, the code after one is
        // unreachable, and some variables, imports and helpers go unused:
        // no warnings for the learner's file.
        #[cfg_attr(not(feature = "exercise"), path = "main.rs")]
        #[cfg_attr(feature = "exercise", path = "exercise.rs")]
        #[cfg_attr(feature = "exercise", allow(unreachable_code, unused_variables, unused_imports))]
        #[cfg_attr(feature = "exercise", allow(unused_mut, dead_code, clippy::diverging_sub_expression))]
        mod step;

        fn main() {
            step::main();
            // Lines still queued for a writer thread (steps 6 to 8).
            $crate::flush();
        }
    };
}

/// The command line every network step takes:
/// `stepN [--host HOST] [--port PORT] [--quiet] [step options]`. The
/// step's own options come separately, typed (see [`options!`]).
#[derive(Debug)]
pub struct Args {
    pub host: String,
    pub port: u16,
}

/// One option a step adds to the common ones, as `--help` shows it.
#[derive(Debug)]
pub struct OptSpec {
    /// The flag and what follows it, e.g. `--max-users N`.
    pub usage: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
}

impl OptSpec {
    /// The flag alone: `--max-users`.
    pub fn flag(&self) -> &'static str {
        self.usage.split(' ').next().unwrap_or(self.usage)
    }
}

/// A step's own options: what [`options!`] writes for a step's
/// declaration. `()` is a step without options.
pub trait StepOptions: Sized {
    /// The options, for the usage and for recognising flags.
    const SPECS: &'static [OptSpec];
    /// Every option at its default.
    fn defaults() -> Self;
    /// Sets the option `flag` from `value`: `None` when `flag` is not one
    /// of them, the option's own error when the value is wrong.
    fn set(&mut self, flag: &str, value: &str) -> Option<Result<(), String>>;
}

impl StepOptions for () {
    const SPECS: &'static [OptSpec] = &[];
    fn defaults() {}
    fn set(&mut self, _flag: &str, _value: &str) -> Option<Result<(), String>> {
        None
    }
}

/// Declares a step's own options, once: each field's type, default, flag
/// (with what follows it), parser and help line. It writes the struct and
/// its [`StepOptions`], so [`Args::parse_with`] hands the step typed
/// values, already checked, and `--help` lists them.
///
/// ```
/// stepkit::options! {
///     /// What this server adds to `--host`, `--port` and `--quiet`.
///     struct Options {
///         /// The room's size.
///         max_users: usize = 10, "--max-users N",
///             |v| match v.parse::<usize>() {
///                 Ok(n) if n >= 1 => Ok(n),
///                 _ => Err(format!("takes a number of at least 1, not '{v}'")),
///             },
///             "how many users the room holds (default 10)";
///     }
/// }
/// let (args, opts) = stepkit::Args::parse_from::<Options>(
///     ["--max-users", "3"].map(String::from),
/// )
/// .expect("valid")
/// .expect("not --help")
/// .into_parts();
/// assert_eq!((args.port, opts.max_users), (8080, 3));
/// ```
#[macro_export]
macro_rules! options {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                $field:ident : $ty:ty = $default:expr, $usage:literal, $parse:expr, $help:literal;
            )*
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $( $(#[$field_attr])* pub $field: $ty, )*
        }

        impl $crate::StepOptions for $name {
            const SPECS: &'static [$crate::OptSpec] = &[
                $( $crate::OptSpec { usage: $usage, help: $help }, )*
            ];

            fn defaults() -> Self {
                $name { $( $field: $default, )* }
            }

            fn set(&mut self, flag: &str, value: &str) -> Option<Result<(), String>> {
                $(
                    if Some(flag) == $usage.split(' ').next() {
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        return Some(parse(value).map(|v| self.$field = v));
                    }
                )*
                let _ = value;
                None
            }
        }
    };
}

/// What the command line said: the common arguments, the step's options,
/// and `--quiet` (which [`Args::parse_with`] stores in one place only).
#[derive(Debug)]
pub struct Parsed<O> {
    pub args: Args,
    pub opts: O,
    pub quiet: bool,
}

impl<O> Parsed<O> {
    /// The arguments and the options, leaving `--quiet` behind.
    pub fn into_parts(self) -> (Args, O) {
        (self.args, self.opts)
    }
}

impl Args {
    /// [`Args::parse_with`] for a step without options of its own.
    pub fn parse(step: &str) -> Args {
        Args::parse_with::<()>(step).0
    }

    /// Parses `std::env::args()`: the common arguments and the step's own
    /// options `O`. On `--help` prints usage and exits 0; on bad arguments
    /// prints what is wrong and the usage to stderr and exits with status
    /// 2, the convention for usage errors.
    pub fn parse_with<O: StepOptions>(step: &str) -> (Args, O) {
        match Args::parse_from::<O>(std::env::args().skip(1)) {
            Ok(Some(parsed)) => {
                QUIET.store(parsed.quiet, Ordering::Relaxed);
                parsed.into_parts()
            }
            Ok(None) => {
                println!("{}", usage(step, O::SPECS));
                std::process::exit(0);
            }
            Err(msg) => {
                eprintln!("{step}: {msg}\n{}", usage(step, O::SPECS));
                std::process::exit(2);
            }
        }
    }

    /// The parser behind [`Args::parse_with`]: `Ok(None)` means `--help`.
    pub fn parse_from<O: StepOptions>(
        args: impl IntoIterator<Item = String>,
    ) -> Result<Option<Parsed<O>>, String> {
        let mut parsed = Parsed {
            args: Args {
                host: "127.0.0.1".to_string(),
                port: 8080,
            },
            opts: O::defaults(),
            quiet: false,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if flag == "--quiet" {
                parsed.quiet = true;
                continue;
            }
            let known =
                flag == "--host" || flag == "--port" || O::SPECS.iter().any(|o| o.flag() == flag);
            if !known {
                return Err(format!("unknown argument '{flag}'"));
            }
            let Some(value) = args.next() else {
                return Err(format!("{flag} needs a value"));
            };
            match flag.as_str() {
                "--host" if value.is_empty() => return Err("--host needs a value".into()),
                "--host" => parsed.args.host = value,
                "--port" => {
                    parsed.args.port = value.parse().map_err(|_| {
                        format!("--port takes a number from 0 to 65535, not '{value}'")
                    })?;
                }
                _ => {
                    if let Some(result) = parsed.opts.set(&flag, &value) {
                        result.map_err(|e| format!("{flag}: {e}"))?;
                    }
                }
            }
        }
        Ok(Some(parsed))
    }
}

/// `Usage: stepN [--host HOST] [--port PORT] ...` and one line per option.
pub fn usage(step: &str, opts: &[OptSpec]) -> String {
    let mut line = format!("usage: {step} [--host HOST] [--port PORT] [--quiet]");
    for o in opts {
        line += &format!(" [{}]", o.usage);
    }
    line += "\n  --host HOST   address to listen on (default 127.0.0.1)";
    line += "\n  --port PORT   port to listen on (default 8080; 0 picks a free one)";
    line += "\n  --quiet       do not narrate each event on stderr (for benchmarks)";
    for o in opts {
        line += &format!("\n  {:<13} {}", o.usage, o.help);
    }
    line
}

/// `mksock()` from chatserv.c: a TCP socket with SO_REUSEADDR, bound to
/// `host:port` and listening. Returns the descriptor and the address it
/// really got (port 0 becomes a free port).
///
/// SO_REUSEADDR lets a restarted server bind at once, instead of waiting
/// out TIME_WAIT of the connections the last run closed.
// ANCHOR: mksock
pub fn mksock(host: &str, port: u16) -> io::Result<(c_int, SocketAddr)> {
    let addr = resolve(host, port)?;
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = sys_socket(family)?;
    let result = (|| {
        sys_setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        sys_bind(fd, &addr)?;
        // A long queue, so a burst of clients waits in the kernel instead
        // of being refused; kevent() tells us how many are waiting.
        sys_listen(fd, libc::SOMAXCONN)?;
        local_addr(fd)
    })();
    match result {
        Ok(bound) => Ok((fd, bound)),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}
// ANCHOR_END: mksock

/// Binds with [`mksock`] and announces it, or explains why not and exits
/// with status 1. The announcement, `listening on HOST:PORT` on stdout, is
/// what the harness (and a person) waits for before connecting.
pub fn listen_or_exit(step: &str, args: &Args) -> c_int {
    match mksock(&args.host, args.port) {
        Ok((fd, addr)) => {
            // Flushed at once (stdout is a pipe under the harness: a line
            // left in a buffer tells nobody we are ready); after
            // log_without_blocking(), by the writer thread, so a stdout
            // nobody reads does not stop a server that already listens.
            output::announce(&format!("listening on {addr}"));
            fd
        }
        Err(e) => {
            eprintln!(
                "{step}: cannot listen on {}: {e}",
                Addr(&args.host, args.port)
            );
            std::process::exit(1);
        }
    }
}

/// exit(3) with `code`, after the lines still queued for the writer thread
/// are written ([`flush`]).
pub fn exit(code: c_int) -> ! {
    flush();
    std::process::exit(code)
}

/// `host:port`, with brackets around an IPv6 host.
struct Addr<'a>(&'a str, u16);

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let mut addrs = (host, port).to_socket_addrs().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{host}' is not an address or a known host name"),
        )
    })?;
    addrs.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{host}' has no address"),
        )
    })
}

/// `accept()`: the next waiting connection, its descriptor and the peer's
/// address. The descriptor is blocking, like the C servers' sockets.
pub fn accept(listener: c_int) -> io::Result<(c_int, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let fd = accept_cloexec(
        listener,
        storage.as_mut_ptr().cast::<libc::sockaddr>(),
        &mut len,
    )?;
    // SAFETY: accept() filled in `len` bytes of `storage` (zeroed before).
    let storage = unsafe { storage.assume_init() };
    Ok((fd, to_socket_addr(&storage)))
}

/// accept(), with the new descriptor close-on-exec: in one call where the
/// OS has accept4(), else accept() then fcntl().
fn accept_cloexec(
    listener: c_int,
    addr: *mut libc::sockaddr,
    len: &mut libc::socklen_t,
) -> io::Result<c_int> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    {
        // SAFETY: the caller passes room for any address, its size in `len`.
        cvt(unsafe { libc::accept4(listener, addr, len, libc::SOCK_CLOEXEC) })
    }
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY: the caller passes room for any address, its size in `len`.
        let fd = cvt(unsafe { libc::accept(listener, addr, len) })?;
        set_cloexec(fd);
        Ok(fd)
    }
}

/// `read()` into `buf`: Ok(0) is end of file. Retries on EINTR. On a
/// non-blocking socket with nothing to read, the error is
/// `ErrorKind::WouldBlock` (EAGAIN).
pub fn read(fd: c_int, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        match cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One `write()` of `buf`: how many bytes went out, which may be fewer
/// than `buf.len()` (as many as the socket's send buffer had room for).
/// Retries on EINTR (then nothing was written). On a non-blocking socket
/// whose send buffer is full, the error is `ErrorKind::WouldBlock` (EAGAIN)
/// instead of a wait. Writing the rest is the caller's loop, on purpose:
/// that loop is what the steps are about.
pub fn write(fd: c_int, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` readable bytes.
        match cvt(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sets `O_NONBLOCK` on `fd`: from then on [`read`] and [`write()`] return
/// `ErrorKind::WouldBlock` where they would have waited.
pub fn set_nonblocking(fd: c_int) -> io::Result<()> {
    // SAFETY: F_GETFL reads the descriptor's flags; no memory is passed.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: F_SETFL with an int argument; no memory is passed.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// `shutdown(fd, SHUT_WR)`: we write nothing more. The peer reads end of
/// file once it has read everything written before; the connection stays
/// open the other way, so the peer may still send, and we may still read.
pub fn shutdown_write(fd: c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor number; no memory is passed.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(drop)
}

/// `signal(sig, SIG_IGN)`: the signal no longer does what it does by
/// default (for SIGINT and SIGTERM: end the process). A step that takes
/// signals as kqueue events (`EVFILT_SIGNAL`) ignores them first: on the
/// BSDs and macOS the filter only records a signal, and does not stop it.
pub fn ignore_signal(sig: c_int) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so none of our code ever runs
    // in a signal context; `sig` is checked by the kernel (EINVAL).
    if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `close()`. Errors are ignored: there is nothing a server can do about
/// them, and the descriptor is gone either way.
pub fn close(fd: c_int) {
    // SAFETY: closing a descriptor number has no memory effects; the caller
    // owns it and does not use it afterwards.
    unsafe { libc::close(fd) };
}

fn local_addr(fd: c_int) -> io::Result<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` has room for any address and `len` says how much.
    cvt(unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: getsockname() filled in the (zeroed) storage.
    Ok(to_socket_addr(&unsafe { storage.assume_init() }))
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> SocketAddr {
    match storage.ss_family as c_int {
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6,
            // and sockaddr_storage is large and aligned enough for it.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))
        }
        _ => {
            // SAFETY: AF_INET (the only other family we create): the
            // storage holds a sockaddr_in.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            ))
        }
    }
}

/// What system calls return: `c_int` (i32) or `ssize_t` (isize), where -1
/// means the call failed and errno says why.
trait SyscallRet: Copy {
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
fn cvt<T: SyscallRet>(r: T) -> io::Result<T> {
    if r.failed() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sys_socket(family: c_int) -> io::Result<c_int> {
    // SAFETY: plain syscall, no pointers.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_STREAM, 0) })?;
    set_cloexec(fd);
    Ok(fd)
}

/// Keeps our sockets out of programs we might spawn.
fn set_cloexec(fd: c_int) {
    // SAFETY: plain syscall on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

fn sys_setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn sys_bind(fd: c_int, addr: &SocketAddr) -> io::Result<()> {
    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero is a valid sockaddr_in; the fields are set below.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: passes a live sockaddr_in and its exact size.
            unsafe {
                libc::bind(
                    fd,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6; the fields are set below.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: passes a live sockaddr_in6 and its exact size.
            unsafe {
                libc::bind(
                    fd,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    cvt(rc).map(drop)
}

fn sys_listen(fd: c_int, backlog: c_int) -> io::Result<()> {
    // SAFETY: plain syscall, no pointers.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mode, parsed the way a step parses its own option values.
    #[derive(Debug, PartialEq)]
    enum Mode {
        Delete,
        Close,
    }

    crate::options! {
        /// Options as a step declares them.
        #[derive(Debug)]
        struct TestOptions {
            remove: Mode = Mode::Delete, "--remove MODE",
                |v| match v {
                    "delete" => Ok(Mode::Delete),
                    "close" => Ok(Mode::Close),
                    _ => Err(format!("expected 'delete' or 'close', not '{v}'")),
                },
                "delete or close";
            max: Option<usize> = None, "--max N",
                |v| v.parse().map(Some).map_err(|_| format!("not a number: '{v}'")),
                "at most N";
        }
    }

    fn parse(args: &[&str]) -> Result<Option<Parsed<TestOptions>>, String> {
        Args::parse_from::<TestOptions>(args.iter().map(|s| s.to_string()))
    }

    /// With no arguments a step listens on 127.0.0.1:8080, its options at
    /// their defaults, not quiet.
    #[test]
    fn defaults_to_localhost_8080() {
        let p = parse(&[]).unwrap().unwrap();
        assert_eq!((p.args.host.as_str(), p.args.port), ("127.0.0.1", 8080));
        assert_eq!(
            (p.opts.remove, p.opts.max, p.quiet),
            (Mode::Delete, None, false)
        );
    }

    /// --host, --port, --quiet and a step's own options are all read, the
    /// options as their own types.
    #[test]
    fn reads_host_port_and_step_options() {
        let p = parse(&[
            "--port", "0", "--quiet", "--host", "::1", "--remove", "close", "--max", "7",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((p.args.host.as_str(), p.args.port), ("::1", 0));
        assert_eq!((p.opts.remove, p.opts.max), (Mode::Close, Some(7)));
        assert!(p.quiet);
    }

    /// Malformed arguments are refused with a message naming the problem.
    #[test]
    fn refuses_malformed_arguments() {
        for (args, why) in [
            (&["--port", "99999"][..], "from 0 to 65535"),
            (&["--port", "x"][..], "not 'x'"),
            (&["--port"][..], "needs a value"),
            (&["--bogus"][..], "unknown argument '--bogus'"),
            (
                &["--remove", "both"][..],
                "--remove: expected 'delete' or 'close'",
            ),
            (&["--max"][..], "--max needs a value"),
        ] {
            let err = parse(args).expect_err("should fail");
            assert!(
                err.contains(why),
                "args {args:?}: expected {why:?} in {err:?}"
            );
        }
    }

    /// `--help` lists the common options, then the step's, each once.
    #[test]
    fn usage_lists_the_step_options() {
        use crate::StepOptions;
        let u = usage("step9", TestOptions::SPECS);
        assert!(
            u.starts_with(
                "usage: step9 [--host HOST] [--port PORT] [--quiet] [--remove MODE] [--max N]"
            ),
            "{u}"
        );
        assert!(u.contains("\n  --remove MODE delete or close"), "{u}");
        assert!(parse(&["-h"]).unwrap().is_none(), "-h is --help");
    }

    /// write() says how much went out; on a non-blocking socket whose
    /// buffers are full it says WouldBlock instead of waiting, and so does
    /// read() with nothing to read.
    #[test]
    fn write_and_read_surface_would_block_on_a_non_blocking_socket() {
        let mut fds = [0 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        let (a, b) = (fds[0], fds[1]);
        set_nonblocking(a).expect("O_NONBLOCK");
        set_nonblocking(a).expect("setting it twice is harmless");
        let mut buf = [0u8; 8];
        let err = read(a, &mut buf).expect_err("nothing to read");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert_eq!(write(a, b"hello").expect("room for 5 bytes"), 5);
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 5;
        let err = loop {
            match write(a, &chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 64 << 20, "64 MiB went into a socket nobody reads");
        };
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "after {total} bytes: {err}"
        );
        assert_eq!(read(b, &mut buf[..5]).expect("the peer reads"), 5);
        assert_eq!(&buf[..5], b"hello");
        close(a);
        close(b);
    }

    /// mksock() with port 0 gets a real port, and binding it again fails
    /// with "address in use".
    #[test]
    fn mksock_binds_a_free_port_and_refuses_one_in_use() {
        let (fd, addr) = mksock("127.0.0.1", 0).expect("mksock");
        assert_ne!(addr.port(), 0);
        let err = mksock("127.0.0.1", addr.port()).expect_err("second bind");
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
        close(fd);
    }

    /// A host that is neither an address nor a name is a clear error.
    #[test]
    fn mksock_explains_a_bad_host() {
        let err = mksock("no such host!", 0).expect_err("bad host");
        assert!(err.to_string().contains("'no such host!'"), "{err}");
    }
}
