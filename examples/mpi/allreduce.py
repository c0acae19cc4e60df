"""mpi4py all-reduce check: every rank contributes rank+1; all must agree on the sum.

Run by kubetrain as `distribution: mpi` (examples/mpi/job.yml), or directly under mpirun.
Prints one line per rank and exits non-zero on disagreement.
"""
import os
import socket
import sys

from mpi4py import MPI
import numpy as np

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
local = np.full(1 << 16, rank + 1, dtype=np.float64)
total = np.empty_like(local)
comm.Allreduce(local, total, op=MPI.SUM)
expected = size * (size + 1) / 2
ok = bool(np.all(total == expected))
print(f"rank {rank}/{size} on {socket.gethostname()} "
      f"(local rank {os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '?')}): "
      f"allreduce sum={total[0]:.0f} expected={expected:.0f} {'OK' if ok else 'MISMATCH'}",
      flush=True)
sys.exit(0 if ok else 1)
