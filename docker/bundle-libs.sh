#!/usr/bin/env bash
# Copies the shared libraries the binaries in BIN_DIR link (Abseil, protobuf, gRPC, yaml-cpp,
# spdlog, fmt, SQLite, curl, ...) into LIB_DIR, so the runtime image needs none of the -dev
# packages. Left out: what the runtime image has itself — glibc, libstdc++/libgcc, the CUDA and
# NCCL libraries (CUDA runtime image), and OpenMPI with its helpers (openmpi-bin), whose plugins
# must load the system copy.
#
# Usage: docker/bundle-libs.sh BIN_DIR LIB_DIR
set -euo pipefail
bin_dir="$1"
lib_dir="$2"
mkdir -p "$lib_dir"
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libutil\.|libresolv\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia|libmpi|libopen-|libpmix|libprrte|libhwloc|libevent|libucp|libucs|libuct|libfabric|libpsm|libibverbs|librdmacm|libnl-|libz\.)'
for bin in "$bin_dir"/*; do
  ldd "$bin" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    [[ "$name" =~ $skip ]] && continue
    [[ -e "$lib_dir/$name" ]] && continue
    cp -L "$path" "$lib_dir/$name"
  done
done
count=$(find "$lib_dir" -type f | wc -l)
echo "bundle-libs: $count shared libraries in $lib_dir"
