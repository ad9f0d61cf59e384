#!/usr/bin/env bash
# new-step.sh: make step N+1 from the last step, N (the scaffolder,
# book/tool/scaffold.rs): the folder (step N's, with the new name set where
# a step may write it; not its exercise solutions or starter), the
# chapter's skeleton with every section and include, and its line in
# book/src/SUMMARY.md. Then it lists the prose to write by hand.
#
#   scripts/new-step.sh "flow control"
#
# Run scripts/generate.sh afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ $# -ne 1 ]; then
  echo "usage: scripts/new-step.sh TITLE   (e.g. scripts/new-step.sh \"flow control\")" >&2
  exit 2
fi
exec cargo run -q -p book --bin book-gen -- --new-step "$1"
