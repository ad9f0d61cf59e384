#!/usr/bin/env bash
# book-transcripts.sh: regenerate book/generated/ (terminal transcripts of
# every step, the step-to-step diffs, kq doc sections, the tables of
# tests), then say whether anything changed. (C and Rust listings are not
# generated: the chapters include them by anchor from the sources.)
#
#   scripts/book-transcripts.sh           regenerate
#   scripts/book-transcripts.sh --check   regenerate, then fail if the
#                                         committed files were stale (CI)
#
# The step servers run on --port 0 and are driven by a scripted client
# (book/tool/transcripts.rs); ports, paths and timings are normalised so a
# second run writes the same bytes. Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/book-transcripts.sh [--check]" >&2; exit 2 ;;
esac

# Build the binaries, and ask cargo where it put them rather than guessing
# (that honours CARGO_TARGET_DIR and any .cargo/config.toml).
bins=$(cargo build -p step1 -p step2 -p step3 -p step4 -p step5 -p harness \
  --bin step1 --bin step2 --bin step3 --bin step4 --bin step5 --bin harness \
  --message-format=json-render-diagnostics |
  grep -o '"executable":"[^"]*"' | sed 's/"executable":"\(.*\)"/\1/')

args=()
for name in step1 step2 step3 step4 step5 harness; do
  path=$(printf '%s\n' "$bins" | grep "/$name\$" | tail -n 1 || true)
  if [ -z "$path" ]; then
    echo "book-transcripts.sh: cargo build did not report the $name binary" >&2
    exit 1
  fi
  if [ "$name" = harness ]; then
    args+=(--harness "$path")
  else
    args+=(--step "$name=$path")
  fi
done

cargo run -q -p book --bin book-gen -- "${args[@]}"

if [ "$check" = 1 ]; then
  # Untracked new files count as changes too, so use status, not diff alone.
  if [ -n "$(git status --porcelain -- book/generated)" ]; then
    echo "book-transcripts.sh: book/generated/ was stale; the differences:" >&2
    git status --porcelain -- book/generated >&2
    git --no-pager diff -- book/generated >&2
    echo "run scripts/book-transcripts.sh and commit book/generated/" >&2
    exit 1
  fi
  echo "book/generated/ is fresh"
fi
