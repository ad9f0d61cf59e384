//! kq from C.
//!
//! On Linux: `kq-c/include/sys/event.h` says what the Rust side says (every
//! constant, the struct's layout, `EV_SET`), and `libkq.a`/`libkq.so` link
//! from C and C++. On every Unix: the C programs in `examples/c` compile
//! with `examples/c/cc-kq.sh` and the echo and chat servers pass the same
//! harness checks as the Rust steps.
//!
//! The C compiler is the system's `cc` (and `c++` for the C++ check).
//! Programs are compiled once per test run into `CARGO_TARGET_TMPDIR`.
#![cfg(unix)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use harness::checks::{run_stage, Stage};
use harness::Server;

/// Compiling and linking one program; generous, the machine may be busy.
const COMPILE_DEADLINE: Duration = Duration::from_secs(120);
/// Running one of the small C programs (`timers` takes about 1 s).
const RUN_DEADLINE: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kq-c/ has a parent directory")
        .to_path_buf()
}

#[cfg(target_os = "linux")]
fn include_dir() -> PathBuf {
    workspace_root().join("kq-c/include")
}

fn example(name: &str) -> PathBuf {
    workspace_root().join("examples/c").join(name)
}

/// Where compiled programs and generated sources go.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_abi");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
    dir
}

/// The directory with the `libkq.a` and `libkq.so` of this checkout.
///
/// `cargo test` does not build a library that is only a staticlib and a
/// cdylib (nothing links it into the test), so the first call asks cargo
/// to build kq-c's library now and to say where it put it: a library left
/// behind by an older build is never used by mistake.
#[cfg(target_os = "linux")]
fn libkq_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = run(
            Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "kq-c",
                    "--lib",
                    "--message-format=json-render-diagnostics",
                ])
                .args([
                    "--manifest-path",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"),
                ]),
            COMPILE_DEADLINE,
        );
        assert!(
            out.status.success(),
            "cargo build -p kq-c --lib failed: {}\n{}",
            out.status,
            text(&out.stderr)
        );
        let json = String::from_utf8_lossy(&out.stdout);
        let lib = json
            .split('"')
            .rfind(|s| s.ends_with("/libkq.a"))
            .unwrap_or_else(|| panic!("cargo build -p kq-c --lib reported no libkq.a"));
        let dir = Path::new(lib)
            .parent()
            .expect("libkq.a has a directory")
            .to_path_buf();
        assert!(
            dir.join("libkq.so").is_file(),
            "libkq.so not found beside {lib}: kq-c's Cargo.toml must keep \
             crate-type = [\"staticlib\", \"cdylib\"]"
        );
        dir
    })
    .clone()
}

/// A child that is killed and reaped when dropped, also while panicking.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion with a deadline, collecting its output.
fn run(cmd: &mut Command, deadline: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut child = KillOnDrop(child);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.0.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.0.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > deadline => {
                panic!("{cmd:?} did not finish within {deadline:?}; killed it")
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a compiler command; a failure shows the command and its messages.
fn compile(cmd: &mut Command) {
    let out = run(cmd, COMPILE_DEADLINE);
    assert!(
        out.status.success(),
        "compiling failed: {cmd:?}\nexit: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Runs a program that must succeed; returns its stdout.
fn run_ok(exe: &Path, args: &[&str]) -> String {
    let out = run(Command::new(exe).args(args), RUN_DEADLINE);
    assert!(
        out.status.success(),
        "{exe:?} {args:?} failed: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Compiles `examples/c/<name>.c` with the documented script, warnings as
/// errors, once per test run; returns the executable.
fn example_program(name: &'static str) -> PathBuf {
    // One cell per program: tests needing the same program wait for one
    // compile, tests needing different programs compile in parallel.
    type Cell = Arc<OnceLock<PathBuf>>;
    static BUILT: OnceLock<Mutex<HashMap<&'static str, Cell>>> = OnceLock::new();
    let cell = BUILT
        .get_or_init(Default::default)
        .lock()
        .expect("no compile panicked while holding the map")
        .entry(name)
        .or_default()
        .clone();
    cell.get_or_init(|| {
        let exe = out_dir().join(name);
        // Link under a private name first: a concurrent run of this test
        // binary must never execute a half-written file.
        let tmp = out_dir().join(format!("{name}.{}.tmp", std::process::id()));
        let mut cmd = Command::new("sh");
        cmd.arg(example("cc-kq.sh"))
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(example(&format!("{name}.c")))
            .arg("-o")
            .arg(&tmp);
        #[cfg(target_os = "linux")]
        cmd.env("KQ_LIB", libkq_dir().join("libkq.a"));
        compile(&mut cmd);
        std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("rename {tmp:?}: {e}"));
        exe
    })
    .clone()
}

// ---------------------------------------------------------------------------
// The header agrees with the Rust side (Linux only: elsewhere the system's
// <sys/event.h> is used and kq-c/include is not).

#[cfg(target_os = "linux")]
mod header {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Every `EVFILT_*`/`EV_*`/`NOTE_*` constant kq exports on Linux, with its
    /// Rust value.
    macro_rules! rust_constants {
        ($($name:ident),* $(,)?) => {
            &[$((stringify!($name), kq_rust::$name as i64)),*]
        };
    }

    const RUST_CONSTANTS: &[(&str, i64)] = rust_constants![
        EVFILT_READ,
        EVFILT_WRITE,
        EVFILT_AIO,
        EVFILT_VNODE,
        EVFILT_PROC,
        EVFILT_SIGNAL,
        EVFILT_TIMER,
        EVFILT_PROCDESC,
        EVFILT_FS,
        EVFILT_LIO,
        EVFILT_USER,
        EVFILT_SENDFILE,
        EVFILT_EMPTY,
        EVFILT_SYSCOUNT,
        EV_ADD,
        EV_DELETE,
        EV_ENABLE,
        EV_DISABLE,
        EV_FORCEONESHOT,
        EV_KEEPUDATA,
        EV_DROP,
        EV_FLAG1,
        EV_FLAG2,
        EV_ONESHOT,
        EV_CLEAR,
        EV_RECEIPT,
        EV_DISPATCH,
        EV_SYSFLAGS,
        EV_ERROR,
        EV_EOF,
        NOTE_LOWAT,
        NOTE_FILE_POLL,
        NOTE_DELETE,
        NOTE_WRITE,
        NOTE_EXTEND,
        NOTE_ATTRIB,
        NOTE_LINK,
        NOTE_RENAME,
        NOTE_REVOKE,
        NOTE_OPEN,
        NOTE_CLOSE,
        NOTE_CLOSE_WRITE,
        NOTE_READ,
        NOTE_EXIT,
        NOTE_FORK,
        NOTE_EXEC,
        NOTE_PCTRLMASK,
        NOTE_PDATAMASK,
        NOTE_TRACK,
        NOTE_TRACKERR,
        NOTE_CHILD,
        NOTE_FFNOP,
        NOTE_FFAND,
        NOTE_FFOR,
        NOTE_FFCOPY,
        NOTE_FFCTRLMASK,
        NOTE_FFLAGSMASK,
        NOTE_TRIGGER,
        NOTE_SECONDS,
        NOTE_MSECONDS,
        NOTE_USECONDS,
        NOTE_NSECONDS,
        NOTE_ABSTIME,
    ];

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path:?}: {e}"))
    }

    /// The names the header `#define`s as constants (not its guard, not EV_SET).
    fn header_constant_names() -> BTreeSet<String> {
        read(&include_dir().join("sys/event.h"))
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("#define"))
            .map(|rest| {
                let name = rest.split_whitespace().next().unwrap_or("");
                name.split('(').next().unwrap_or("").to_string()
            })
            .filter(|name| name != "_KQ_SYS_EVENT_H_" && name != "EV_SET")
            .collect()
    }

    /// The constants the Linux ABI module declares (`pub const NAME: ...`), so a
    /// constant added there without a line in the header is caught.
    fn abi_rs_constant_names() -> BTreeSet<String> {
        read(&workspace_root().join("kq/src/linux/abi.rs"))
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("pub const "))
            .filter_map(|rest| rest.split(':').next())
            .map(|name| name.trim().to_string())
            .collect()
    }

    /// Writes a generated C file and compiles it against the header alone.
    fn compile_header_probe(name: &str, source: &str, flags: &[&str]) -> PathBuf {
        let dir = out_dir();
        let c = dir.join(format!("{name}.{}.c", std::process::id()));
        let exe = dir.join(format!("{name}.{}", std::process::id()));
        std::fs::write(&c, source).unwrap_or_else(|e| panic!("cannot write {c:?}: {e}"));
        compile(
            Command::new("cc")
                .args(flags)
                .arg("-I")
                .arg(include_dir())
                .arg(&c)
                .arg("-o")
                .arg(&exe),
        );
        exe
    }

    /// Parses "NAME VALUE" lines.
    fn name_values(stdout: &str) -> BTreeMap<String, i64> {
        stdout
            .lines()
            .map(|line| {
                let (name, value) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("unexpected probe line {line:?}"));
                let value = value
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("probe line {line:?}: {e}"));
                (name.to_string(), value)
            })
            .collect()
    }

    /// The header defines exactly the constants kq has, each with the value of the Rust constant.
    #[test]
    fn header_constants_equal_the_rust_constants() {
        let in_table: BTreeSet<String> =
            RUST_CONSTANTS.iter().map(|(n, _)| n.to_string()).collect();
        let in_header = header_constant_names();
        let in_abi_rs = abi_rs_constant_names();
        assert!(
            in_header == in_abi_rs,
            "kq-c/include/sys/event.h and kq/src/linux/abi.rs define different constants\n\
             only in the header: {:?}\nonly in abi.rs: {:?}",
            in_header.difference(&in_abi_rs).collect::<Vec<_>>(),
            in_abi_rs.difference(&in_header).collect::<Vec<_>>()
        );
        assert!(
            in_table == in_abi_rs,
            "this test's RUST_CONSTANTS table is out of date with kq/src/linux/abi.rs\n\
             only in the table: {:?}\nonly in abi.rs: {:?}",
            in_table.difference(&in_abi_rs).collect::<Vec<_>>(),
            in_abi_rs.difference(&in_table).collect::<Vec<_>>()
        );

        let mut source =
            String::from("#include <stdio.h>\n#include <sys/event.h>\nint main(void)\n{\n");
        for (name, _) in RUST_CONSTANTS {
            source += &format!("\tprintf(\"%s %lld\\n\", \"{name}\", (long long)({name}));\n");
        }
        source += "\treturn 0;\n}\n";
        let exe = compile_header_probe("constants", &source, &["-Wall", "-Werror"]);
        let from_c = name_values(&run_ok(&exe, &[]));

        let mismatches: Vec<String> = RUST_CONSTANTS
            .iter()
            .filter(|(name, rust)| from_c.get(*name) != Some(rust))
            .map(|(name, rust)| format!("{name}: C says {:?}, Rust says {rust}", from_c.get(*name)))
            .collect();
        assert!(
            mismatches.is_empty(),
            "the header and the Rust constants disagree:\n{}",
            mismatches.join("\n")
        );
    }

    /// Whether an integer type is signed, for comparing field types with C.
    trait Signedness {
        fn signed(&self) -> bool;
    }

    macro_rules! signedness {
        ($($t:ty),*) => {$(
            impl Signedness for $t {
                fn signed(&self) -> bool {
                    <$t>::MIN != 0
                }
            }
        )*};
    }
    signedness!(i16, u16, i32, u32, i64, u64, isize, usize);

    impl<T> Signedness for *mut T {
        fn signed(&self) -> bool {
            false
        }
    }

    /// `struct kevent` has the same size, alignment, field offsets, field sizes and signedness in C and Rust.
    #[test]
    fn struct_kevent_has_the_same_layout_in_c_and_rust() {
        use std::mem::{align_of, offset_of, size_of, size_of_val};

        // In C, a field is signed if all-ones bytes read back as negative.
        let source = r#"
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/event.h>

#define FIELD(f) do {							\
	struct kevent ev;						\
	memset(&ev, 0xff, sizeof(ev));					\
	printf(#f "_offset %zu\n", offsetof(struct kevent, f));		\
	printf(#f "_size %zu\n", sizeof(ev.f));				\
	printf(#f "_signed %d\n", !(ev.f > 0));		\
} while (0)

int
main(void)
{
	struct kevent ev;

	printf("size %zu\n", sizeof(struct kevent));
	printf("align %zu\n", (size_t)_Alignof(struct kevent));
	FIELD(ident);
	FIELD(filter);
	FIELD(flags);
	FIELD(fflags);
	FIELD(data);
	printf("udata_offset %zu\n", offsetof(struct kevent, udata));
	printf("udata_size %zu\n", sizeof(ev.udata));
	printf("udata_signed 0\n");
	return 0;
}
"#;
        let exe = compile_header_probe("layout", source, &["-std=c11", "-Wall", "-Werror"]);
        let from_c = name_values(&run_ok(&exe, &[]));

        let ev = kq_rust::kevent_zeroed();
        let mut rust: BTreeMap<String, i64> = BTreeMap::new();
        rust.insert("size".into(), size_of::<kq_rust::kevent>() as i64);
        rust.insert("align".into(), align_of::<kq_rust::kevent>() as i64);
        let fields: [(&str, usize, usize, bool); 6] = [
            (
                "ident",
                offset_of!(kq_rust::kevent, ident),
                size_of_val(&ev.ident),
                ev.ident.signed(),
            ),
            (
                "filter",
                offset_of!(kq_rust::kevent, filter),
                size_of_val(&ev.filter),
                ev.filter.signed(),
            ),
            (
                "flags",
                offset_of!(kq_rust::kevent, flags),
                size_of_val(&ev.flags),
                ev.flags.signed(),
            ),
            (
                "fflags",
                offset_of!(kq_rust::kevent, fflags),
                size_of_val(&ev.fflags),
                ev.fflags.signed(),
            ),
            (
                "data",
                offset_of!(kq_rust::kevent, data),
                size_of_val(&ev.data),
                ev.data.signed(),
            ),
            (
                "udata",
                offset_of!(kq_rust::kevent, udata),
                size_of_val(&ev.udata),
                ev.udata.signed(),
            ),
        ];
        for (name, offset, size, signed) in fields {
            rust.insert(format!("{name}_offset"), offset as i64);
            rust.insert(format!("{name}_size"), size as i64);
            rust.insert(format!("{name}_signed"), i64::from(signed));
        }
        assert_eq!(
            from_c, rust,
            "struct kevent differs: left is C (kq-c/include/sys/event.h), right is Rust"
        );
    }

    /// EV_SET sets all six fields to the values `kq_rust::ev_set` gives and evaluates each argument exactly once.
    #[test]
    fn ev_set_fills_all_six_fields_and_evaluates_each_argument_once() {
        // Fields start as 0xa5 garbage, so a field EV_SET forgot shows up; the
        // second event must stay untouched; p++ must advance p by one.
        let source = r#"
#include <stdio.h>
#include <string.h>
#include <sys/event.h>

int
main(void)
{
	struct kevent evs[2], *p = evs;
	unsigned char *second = (unsigned char *)&evs[1];
	int calls = 0, untouched = 1;
	size_t i;

	memset(evs, 0xa5, sizeof(evs));
	EV_SET(p++, (calls++, 7), (calls++, EVFILT_USER),
	    (calls++, EV_ADD | EV_CLEAR), (calls++, NOTE_TRIGGER | NOTE_FFCOPY | 0x123),
	    (calls++, -5), (calls++, (void *)&evs[1]));
	for (i = 0; i < sizeof(evs[1]); i++)
		if (second[i] != 0xa5)
			untouched = 0;
	printf("advanced %d\n", (int)(p - evs));
	printf("calls %d\n", calls);
	printf("ident %lld\n", (long long)evs[0].ident);
	printf("filter %lld\n", (long long)evs[0].filter);
	printf("flags %lld\n", (long long)evs[0].flags);
	printf("fflags %lld\n", (long long)evs[0].fflags);
	printf("data %lld\n", (long long)evs[0].data);
	printf("udata_is_second %d\n", evs[0].udata == (void *)&evs[1]);
	printf("second_untouched %d\n", untouched);
	return 0;
}
"#;
        let exe = compile_header_probe("ev_set", source, &["-std=c99", "-Wall", "-Werror"]);
        let from_c = name_values(&run_ok(&exe, &[]));

        let mut ev = kq_rust::kevent_zeroed();
        kq_rust::ev_set(
            &mut ev,
            7,
            kq_rust::EVFILT_USER,
            kq_rust::EV_ADD | kq_rust::EV_CLEAR,
            kq_rust::NOTE_TRIGGER | kq_rust::NOTE_FFCOPY | 0x123,
            -5,
            std::ptr::null_mut(),
        );
        let expected: BTreeMap<String, i64> = [
            ("advanced", 1),
            ("calls", 6),
            ("ident", ev.ident as i64),
            ("filter", i64::from(ev.filter)),
            ("flags", i64::from(ev.flags)),
            ("fflags", i64::from(ev.fflags)),
            ("data", ev.data as i64),
            ("udata_is_second", 1),
            ("second_untouched", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            from_c, expected,
            "EV_SET in C (left) differs from kq_rust::ev_set (right)"
        );
    }

    /// A program using kqueue()/kevent() and every header item, valid as C and as C++.
    const SMOKE: &str = r#"
/* Strict C99 has no struct timespec in <time.h>; POSIX does. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <sys/event.h>
#include <unistd.h>

int
main(void)
{
	static const long long all[] = {
		EVFILT_READ, EVFILT_WRITE, EVFILT_AIO, EVFILT_VNODE, EVFILT_PROC,
		EVFILT_SIGNAL, EVFILT_TIMER, EVFILT_PROCDESC, EVFILT_FS,
		EVFILT_LIO, EVFILT_USER, EVFILT_SENDFILE, EVFILT_EMPTY,
		EVFILT_SYSCOUNT,
		EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_FORCEONESHOT,
		EV_KEEPUDATA, EV_DROP, EV_FLAG1, EV_FLAG2, EV_ONESHOT, EV_CLEAR,
		EV_RECEIPT, EV_DISPATCH, EV_SYSFLAGS, EV_ERROR, EV_EOF, NOTE_LOWAT,
		NOTE_FILE_POLL, NOTE_DELETE, NOTE_WRITE, NOTE_EXTEND, NOTE_ATTRIB,
		NOTE_LINK, NOTE_RENAME, NOTE_REVOKE, NOTE_OPEN, NOTE_CLOSE,
		NOTE_CLOSE_WRITE, NOTE_READ, NOTE_EXIT, NOTE_FORK, NOTE_EXEC,
		NOTE_PCTRLMASK, NOTE_PDATAMASK, NOTE_TRACK, NOTE_TRACKERR,
		NOTE_CHILD,
		NOTE_FFNOP, NOTE_FFAND, NOTE_FFOR, NOTE_FFCOPY, NOTE_FFCTRLMASK,
		NOTE_FFLAGSMASK, NOTE_TRIGGER, NOTE_SECONDS, NOTE_MSECONDS,
		NOTE_USECONDS, NOTE_NSECONDS, NOTE_ABSTIME
	};
	struct kevent changes[2], event;
	struct timespec zero = { 0, 0 };
	int kq, n;

	if ((kq = kqueue()) == -1) {
		perror("kqueue");
		return 1;
	}
	/* Add, then trigger: FreeBSD does not fire a knote as it is added. */
	EV_SET(&changes[0], 42, EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0,
	    (void *)&zero);
	EV_SET(&changes[1], 42, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 5,
	    0, (void *)&zero);
	n = kevent(kq, changes, 2, &event, 1, &zero);
	if (n != 1 || event.ident != 42 || event.filter != EVFILT_USER ||
	    (event.fflags & NOTE_FFLAGSMASK) != 5 || event.udata != (void *)&zero) {
		fprintf(stderr, "kevent returned %d, ident %lu filter %d fflags 0x%x\n",
		    n, (unsigned long)event.ident, (int)event.filter,
		    (unsigned)event.fflags);
		return 1;
	}
	if (kevent(-1, NULL, 0, NULL, 0, &zero) != -1) {
		fprintf(stderr, "kevent(-1, ...) did not fail\n");
		return 1;
	}
	close(kq);
	printf("ok %d constants\n", (int)(sizeof(all) / sizeof(all[0])));
	return 0;
}
"#;

    /// The header compiles warning-free as strict C99, C11 and C++11, and C++ links `kqueue`/`kevent` (extern "C").
    #[test]
    fn header_works_from_strict_c_and_from_cpp() {
        let dir = out_dir();
        let pid = std::process::id();
        let src = dir.join(format!("smoke.{pid}.c"));
        std::fs::write(&src, SMOKE).unwrap_or_else(|e| panic!("cannot write {src:?}: {e}"));
        let lib = libkq_dir().join("libkq.a");
        let system_libs = ["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];
        let builds: [(&str, &[&str]); 3] = [
            ("cc", &["-std=c99", "-pedantic"]),
            ("cc", &["-std=c11", "-pedantic"]),
            ("c++", &["-x", "c++", "-std=c++11", "-pedantic"]),
        ];
        let expected = format!("ok {} constants\n", RUST_CONSTANTS.len());
        for (i, (compiler, flags)) in builds.iter().enumerate() {
            let exe = dir.join(format!("smoke-{i}.{pid}"));
            let mut cmd = Command::new(compiler);
            cmd.args(*flags)
                .args(["-Wall", "-Wextra", "-Werror", "-I"])
                .arg(include_dir())
                .arg(&src)
                // Back to "linker input" for the library after `-x c++`.
                .args(["-x", "none"])
                .arg(&lib)
                .args(system_libs)
                .arg("-o")
                .arg(&exe);
            compile(&mut cmd);
            let stdout = run_ok(&exe, &[]);
            assert_eq!(stdout, expected, "{compiler} {flags:?}: unexpected output");
        }
    }

    /// libkq.so exports kqueue and kevent: `cc prog.c -I kq-c/include -L DIR -lkq` links and runs.
    #[test]
    fn shared_library_links_with_dash_lkq_and_runs() {
        let dir = out_dir();
        let pid = std::process::id();
        // A directory holding only libkq.so, so -lkq cannot pick libkq.a.
        let so_dir = dir.join(format!("so.{pid}"));
        let _ = std::fs::remove_dir_all(&so_dir);
        std::fs::create_dir_all(&so_dir).unwrap_or_else(|e| panic!("{so_dir:?}: {e}"));
        std::fs::copy(libkq_dir().join("libkq.so"), so_dir.join("libkq.so"))
            .unwrap_or_else(|e| panic!("copying libkq.so: {e}"));
        let src = dir.join(format!("smoke-so.{pid}.c"));
        std::fs::write(&src, SMOKE).unwrap_or_else(|e| panic!("cannot write {src:?}: {e}"));
        let exe = dir.join(format!("smoke-so.{pid}"));
        compile(
            Command::new("cc")
                .args(["-Wall", "-Wextra", "-Werror", "-I"])
                .arg(include_dir())
                .arg(&src)
                .arg("-L")
                .arg(&so_dir)
                .arg("-lkq")
                .arg(format!("-Wl,-rpath,{}", so_dir.display()))
                .arg("-o")
                .arg(&exe),
        );
        let stdout = run_ok(&exe, &[]);
        let _ = std::fs::remove_dir_all(&so_dir);
        assert_eq!(stdout, format!("ok {} constants\n", RUST_CONSTANTS.len()));
    }
}

// ---------------------------------------------------------------------------
// The C examples.

/// examples/c/echo.c passes every check of the harness's echo stage, like step3 and step4.
#[test]
fn c_echo_server_passes_the_echo_checks() -> harness::Result {
    let server = Server::spawn("echo.c", example_program("echo"), &[])?;
    run_stage(Stage::Echo, &server.target())
}

/// examples/c/echo.c under KQ_TRACE: its kevent() calls, made through
/// kq-c, are traced decoded: both EV_ADDs, the read event with its data,
/// and the EV_EOF. (Linux only: elsewhere the C programs call the
/// kernel's kevent(), which kq does not see.)
#[cfg(target_os = "linux")]
#[test]
fn c_echo_servers_kevent_calls_are_traced() -> harness::Result {
    let launch = harness::Launch::new("echo.c", example_program("echo"), &[]).traced(true);
    let server = Server::start(&launch)?;
    let mut client = server.client()?;
    client.send_line("hello")?;
    client.expect_line("hello")?;
    drop(client);
    let until = Instant::now() + RUN_DEADLINE;
    let trace = loop {
        let trace = server.kq_trace().expect("started with the trace");
        if trace.contains(", EV_EOF, ") || Instant::now() > until {
            break trace;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let adds = trace.matches(", EVFILT_READ, EV_ADD, 0, 0, NULL)").count();
    assert_eq!(
        adds, 2,
        "the listener's and the client's EV_ADD, in:\n{trace}"
    );
    for want in [
        "  event  EV_SET(",
        ", EVFILT_READ, 0, 0, 6, NULL)",
        ", EVFILT_READ, EV_EOF, 0, 0, NULL)",
        "kevent(",
    ] {
        assert!(
            trace.contains(want),
            "missing {want:?} in the trace:\n{trace}"
        );
    }
    Ok(())
}

/// examples/c/chatserv.c (NUSERS = 10) passes every check of the harness's chat stage, like step5.
#[test]
fn c_chat_server_passes_the_chat_checks() -> harness::Result {
    let server = Server::spawn("chatserv.c", example_program("chatserv"), &[])?;
    run_stage(Stage::Chat, &server.target().with_max_users(10))
}

/// Both C servers listen where --host says and announce the address they got for --port 0.
#[test]
fn c_servers_announce_the_address_they_listen_on() -> harness::Result {
    for name in ["echo", "chatserv"] {
        let server = Server::spawn(name, example_program(name), &["--host", "127.0.0.1"])?;
        let addr = server.addr();
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{name} --host 127.0.0.1 --port 0 announced {addr}, expected 127.0.0.1 and a real port"
        );
        run_stage(Stage::Listen, &server.target())?;
    }
    Ok(())
}

/// Both C servers exit with status 2 and a message on stderr, and print nothing on stdout, for bad arguments.
#[test]
fn c_servers_reject_bad_arguments_with_status_2() {
    let bad: [&[&str]; 5] = [
        &["--bogus"],
        &["--port"],
        &["--port", "99999"],
        &["--port", "eighty"],
        &["--port", "0", "extra"],
    ];
    for name in ["echo", "chatserv"] {
        let exe = example_program(name);
        for args in bad {
            let out = run(Command::new(&exe).args(args), RUN_DEADLINE);
            assert_eq!(
                (out.status.code(), text(&out.stdout).as_str()),
                (Some(2), ""),
                "{name} {args:?}: expected exit status 2 and no stdout; stderr:\n{}",
                text(&out.stderr)
            );
            assert!(
                !out.stderr.is_empty(),
                "{name} {args:?}: exit 2 but no message on stderr"
            );
        }
    }
}

/// Both C servers exit with status 1 and one clear line when the port is taken.
#[test]
fn c_servers_report_a_taken_port_in_one_line_with_status_1() -> harness::Result {
    for name in ["echo", "chatserv"] {
        let exe = example_program(name);
        let first = Server::spawn(name, &exe, &[])?;
        let port = first.addr().port().to_string();
        let out = run(Command::new(&exe).args(["--port", &port]), RUN_DEADLINE);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name} --port {port} (taken): expected exit status 1; stdout {:?}, stderr {stderr:?}",
            text(&out.stdout)
        );
        assert!(
            stderr.lines().count() == 1
                && stderr.contains("cannot listen")
                && stderr.contains(&port),
            "{name} --port {port} (taken): expected one line saying it cannot listen on \
             that port, got {stderr:?}"
        );
        first.assert_running()?;
    }
    Ok(())
}

/// examples/c/timers.c: a 100 ms periodic timer ticks about 10 times, three EVFILT_USER triggers from a thread arrive in order, and the 1 s one-shot timer ends the loop.
#[test]
fn c_timers_program_ticks_receives_user_events_and_stops_at_the_deadline() {
    let exe = example_program("timers");
    let start = Instant::now();
    let stdout = run_ok(&exe, &[]);
    let elapsed = start.elapsed();

    let jobs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("job ")).collect();
    assert_eq!(
        jobs,
        ["job 1 done", "job 2 done", "job 3 done"],
        "EVFILT_USER events from the worker thread; full output:\n{stdout}"
    );
    let mut ticks = 0;
    for line in stdout.lines().filter(|l| l.starts_with("tick: ")) {
        let n: i64 = line["tick: ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable tick line {line:?}"));
        assert!(n >= 1, "a timer event reported {n} expirations: {line:?}");
        ticks += n;
    }
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!("deadline: {ticks} ticks and 3 jobs in 1 s"),
        "the last line should report the deadline; full output:\n{stdout}"
    );
    // 100 ms over 1 s: 10 expirations, fewer if the last one races the
    // deadline or the machine is slow to schedule us.
    assert!(
        (5..=11).contains(&ticks),
        "expected about 10 ticks of a 100 ms timer in 1 s, counted {ticks}:\n{stdout}"
    );
    assert!(
        elapsed >= Duration::from_millis(950),
        "the 1 s one-shot timer fired after only {elapsed:?}"
    );
}

/// examples/c/threads.c: kevent() from several threads on one queue behaves as with the kernel's kqueue (all four of its checks pass).
#[test]
fn c_threads_program_passes_all_its_checks() {
    let exe = example_program("threads");
    let out = run(&mut Command::new(&exe), RUN_DEADLINE);
    let stdout = text(&out.stdout);
    let oks = stdout.lines().filter(|l| l.starts_with("ok: ")).count();
    assert!(
        out.status.success() && oks == 4 && !stdout.contains("FAIL"),
        "expected 4 \"ok:\" lines and exit 0, got {} ({oks} ok)\nstdout:\n{stdout}stderr:\n{}",
        out.status,
        text(&out.stderr)
    );
}

/// Lines a child writes to one of its pipes, as they come.
fn lines_of(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (up to RUN_DEADLINE) for a line containing `want`; panics with
/// what came instead.
fn expect_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, after: &str) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = RUN_DEADLINE.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(want) => return,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("{after}: expected a line with {want:?}, got {seen:?}");
}

/// examples/c/kqtail.c follows a file as another writer appends to it (EVFILT_READ on a regular file), keeps following it through a rename and an unlink (EVFILT_VNODE), and stops when the --pid process exits, printing its exit status (EVFILT_PROC).
#[test]
fn c_kqtail_follows_a_file_through_rename_and_unlink_until_a_process_exits() {
    use std::io::Write;
    let exe = example_program("kqtail");
    let dir = out_dir().join(format!("kqtail.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    let log = dir.join("log");
    std::fs::write(&log, "already there\n").expect("write the log");
    let append = |path: &Path, text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {path:?}: {e}"));
        f.write_all(text.as_bytes()).expect("append");
    };
    // The process kqtail waits for: it exits with status 3 when told to.
    let mut watched = KillOnDrop(
        Command::new("sh")
            .args(["-c", "read line; exit 3"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh"),
    );
    let pid = watched.0.id().to_string();
    let mut tail = KillOnDrop(
        Command::new(&exe)
            .args(["--pid", &pid])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{exe:?}: {e}")),
    );
    let out = lines_of(tail.0.stdout.take().expect("piped stdout"));
    let err = lines_of(tail.0.stderr.take().expect("piped stderr"));
    expect_line(&err, "following", "started");

    append(&log, "one\n");
    expect_line(&out, "one", "appended \"one\"");
    std::fs::rename(&log, dir.join("log.1")).expect("rename");
    expect_line(&err, "renamed", "renamed the log");
    append(&dir.join("log.1"), "two\n");
    expect_line(&out, "two", "appended \"two\" under the new name");
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("log.1"))
        .expect("open the log");
    std::fs::remove_file(dir.join("log.1")).expect("unlink");
    expect_line(&err, "deleted", "unlinked the log");
    writer.write_all(b"three\n").expect("append");
    expect_line(&out, "three", "appended \"three\" after the unlink");

    writeln!(watched.0.stdin.take().expect("piped stdin")).expect("tell it to exit");
    expect_line(
        &err,
        &format!("process {pid} exited with status 3"),
        "the --pid process exited",
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = tail.0.try_wait().expect("wait for kqtail") {
            break status;
        }
        assert!(start.elapsed() < RUN_DEADLINE, "kqtail did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "kqtail exited with {status}");
    let rest: Vec<String> = out.try_iter().collect();
    assert!(
        rest.iter().all(|l| !l.contains("already there")),
        "kqtail starts at the end of the file, but printed {rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// kqtail exits with status 2 and a usage message for bad arguments, and
/// with status 1 for a file it cannot open or a process that does not
/// exist.
#[test]
fn c_kqtail_rejects_bad_arguments_and_missing_things() {
    let exe = example_program("kqtail");
    let cases: [(&[&str], i32); 5] = [
        (&[], 2),
        (&["--pid"], 2),
        (&["--pid", "x", "f"], 2),
        (&["--bogus", "f"], 2),
        (&["/nonexistent/kqtail-test-file"], 1),
    ];
    for (args, code) in cases {
        let out = run(Command::new(&exe).args(args), RUN_DEADLINE);
        assert_eq!(
            out.status.code(),
            Some(code),
            "kqtail {args:?}: stderr {:?}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "kqtail {args:?}: no message");
    }
    // A pid that does not exist: a child that was reaped.
    let mut gone = Command::new("true").spawn().expect("true");
    gone.wait().expect("reap");
    let file = out_dir().join(format!("kqtail-esrch.{}", std::process::id()));
    std::fs::write(&file, "").expect("write");
    let out = run(
        Command::new(&exe)
            .args(["--pid", &gone.id().to_string()])
            .arg(&file),
        RUN_DEADLINE,
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kqtail --pid (a reaped pid): stderr {:?}",
        text(&out.stderr)
    );
}

/// examples/c/supervise.c starts 3 children, restarts each twice as it exits (EVFILT_PROC, NOTE_EXIT), reports every wait status, says on Linux that NOTE_FORK was refused and it watches exits only, and exits 0 once every slot gave up.
#[test]
fn c_supervise_restarts_each_child_and_reports_every_exit_status() {
    let exe = example_program("supervise");
    let args = ["-n", "3", "-r", "2", "sh", "-c", "exit $SUPERVISE_SLOT"];
    let out = run(Command::new(&exe).args(args), RUN_DEADLINE);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "supervise {args:?}: {}\nstdout:\n{stdout}stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for slot in 0..3 {
        let prefix = format!("slot {slot}: ");
        let mine: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        // exit, restart, exit, restart, exit, give up; each restart names
        // the pid whose exit comes next.
        let pid_of = |line: &str, before: &str, after: &str| -> String {
            let rest = line.strip_prefix(before).unwrap_or_else(|| {
                panic!("slot {slot}: expected {before:?}..., got {line:?} in {mine:?}")
            });
            let pid = rest.strip_suffix(after).unwrap_or_else(|| {
                panic!("slot {slot}: expected ...{after:?}, got {line:?} in {mine:?}")
            });
            assert!(pid.parse::<u32>().is_ok(), "slot {slot}: pid {pid:?}");
            pid.to_string()
        };
        assert_eq!(
            mine.len(),
            6,
            "slot {slot}: 3 exits, 2 restarts, the end: {mine:?}"
        );
        let status = format!(" exited with status {slot}");
        let mut pids = vec![pid_of(mine[0], "pid ", &status)];
        for run in 0..2 {
            let restarted = pid_of(mine[1 + 2 * run], "restarted as pid ", "");
            let exited = pid_of(mine[2 + 2 * run], "pid ", &status);
            assert_eq!(
                restarted, exited,
                "slot {slot}: the restarted child exits: {mine:?}"
            );
            pids.push(exited);
        }
        assert_eq!(
            mine[5], "gave up after 2 restart(s)",
            "slot {slot}: {mine:?}"
        );
        pids.sort();
        pids.dedup();
        assert_eq!(
            pids.len(),
            3,
            "slot {slot}: three different children: {mine:?}"
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some("all 3 slot(s) done after 9 run(s)"),
        "the last line: {stdout}"
    );
    let refused = stderr
        .lines()
        .filter(|l| l.contains("NOTE_FORK") && l.ends_with("watching NOTE_EXIT only"))
        .count();
    // Linux refuses NOTE_FORK (once seen, it is not asked for again); the
    // BSDs' kernels take it.
    let expected = usize::from(cfg!(target_os = "linux"));
    assert_eq!(
        refused, expected,
        "NOTE_FORK refusals on stderr: {stderr:?}"
    );
}

/// supervise reports a child killed by a signal as such (the wait status in
/// NOTE_EXIT's data), a command that cannot run as status 127, and exits
/// with status 2 and a usage message for bad arguments.
#[test]
fn c_supervise_reports_signals_and_rejects_bad_arguments() {
    let exe = example_program("supervise");
    let stdout = run_ok(&exe, &["-r", "0", "sh", "-c", "kill -9 $$"]);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("slot 0: pid ") && l.ends_with(" killed by signal 9")),
        "a child killed by SIGKILL: {stdout:?}"
    );
    let stdout = run_ok(&exe, &["-r", "0", "/nonexistent/supervise-test"]);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(" exited with status 127")),
        "a command that cannot run: {stdout:?}"
    );
    let cases: [&[&str]; 5] = [
        &[],
        &["-n"],
        &["-n", "0", "true"],
        &["-r", "x", "true"],
        &["-q", "true"],
    ];
    for args in cases {
        let out = run(Command::new(&exe).args(args), RUN_DEADLINE);
        assert_eq!(
            out.status.code(),
            Some(2),
            "supervise {args:?}: stderr {:?}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("usage:"),
            "supervise {args:?}: no usage message"
        );
    }
}

// ---------------------------------------------------------------------------
// kevent() from C with the arguments FreeBSD's kqueue_kevent tolerates (the
// issue "kq: no crash, no lost event, every FreeBSD port compiles").

/// Compiles a C program given as source with the documented script
/// (warnings as errors) and returns the executable. (Its callers pin what
/// FreeBSD answers, so they run on Linux and FreeBSD only.)
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn c_program(name: &str, source: &str) -> PathBuf {
    let dir = out_dir();
    let pid = std::process::id();
    let c = dir.join(format!("{name}.{pid}.c"));
    let exe = dir.join(format!("{name}.{pid}"));
    std::fs::write(&c, source).unwrap_or_else(|e| panic!("cannot write {c:?}: {e}"));
    let mut cmd = Command::new("sh");
    cmd.arg(example("cc-kq.sh"))
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg(&c)
        .arg("-o")
        .arg(&exe);
    #[cfg(target_os = "linux")]
    cmd.env("KQ_LIB", libkq_dir().join("libkq.a"));
    compile(&mut cmd);
    exe
}

/// `kevent(kq, NULL, 0, &one_event, INT_MAX, &one_ms)` on an empty queue returns 0 after the timeout: no allocation sized by `nevents` (kq used to abort).
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
#[test]
fn c_kevent_with_int_max_nevents_and_room_for_one_times_out() {
    let exe = c_program(
        "int_max_nevents",
        r#"
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	struct timespec one_ms = { 0, 1000000 };
	struct kevent one_event;
	int kq = kqueue();

	memset(&one_event, 0, sizeof(one_event));
	printf("kevent %d\n", kevent(kq, NULL, 0, &one_event, INT_MAX, &one_ms));
	return 0;
}
"#,
    );
    assert_eq!(
        run_ok(&exe, &[]),
        "kevent 0\n",
        "sent nevents INT_MAX with room for one, 1 ms, nothing pending"
    );
}

/// A C program written for FreeBSD that asks for NOTE_EXIT | NOTE_FORK | NOTE_TRACK compiles, and finds out at run time: kevent() fails with ENOTSUP, and NOTE_EXIT alone is accepted.
// Linux only: FreeBSD's kernel reports forks.
#[cfg(target_os = "linux")]
#[test]
fn c_program_asking_for_note_fork_compiles_and_gets_enotsup() {
    let exe = c_program(
        "note_fork",
        r#"
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	struct kevent kev;
	int kq = kqueue(), rc, err;

	EV_SET(&kev, getpid(), EVFILT_PROC, EV_ADD,
	    NOTE_EXIT | NOTE_FORK | NOTE_EXEC | NOTE_TRACK, 0, NULL);
	rc = kevent(kq, &kev, 1, NULL, 0, NULL);
	err = errno;
	printf("fork %d %s\n", rc, rc == -1 ? strerror(err) : "-");
	EV_SET(&kev, getpid(), EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, NULL);
	printf("exit %d\n", kevent(kq, &kev, 1, NULL, 0, NULL));
	return 0;
}
"#,
    );
    let expected = format!(
        "fork -1 {}\nexit 0\n",
        std::io::Error::from_raw_os_error(libc::ENOTSUP)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
    );
    assert_eq!(
        run_ok(&exe, &[]),
        expected,
        "sent NOTE_EXIT|NOTE_FORK|NOTE_EXEC|NOTE_TRACK, then NOTE_EXIT"
    );
}
