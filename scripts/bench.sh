#!/usr/bin/env bash
# Runs every benchmark program in tests/bench that the build produced. Each prints its own peer
# figures and ratios; nothing here gates CI.
set -euo pipefail
build="${1:-build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
shopt -s nullglob
ran=0
for b in "$build"/tests/bench/*/bench_*; do
  [[ -x "$b" && -f "$b" ]] || continue
  echo "== $(basename "$b")"
  "$b"
  ran=$((ran + 1))
done
echo "bench: ran $ran benchmark program(s)"
