#!/usr/bin/env bash
# `make format-check`: clang-format (the repository's .clang-format) over every tracked C++ file;
# fails, listing the files, when any would change. `make format` applies the changes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format-check: clang-format is missing (run scripts/setup-deps.sh)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cu')
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
  echo "format-check: ${#bad[@]} of ${#files[@]} C++ files are not clang-formatted (run \`make format\`):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format-check: all ${#files[@]} C++ files are clean ($(clang-format --version | grep -o 'version [0-9.]*'))"
