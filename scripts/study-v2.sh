#!/usr/bin/env bash
# The claim-check study, second edition, measured and written in one command:
#   scripts/study-v2.sh [RUNS_DIR] [REPORT_DIR]        (defaults: runs/study-v2, reports/claim-check-v2)
# It runs the main grid (claim-check-v2), its two companion sweeps (many agents; think time), the real registry
# servers under their runtime's GC modes (gcbench advise on each real-* scenario), then the study. Sweeps resume
# where they stopped; a real server whose advice is already written is not measured again.
# Reproducibility: run it a second time into another RUNS_DIR, then
#   gcbench study RUNS_DIR/main --rerun RUNS_DIR2/main ...
# (REPRODUCE_FROM=RUNS_DIR2 scripts/study-v2.sh RUNS_DIR adds that section to the study it writes).
set -euo pipefail
runs=${1:-runs/study-v2}
reports=${2:-reports/claim-check-v2}
gcbench sweep claim-check-v2 -o "$runs/main"
gcbench sweep claim-check-v2-concurrency -o "$runs/concurrency"
gcbench sweep claim-check-v2-think -o "$runs/think"
mkdir -p "$runs/real"
for s in real-memory real-filesystem real-sequential-thinking real-git real-time real-fetch; do
  chains=20
  [ "$s" = real-fetch ] && chains=3  # about 1.5 s per fetch: each page is parsed by a node process it starts
  [ -f "$runs/real/$s.md" ] || gcbench advise -s "$s" --chains "$chains" --reps 2 --runs-dir "$runs/real" \
    -o "$runs/real/$s.md"
done
rerun=()
[ -n "${REPRODUCE_FROM:-}" ] && rerun=(--rerun "$REPRODUCE_FROM/main")
gcbench study "$runs/main" --with "$runs/concurrency" --with "$runs/think" --real "$runs/real" "${rerun[@]}" \
  -o "$reports/study.html" -o "$reports/study.md"
