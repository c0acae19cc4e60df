#!/usr/bin/env bash
# `make demo`: runs a real distributed job on this machine through kubetrain.
#
# The job (examples/mpi/job.yml) is the mpi4py all-reduce as 2 instances x 2 processes on the local
# compute: kubetrain places the gang, starts one kubetrain-worker per instance, instance 0 runs
# OpenMPI's mpirun for all 4 ranks, and the logs stream back through the workspace. The native
# training example with metrics and checkpoints replaces it when those land.
set -euo pipefail
build="${1:-build}"
cd "$(dirname "$0")/.."
mkdir -p "$build"
export KUBETRAIN_WORKSPACE="${KUBETRAIN_WORKSPACE:-$(realpath "$build")/demo-workspace}"
kt="$build/bin/kubetrain"
echo "demo: kubetrain $("$kt" --version | awk '{print $2}'), workspace $KUBETRAIN_WORKSPACE"
"$kt" job validate -f examples/mpi/job.yml
"$kt" job create -f examples/mpi/job.yml --stream
echo
"$kt" job list
