#!/usr/bin/env bash
# kevent() calls and system calls per accepted client and per relayed
# message, for chat steps (step 7 against step 8 shows what batching the
# changes saves). Counted, not timed: perf counts every call of the step's
# Kqueue::kevent (a uprobe) and every system call the server makes
# (raw_syscalls:sys_enter), while a bash driver talks to it over
# /dev/tcp:
#
#   messages  two users; one sends N lines, each read by the other before
#             the next is sent (one relay each, never two in one batch)
#   clients   one user stays; N times a newcomer connects, says "hi", the
#             user reads it, and the newcomer leaves (a join, one relay, a
#             leave); the figure per client is this less one message
#
# On macOS and the BSDs every kevent() call is a system call; on Linux
# kevent() is kq's library call, and what reaches the kernel is counted
# apart (epoll_ctl per change, epoll_wait per wait, FIONREAD per event).
#
# Usage (Linux, as root, perf installed: Debian package linux-perf):
#   cargo build --release -p step7 -p step8
#   scripts/kevent-calls.sh target/release/step7 target/release/step8
# N=2000 by default; set N to change it.
set -euo pipefail
n=${N:-2000}
command -v perf >/dev/null || { echo "kevent-calls: perf not installed (apt-get install linux-perf)" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: scripts/kevent-calls.sh STEP_BINARY..." >&2; exit 2; }
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  perf probe -q -d 'probe_kevent_calls:*' 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The two workloads, run by bash against PORT.
messages() { # PORT N
  exec 4<>"/dev/tcp/127.0.0.1/$1" 5<>"/dev/tcp/127.0.0.1/$1"
  sleep 0.2
  local i line
  for ((i = 0; i < $2; i++)); do
    printf 'message %d\n' "$i" >&4
    read -r line <&5
  done
  exec 4>&- 5>&-
}
clients() { # PORT N
  exec 5<>"/dev/tcp/127.0.0.1/$1"
  sleep 0.2
  local i line
  for ((i = 0; i < $2; i++)); do
    exec 4<>"/dev/tcp/127.0.0.1/$1"
    printf 'hi\n' >&4
    read -r line <&5
    exec 4>&-
  done
  exec 5>&-
}
export -f messages clients

# "kevent() calls, system calls" of PID while `bash -c WORKLOAD PORT N` runs.
count() { # PID PORT WORKLOAD
  perf stat -x, -o "$work/stat" -e probe_kevent_calls:kevent -e raw_syscalls:sys_enter -p "$1" \
    -- bash -c "$3 $2 $n" >/dev/null 2>&1
  awk -F, '/probe_kevent_calls:kevent/ {k=$1} /raw_syscalls:sys_enter/ {s=$1} END {print k, s}' "$work/stat"
}

printf '%-10s %8s %8s   %8s %8s   (per message, per client: kevent() calls, system calls; N=%d)\n' \
  step kevent/msg sys/msg kevent/cl sys/cl "$n"
for bin in "$@"; do
  perf probe -q -d 'probe_kevent_calls:*' 2>/dev/null || true
  perf probe -q -x "$bin" -a 'probe_kevent_calls:kevent=kq\:\:safe\:\:Kqueue\:\:kevent' || {
    echo "kevent-calls: cannot probe kq::safe::Kqueue::kevent in $bin" >&2
    exit 1
  }
  "$bin" --quiet --port 0 >"$work/out" 2>&1 &
  server=$!
  for _ in $(seq 50); do grep -q '^listening on' "$work/out" && break; sleep 0.1; done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")
  read -r mk ms < <(count "$server" "$port" messages)
  read -r ck cs < <(count "$server" "$port" clients)
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  awk -v step="$(basename "$bin")" -v n="$n" -v mk="$mk" -v ms="$ms" -v ck="$ck" -v cs="$cs" 'BEGIN {
    printf "%-10s %8.2f %8.2f   %8.2f %8.2f\n", step, mk / n, ms / n, (ck - mk) / n, (cs - ms) / n
  }'
done
