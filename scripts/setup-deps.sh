#!/usr/bin/env bash
# Installs what kubetrain needs to build, test and run, and only what is missing.
#
# Idempotent: a second run installs nothing and says so. Debian packages come from apt-get; the npm
# packages that some tests use as independent peers (azurite, kubernetes-models) go into
# ./.deps/node_modules inside the checkout, never globally. The Python peers (azure-ai-ml,
# azure-storage-blob, mlflow) and CUDA + NCCL from NVIDIA's wheels go into the project virtual
# environment ./.deps/venv (pinned in requirements-test.txt; Debian's python3-torch and
# python3-mpi4py stay visible through --system-site-packages), and the CUDA wheels are laid out as
# one toolkit root under ~/.cache/kubetrain/cuda-<version>/ that CMake finds.
#
# Usage: scripts/setup-deps.sh [--no-npm] [--no-venv]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_npm=1
want_venv=1
for arg in "$@"; do
  case "$arg" in
    --no-npm) want_npm=0 ;;
    --no-venv) want_venv=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
  python3 python3-torch python3-mpi4py python3-numpy python3-venv
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

if ((want_venv)); then
  # The project venv. Debian's interpreter (not one first on PATH, e.g. pyenv's): its
  # --system-site-packages are where python3-torch and python3-mpi4py live.
  venv="$here/.deps/venv"
  requirements="$here/requirements-test.txt"
  stamp="$venv/.kubetrain-requirements.sha256"
  want_stamp="$(cat "$requirements" /usr/bin/python3 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]]; then
    echo "setup-deps: .deps/venv already matches requirements-test.txt"
  else
    if [[ ! -x "$venv/bin/python" ]]; then
      echo "setup-deps: creating .deps/venv (--system-site-packages)"
      /usr/bin/python3 -m venv --system-site-packages "$venv"
    fi
    # Pins dropped from requirements-test.txt since the last run leave the venv too.
    pinned() { sed -e 's/#.*//' -e 's/[=<>!~ ].*//' "$1" | grep -v '^$' | tr 'A-Z_' 'a-z-' | sort -u; }
    if [[ -f "$venv/.kubetrain-requirements.txt" ]]; then
      dropped=($(comm -23 <(pinned "$venv/.kubetrain-requirements.txt") <(pinned "$requirements")))
      if ((${#dropped[@]})); then
        echo "setup-deps: removing from .deps/venv (no longer in requirements-test.txt): ${dropped[*]}"
        "$venv/bin/python" -m pip uninstall --quiet -y "${dropped[@]}"
      fi
    fi
    before="$(mktemp)"; after="$(mktemp)"
    "$venv/bin/python" -m pip freeze --local 2>/dev/null | sort >"$before"
    echo "setup-deps: installing requirements-test.txt into .deps/venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    "$venv/bin/python" -m pip freeze --local 2>/dev/null | sort >"$after"
    added="$(comm -13 "$before" "$after" | tr '\n' ' ')"
    rm -f "$before" "$after"
    echo "setup-deps: installed into .deps/venv: ${added:-nothing new}"
    cp "$requirements" "$venv/.kubetrain-requirements.txt"
    rm -rf "$venv/cuda"  # laid out anew below, from what is installed now
    echo "$want_stamp" >"$stamp"
  fi

  # NVIDIA's CUDA 13 wheels merge under site-packages/nvidia/cu13 (bin/nvcc, include, lib, nvvm) and
  # NCCL under site-packages/nvidia/nccl, but ship versioned libraries only (libcudart.so.13, no
  # libcudart.so). .deps/venv/cuda is a toolkit root for CMake (CUDAToolkit_ROOT) made of symlinks
  # into those folders plus the unversioned library names; site-packages itself is left untouched.
  # It lives in the venv, not in ~/.cache, so two checkouts never point at each other's venv.
  cuda_root="$venv/cuda"
  if [[ ! -d "$cuda_root" ]]; then
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cu="$site/nvidia/cu13"
    nccl="$site/nvidia/nccl"
    if [[ -x "$cu/bin/nvcc" && -f "$nccl/include/nccl.h" ]]; then
      part="$cuda_root.partial"  # renamed into place when complete
      rm -rf "$part"
      mkdir -p "$part/bin" "$part/include" "$part/lib"
      ln -s "$cu/nvvm" "$part/nvvm"
      ln -s lib "$part/lib64"
      ln -s "$cu"/bin/* "$part/bin/"
      ln -s "$cu"/include/* "$nccl"/include/* "$part/include/"
      ln -s "$cu"/lib/* "$nccl"/lib/* "$part/lib/"
      for versioned in "$part"/lib/lib*.so.*; do
        plain="${versioned%.so.*}.so"
        [[ -e "$plain" ]] || ln -s "$(basename "$versioned")" "$plain"
      done
      mv "$part" "$cuda_root"
      version="$("$cuda_root/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')"
      echo "setup-deps: CUDA $version toolkit root laid out at .deps/venv/cuda (nvcc, cudart, cuBLAS, NCCL)"
    else
      echo "setup-deps: no CUDA 13 wheels in .deps/venv (nvidia/cu13/bin/nvcc, nvidia/nccl): CUDA stays off"
    fi
  fi
fi
