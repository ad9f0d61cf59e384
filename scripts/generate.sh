#!/usr/bin/env bash
# generate.sh: regenerate everything generated in this repository, then
# say whether anything changed. The one entry point; CI runs it with
# --check.
#
#   scripts/generate.sh           regenerate
#   scripts/generate.sh --check   regenerate, then fail if the committed
#                                 files were stale (CI)
#
# What it writes (all by book-gen, book/tool/):
#   book/generated/transcripts/   each step's terminal sessions, played from
#                                 steps/stepN/transcripts.txt against the
#                                 step's binary, and the harness CLI's
#   book/generated/diffs/         what changed from one step to the next
#   book/generated/tests/         each step's table of tests
#   book/generated/kq/            sections of the kq crate docs
#   book/generated/stages.md      which steps' tests run which harness stage
#   book/generated/bench/*.svg    the plot, drawn from the bench's committed
#                                 data (the measurement itself is the bench's:
#                                 cargo run --release -p bench -- --idle)
#   README.md                     the table of steps, between its markers
#   steps/stepN/src/exercise.rs   each step's starter, the learner's file:
#                                 src/main.rs with its `// LESSON:` regions
#                                 cut to the todo!()s of steps/stepN/hints.md
#   book/generated/transcripts/stepN-your-turn.txt
#                                 what `cargo learn check N` says of the
#                                 starter: the first failure a learner sees
#
# A starter someone has edited (a learner's work: it is neither the
# committed file nor one this script wrote) is kept, not overwritten, and
# the script says so; `cargo learn reset N` restores the starter. So is a
# challenge starter (`cargo learn level N challenge` writes it, from the
# same main.rs and hints.md; this script writes only the guided one).
#
# The steps are whatever steps/step<N> folders exist (book-gen discovers
# them); this script keeps no list of its own. The step servers run on
# --port 0; ports, paths and timings are normalised so a second run writes
# the same bytes. Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/generate.sh [--check]" >&2; exit 2 ;;
esac

# Build every binary of the workspace (every step among them), and ask
# cargo where it put them rather than guessing (that honours
# CARGO_TARGET_DIR and any .cargo/config.toml).
harness=$(cargo build --workspace --bins --message-format=json-render-diagnostics |
  grep -o '"executable":"[^"]*/harness"' | sed 's/"executable":"\(.*\)"/\1/' | tail -n 1)
if [ -z "$harness" ]; then
  echo "generate.sh: cargo build did not report the harness binary" >&2
  exit 1
fi

# Starters with a learner's edits in them: put aside now, put back after
# book-gen. A starter is ours to rewrite when it is the committed one (git)
# or the last one this script wrote (its checksum is in .learn/, which git
# ignores).
written=.learn/generated-starters
mkdir -p .learn
touch "$written"
kept=()
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for starter in steps/step*/src/exercise.rs; do
  [ -f "$starter" ] || continue
  if git diff --quiet HEAD -- "$starter" 2>/dev/null ||
    grep -qxF "$(cksum <"$starter")" "$written"; then
    continue
  fi
  mkdir -p "$scratch/$(dirname "$starter")"
  cp "$starter" "$scratch/$starter"
  kept+=("$starter")
done

cargo run -q -p book --bin book-gen -- --bins "$(dirname "$harness")"

: >"$written"
for starter in steps/step*/src/exercise.rs; do
  cksum <"$starter" >>"$written"
done

# What a learner's first `cargo learn check N` says, for each chapter's
# "Your turn": run on the starters as generated (a starter with a
# learner's edits is put back only afterwards, and its transcript is kept).
# Thread ids and ports are normalised, so a second run writes the same bytes.
for step in $(cargo run -q -p book --bin book-gen -- --list-steps); do
  starter=steps/$step/src/exercise.rs
  case " ${kept[*]-} " in *" $starter "*) continue ;; esac
  n=${step#step}
  rc=0
  out=$(NO_COLOR=1 cargo learn check "$n" 2>"$scratch/learn-stderr") || rc=$?
  if [ "$rc" != 1 ]; then
    printf '%s\n' "$out" >&2
    cat "$scratch/learn-stderr" >&2
    echo "generate.sh: $starter should fail its step's tests (cargo learn check $n exits 1); it exited with $rc" >&2
    exit 1
  fi
  # What the harness saw of a server that panicked (refused, reset, exited
  # while being checked) depends on when it died: of the [harness] lines,
  # only the check's own (its name and what it proves) is kept. So does how
  # many checks a starter fails before it dies (a check may finish first,
  # on a fast machine, or time out first, on a loaded one): the counts are
  # shown as N and M.
  printf '$ cargo learn check %s\n%s\n' "$n" "$out" |
    sed -E -e "s/thread '([^']*)' \([0-9]+\) panicked/thread '\1' panicked/" \
      -e 's/127\.0\.0\.1:[0-9]+/127.0.0.1:50000/g' \
      -e 's/^Failing: [0-9]+ of [0-9]+ tests fail/Failing: N of M tests fail/' \
      -e 's/\(and [0-9]+ more failed checks of the same test\)/(and more failed checks of the same test)/' |
    awk '/^ *\[harness\] / && !/^ *\[harness\] [a-z]+\/[a-z0-9_]+: / {
           if (!elided) { sub(/\[harness\].*/, "[harness] ..."); print; elided = 1 }
           next
         }
         { elided = 0; print }' \
      >"book/generated/transcripts/$step-your-turn.txt"
done

for starter in ${kept[@]+"${kept[@]}"}; do
  cp "$scratch/$starter" "$starter"
  step=$(basename "$(dirname "$(dirname "$starter")")")
  echo "generate.sh: kept $starter: it has edits (a learner's?) or is the challenge starter; 'cargo learn reset ${step#step}' replaces it with the starter" >&2
done

if [ "$check" = 1 ]; then
  # Untracked new files count as changes too, so use status, not diff alone.
  generated=(book/generated README.md steps/*/src/exercise.rs)
  if [ -n "$(git status --porcelain -- "${generated[@]}")" ]; then
    echo "generate.sh: generated files were stale; the differences:" >&2
    git status --porcelain -- "${generated[@]}" >&2
    git --no-pager diff -- "${generated[@]}" >&2
    echo "run scripts/generate.sh and commit what it wrote" >&2
    exit 1
  fi
  echo "generated files are fresh: ${generated[*]}"
fi
