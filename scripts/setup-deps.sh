#!/usr/bin/env bash
# Installs what kubetrain needs to build, test and run, and only what is missing.
#
# Idempotent: a second run installs nothing and says so. Debian packages come from apt-get; the npm
# packages that some tests use as independent peers (azurite, kubernetes-models) go into
# ./.deps/node_modules inside the checkout, never globally.
#
# Usage: scripts/setup-deps.sh [--no-npm]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_npm=1
for arg in "$@"; do
  case "$arg" in
    --no-npm) want_npm=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup-deps: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# Debian 12 package names. Keep this list in step with docker/Dockerfile (a test checks it).
apt_packages=(
  cmake ninja-build g++ pkg-config make git ca-certificates
  openmpi-bin libopenmpi-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libabsl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev curl
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-torch python3-mpi4py python3-numpy
  clang libclang-rt-14-dev clang-format clang-tidy
  procps
)
# node and npm may come from elsewhere (NodeSource ships npm inside nodejs): install Debian's only
# when the commands are absent.
if ! command -v npm >/dev/null 2>&1; then apt_packages+=(nodejs npm); fi

missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if ((${#missing[@]})); then
  echo "setup-deps: installing ${#missing[@]} Debian package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup-deps: installed ${missing[*]}"
else
  echo "setup-deps: all ${#apt_packages[@]} Debian packages already present"
fi

if ((want_npm)); then
  npm_dir="$here/.deps"
  npm_packages=(azurite@3 kubernetes-models@4)
  npm_missing=()
  for spec in "${npm_packages[@]}"; do
    name="${spec%@*}"
    [[ -f "$npm_dir/node_modules/$name/package.json" ]] || npm_missing+=("$spec")
  done
  if ((${#npm_missing[@]})); then
    echo "setup-deps: installing npm package(s) into .deps/: ${npm_missing[*]}"
    mkdir -p "$npm_dir"
    [[ -f "$npm_dir/package.json" ]] || echo '{"name":"kubetrain-test-peers","private":true}' >"$npm_dir/package.json"
    (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error "${npm_missing[@]}" >/dev/null)
    echo "setup-deps: installed ${npm_missing[*]}"
  else
    echo "setup-deps: npm test peers already present in .deps/"
  fi
fi
