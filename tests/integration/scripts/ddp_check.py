"""PyTorch DDP check run by kubetrain as `distribution: pytorch` (gloo on CPU).

init_process_group("env://") reads MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE from kubetrain's rank
environment. Every rank all-reduces rank+1, trains one DDP step on its own data shard, and checks
that the sum and the resulting parameters agree across ranks. Exits non-zero on disagreement.
"""
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])

t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
expected = world * (world + 1) / 2

torch.manual_seed(0)
model = DDP(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(100 + rank)  # each rank its own shard
x, y = torch.randn(8, 4), torch.randn(8, 1)
loss = torch.nn.functional.mse_loss(model(x), y)
loss.backward()
opt.step()
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
same = all(torch.equal(g, gathered[0]) for g in gathered)

ok = t.item() == expected and same
print(f"rank {rank}/{world} local {os.environ['LOCAL_RANK']} node {os.environ['NODE_RANK']}: "
      f"allreduce={t.item():.0f} expected={expected:.0f} params_agree={same} "
      f"{'DDP OK' if ok else 'DDP MISMATCH'}", flush=True)
dist.destroy_process_group()
sys.exit(0 if ok else 1)
