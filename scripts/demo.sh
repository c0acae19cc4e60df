#!/usr/bin/env bash
# `make demo`: runs a real distributed example on this machine.
#
# Until the local backend lands (issue: gang placement and the local backend), kubetrain cannot yet
# launch a job itself, so the demo runs the closest real thing: the example mpi4py all-reduce as 4
# ranks under OpenMPI's mpirun, exactly what `distribution: mpi` will start. The README says so.
set -euo pipefail
build="${1:-build}"
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "demo: kubetrain $("$build/bin/kubetrain" --version | awk '{print $2}') built in $build/"
echo "demo: running examples/mpi/allreduce.py as 4 MPI ranks on this machine"
mpirun -np 4 --oversubscribe --bind-to none /usr/bin/python3 examples/mpi/allreduce.py
echo "demo: all 4 ranks agreed"
