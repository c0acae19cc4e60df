#!/usr/bin/env bash
# `make tidy`: clang-tidy (the repository's .clang-tidy) over every C++ source the build compiles,
# from the build's compile_commands.json; fails on any finding. Usage: scripts/tidy.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is missing (run scripts/setup-deps.sh)" >&2; exit 2; }
[[ -f "$build/compile_commands.json" ]] || { echo "tidy: no $build/compile_commands.json (run make build first)" >&2; exit 2; }
# Our sources only: not generated protobuf code, not third-party headers.
mapfile -t files < <(git ls-files '*.cc' | grep -v '^tests/fuzz/')
jobs="${JOBS:-2}"
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -n 8 clang-tidy -p "$build" --quiet --warnings-as-errors='*' 2>/dev/null |
  tee "$build/tidy.log" | grep -E '(warning|error):' && { echo "tidy: findings above (full log: $build/tidy.log)" >&2; exit 1; }
echo "tidy: ${#files[@]} files clean"
