#!/bin/sh
# cc-kq.sh: compile a kqueue C program, on Linux against the kq crate.
#
#   examples/c/cc-kq.sh examples/c/echo.c -o echo
#
# Every argument goes to cc.  On Linux the script first runs
# `cargo build --release -p kq-c` (a no-op when libkq.a is up to date), then
# adds -I kq-c/include (our <sys/event.h>), libkq.a, and the system libraries
# a Rust static library needs, so the program runs on its own: no
# LD_LIBRARY_PATH, no libkq.so at run time.
# On macOS and the BSDs the kernel has kqueue and <sys/event.h> is the
# system's: the script just runs cc (with -pthread, as it does on Linux).
#
# Environment:
#   CC      the C compiler (default: cc)
#   KQ_LIB  an existing libkq.a to link instead of building one (the tests
#           use this to link the library cargo test just built)
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-cc}

if [ "$(uname -s)" != Linux ]; then
	# shellcheck disable=SC2086 # CC may be a command with arguments
	exec $cc -pthread "$@"
fi

lib=${KQ_LIB:-}
if [ -z "$lib" ]; then
	# Ask cargo where the library is rather than guessing: that honours
	# CARGO_TARGET_DIR and any target-dir in .cargo/config.toml.
	lib=$(cargo build --release -p kq-c --lib \
		--manifest-path "$root/Cargo.toml" \
		--message-format=json-render-diagnostics |
		grep -o '"[^"]*/libkq\.a"' | tr -d '"' | tail -n 1) || true
	if [ -z "$lib" ]; then
		echo "cc-kq.sh: cargo build --release -p kq-c did not produce libkq.a" >&2
		exit 1
	fi
fi
if [ ! -f "$lib" ]; then
	echo "cc-kq.sh: $lib: no such file" >&2
	exit 1
fi

# The libraries after "$lib" are what `rustc --print native-static-libs`
# lists for libkq.a on Linux (-lc comes last on its own).
# shellcheck disable=SC2086 # CC may be a command with arguments
exec $cc -pthread -I "$root/kq-c/include" "$@" "$lib" \
	-lgcc_s -lutil -lrt -lpthread -lm -ldl
