#!/usr/bin/env bash
# `make tidy`: clang-tidy (the repository's .clang-tidy) over every tracked C++ source (*.cc, not
# tests/fuzz/) that the build compiles, with the flags from the build's compile_commands.json;
# fails on any finding. Usage: [JOBS=n] scripts/tidy.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build="${1:-build}"
jobs="${JOBS:-2}"
command -v clang-tidy >/dev/null || { echo "tidy: clang-tidy is missing (run scripts/setup-deps.sh)" >&2; exit 2; }
db="$build/compile_commands.json"
[[ -f "$db" ]] || { echo "tidy: no $db (run make build first)" >&2; exit 2; }

# Sources the build compiles, relative to the repository root.
mapfile -t compiled < <(python3 - "$db" "$root" <<'EOF'
import json, os, sys
db, root = sys.argv[1], sys.argv[2]
for e in json.load(open(db)):
    print(os.path.relpath(os.path.join(e["directory"], e["file"]), root))
EOF
)
declare -A in_db=()
for f in "${compiled[@]}"; do in_db["$f"]=1; done

# Our sources only (not generated protobuf code, not third-party code). A tracked source that this
# build configuration does not compile (e.g. no_cuda_engine.cc in a CUDA build) has no compile
# command: clang-tidy would guess its flags, so it is skipped with a note.
files=()
while IFS= read -r f; do
  if [[ -n "${in_db[$f]:-}" ]]; then
    files+=("$f")
  else
    echo "tidy: skipping $f (not compiled in $build: no entry in compile_commands.json)"
  fi
done < <(git ls-files '*.cc' | grep -v '^tests/fuzz/')
total=${#files[@]}
((total > 0)) || { echo "tidy: nothing to check" >&2; exit 2; }

# Per-file compiler workarounds (environment, not code; appended after the build's flags):
#   collective/src/types.cc  GCC's __builtin_cpu_supports knows the "f16c" feature string, clang
#     14 does not (a hard error that stops the analysis); the macro stands in for the builtin so the
#     rest of the file is still checked.
extra_args() {
  case "$1" in
    collective/src/types.cc) echo "--extra-arg=-D__builtin_cpu_supports(feature)=true" ;;
  esac
}
export -f extra_args

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
export build logs
# One clang-tidy per file, `jobs` at a time; each writes its own log and reports "<rc> <index>" on
# stdout when done, so the loop below can count progress and print a failing file's log whole.
worker() {
  local i="$1" f="$2" rc=0
  # shellcheck disable=SC2046  # extra_args is empty or one word without spaces to split
  clang-tidy -p "$build" --quiet --warnings-as-errors='*' $(extra_args "$f") "$f" \
    >"$logs/$i.log" 2>&1 || rc=$?
  echo "$rc $i"
}
export -f worker

start=$SECONDS
done_count=0
failed=()
: >"$build/tidy.log"
while read -r rc i; do
  done_count=$((done_count + 1))
  f="${files[$i]}"
  if [[ "$rc" != 0 ]] || grep -qE '(warning|error):' "$logs/$i.log"; then
    failed+=("$f")
    echo "tidy: $done_count/$total files ($((SECONDS - start))s): $f: FAILED (exit $rc)"
    grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$logs/$i.log" | tee -a "$build/tidy.log"
  else
    echo "tidy: $done_count/$total files ($((SECONDS - start))s): $f"
  fi
done < <(for i in "${!files[@]}"; do printf '%s\0%s\0' "$i" "${files[$i]}"; done |
  xargs -0 -n 2 -P "$jobs" bash -c 'worker "$@"' _)

if ((${#failed[@]} > 0)); then
  echo "tidy: findings in ${#failed[@]} of $total files (log: $build/tidy.log):" >&2
  printf '  %s\n' "${failed[@]}" >&2
  if grep -q "file not found \[clang-diagnostic-error\]" "$build/tidy.log"; then
    echo "tidy: a header is missing: is $build up to date (make build; generated protobuf headers)?" >&2
  fi
  exit 1
fi
echo "tidy: $total files clean in $((SECONDS - start))s"
