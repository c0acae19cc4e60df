#!/usr/bin/env python3
"""The PyTorch gloo peer of bench_allreduce.

Times torch.distributed.all_reduce (gloo, float32, sum) on N local processes exactly as
kubetrain-collbench times the kubetrain backends, and prints the same CSV rows from rank 0:
  size,count,type,op,time_us,algbw_gbs,busbw_gbs,check
Usage: /usr/bin/python3 gloo_allreduce.py [--nranks 2] 65536:500,1048576:100,...
"""
import argparse
import os
import socket
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(rank, n, port, cases, queue):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=n)
    rows = []
    for size, iters in cases:
        count = size // 4
        t = torch.full((count,), float(rank + 1), dtype=torch.float32)
        dist.all_reduce(t)
        want = float(n * (n + 1) // 2)
        ok = bool(torch.all(t == want).item()) if count else True
        for _ in range(5):
            dist.all_reduce(t)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(t)
        us = (time.perf_counter() - t0) * 1e6 / iters
        algbw = size / us / 1e3
        rows.append(f"{size},{count},float32,sum,{us:.3f},{algbw:.4f},"
                    f"{algbw * 2 * (n - 1) / n:.4f},{'OK' if ok else 'FAIL'}")
    dist.destroy_process_group()
    if rank == 0:
        queue.put(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nranks", type=int, default=2)
    parser.add_argument("cases", nargs="?", default="1048576:50")
    args = parser.parse_args()
    cases = []
    for item in args.cases.split(","):
        size, _, iters = item.partition(":")
        cases.append((int(size), int(iters or 20)))
    import torch.multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=run, args=(r, args.nranks, port, cases, queue))
             for r in range(args.nranks)]
    for p in procs:
        p.start()
    rows = queue.get(timeout=600)
    for p in procs:
        p.join()
    print("size,count,type,op,time_us,algbw_gbs,busbw_gbs,check")
    for row in rows:
        print(row)
    return 0 if all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
