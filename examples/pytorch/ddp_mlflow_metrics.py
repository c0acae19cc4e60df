"""PyTorch DDP training that logs to MLflow's REST API with urllib only (no mlflow package).

Run by kubetrain as `distribution: pytorch` (gloo on CPU). Every rank trains a small linear
regression on its own data shard; rank 0 logs the loss of every step to MLFLOW_TRACKING_URI (the
kubetrain-worker's MLflow-compatible endpoint) into the job's run (MLFLOW_RUN_ID), with the same
REST calls mlflow.start_run / log_param / log_metric / log_metrics / end_run make.

    STEPS=50 python3 ddp_mlflow_metrics.py   # under kubetrain; see job.yml beside it
"""
import json
import os
import time
import urllib.parse
import urllib.request

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

TRACKING_URI = os.environ["MLFLOW_TRACKING_URI"]
RUN_ID = os.environ["MLFLOW_RUN_ID"]


def mlflow(method, endpoint, body=None):
    url = f"{TRACKING_URI}/api/2.0/mlflow/{endpoint}"
    data = None
    if method == "GET" and body:
        url += "?" + urllib.parse.urlencode(body)
    elif body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def now_ms():
    return int(time.time() * 1000)


dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
steps = int(os.environ.get("STEPS", "50"))
lr = float(os.environ.get("LR", "0.1"))

if rank == 0:
    run = mlflow("GET", "runs/get", {"run_id": RUN_ID})["run"]  # start_run() with MLFLOW_RUN_ID
    mlflow("POST", "runs/update", {"run_id": RUN_ID, "status": "RUNNING"})
    mlflow("POST", "runs/log-parameter", {"run_id": RUN_ID, "key": "lr", "value": str(lr)})
    mlflow("POST", "runs/log-parameter", {"run_id": RUN_ID, "key": "world_size",
                                          "value": str(world)})

torch.manual_seed(0)
model = DDP(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=lr)
torch.manual_seed(100 + rank)
true_w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
x = torch.randn(64, 4)
y = x @ true_w + 0.01 * torch.randn(64, 1)
for step in range(steps):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    t = loss.detach().clone()
    dist.all_reduce(t)
    mean_loss = t.item() / world
    if rank == 0:
        mlflow("POST", "runs/log-metric", {"run_id": RUN_ID, "key": "loss", "value": mean_loss,
                                           "timestamp": now_ms(), "step": step})

if rank == 0:
    mlflow("POST", "runs/log-batch", {"run_id": RUN_ID, "metrics": [
        {"key": "final_loss", "value": mean_loss, "timestamp": now_ms(), "step": steps - 1}],
        "params": [], "tags": [{"key": "framework", "value": "pytorch"}]})
    history = mlflow("GET", "metrics/get-history", {"run_id": RUN_ID, "metric_key": "loss"})
    mlflow("POST", "runs/update", {"run_id": RUN_ID, "status": "FINISHED",
                                   "end_time": now_ms()})
    print(f"rank 0: logged {steps} loss points to {TRACKING_URI} run {RUN_ID}; "
          f"history has {len(history['metrics'])} points; final loss {mean_loss:.4f}", flush=True)
dist.destroy_process_group()
