#!/usr/bin/env bash
# The translation's cost in user-space instructions per returned event: a
# deterministic figure (callgrind counts instructions; no timing involved).
#
# kq/examples/translate_loop.rs keeps 64 sockets readable and asks for their
# events ROUNDS times, through kq::kevent() or straight through epoll_wait.
# Each is run under callgrind at two ROUNDS values; the difference in
# instructions divided by the difference in returned events cancels start-up
# and set-up. Needs valgrind (Debian package `valgrind`).
# The figure is what kq adds per event over the same loop on raw epoll_wait:
# the translation itself (FIONREAD's libc wrapper included).
# Usage: scripts/translation-cost.sh [MAX]   (exit 1 when that exceeds MAX, default 150)
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-150}
command -v valgrind >/dev/null || { echo "translation-cost: valgrind not installed (apt-get install valgrind)" >&2; exit 2; }

cargo build --quiet --release -p kq --example translate_loop
bin="${CARGO_TARGET_DIR:-target}/release/examples/translate_loop"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

pairs=64 lo=200 hi=1200
# Total instructions ("summary:" line of the callgrind output) of one run.
instr() { # mode rounds
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out/cg.$1.$2"
}
per_event() { # mode
  local a b
  a=$(instr "$1" $lo); b=$(instr "$1" $hi)
  awk -v a="$a" -v b="$b" -v n=$(( (hi - lo) * pairs )) 'BEGIN {printf "%.1f", (b - a) / n}'
}
kq=$(per_event kq)
ep=$(per_event epoll)
printf 'translation cost (callgrind, user-space instructions per returned event, %d ready sockets)\n' $pairs
printf '  kq::kevent()        %8s\n' "$kq"
printf '  raw epoll_wait      %8s\n' "$ep"
added=$(awk -v a="$kq" -v b="$ep" 'BEGIN {printf "%.1f", a - b}')
printf '  added by kq         %8s   (the translation; target <= %s)\n' "$added" "$max"
if awk -v a="$added" -v m="$max" 'BEGIN {exit !(a <= m)}'; then
  echo "translation cost: met"
else
  echo "translation cost: MISSED"
  exit 1
fi
