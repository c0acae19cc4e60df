"""PyTorch DDP training that logs to MLflow's REST API (urllib only, no mlflow package) and saves
checkpoints to KUBETRAIN_CHECKPOINT_DIR, resuming from the newest one when the job is retried.

Run by kubetrain as `distribution: pytorch` (job.yml beside it): gloo on CPU, nccl when CUDA is
available (one GPU per rank, LOCAL_RANK). Every rank trains a small linear regression on its own
data shard; rank 0 logs the loss of every step to MLFLOW_TRACKING_URI (the kubetrain-worker's
MLflow-compatible endpoint) into the job's run (MLFLOW_RUN_ID), with the same REST calls
mlflow.start_run / log_param / log_metric / log_metrics / end_run make.

Checkpoints: every CHECKPOINT_EVERY steps rank 0 writes step-<N>.pt (model + optimizer + step) to
KUBETRAIN_CHECKPOINT_DIR through a temporary name and an atomic rename, keeping the newest three;
on start every rank loads the newest one and continues after its step.

    STEPS=50 CHECKPOINT_EVERY=10 python3 train.py   # under kubetrain; see job.yml
"""
import glob
import json
import os
import re
import time
import urllib.parse
import urllib.request

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

TRACKING_URI = os.environ["MLFLOW_TRACKING_URI"]
RUN_ID = os.environ["MLFLOW_RUN_ID"]
CKPT_DIR = os.environ.get("KUBETRAIN_CHECKPOINT_DIR", "")


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


def checkpoints():
    """(step, path) of every complete checkpoint, oldest first."""
    found = []
    for path in glob.glob(os.path.join(CKPT_DIR, "step-*.pt")):
        m = re.fullmatch(r"step-(\d+)\.pt", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def save_checkpoint(step, model, opt):
    path = os.path.join(CKPT_DIR, f"step-{step}.pt")
    tmp = path + ".tmp"
    torch.save({"step": step, "model": model.module.state_dict(),
                "optimizer": opt.state_dict()}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint intact
    for _, old in checkpoints()[:-3]:
        os.remove(old)


use_cuda = torch.cuda.is_available() and os.environ.get("DEVICE", "auto") != "cpu"
dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
local_rank = int(os.environ.get("LOCAL_RANK", "0"))
device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
if use_cuda:
    torch.cuda.set_device(device)
steps = int(os.environ.get("STEPS", "50"))
lr = float(os.environ.get("LR", "0.1"))
every = int(os.environ.get("CHECKPOINT_EVERY", "10"))
step_sleep = float(os.environ.get("STEP_SLEEP", "0"))  # seconds; to watch it, or kill it mid-run

torch.manual_seed(0)
model = DDP(torch.nn.Linear(4, 1).to(device), device_ids=[local_rank] if use_cuda else None)
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
start = 0
if CKPT_DIR and checkpoints():
    step, path = checkpoints()[-1]
    state = torch.load(path, map_location=device)
    model.module.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    start = state["step"]
    print(f"rank {rank}: resumed from {path} (step {start})", flush=True)

if rank == 0:
    run = mlflow("GET", "runs/get", {"run_id": RUN_ID})["run"]  # start_run() with MLFLOW_RUN_ID
    mlflow("POST", "runs/update", {"run_id": RUN_ID, "status": "RUNNING"})
    mlflow("POST", "runs/log-parameter", {"run_id": RUN_ID, "key": "lr", "value": str(lr)})
    mlflow("POST", "runs/log-parameter", {"run_id": RUN_ID, "key": "world_size",
                                          "value": str(world)})
    mlflow("POST", "runs/log-parameter", {"run_id": RUN_ID, "key": "backend",
                                          "value": dist.get_backend()})

torch.manual_seed(100 + rank)
true_w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
x = torch.randn(64, 4)
y = (x @ true_w + 0.01 * torch.randn(64, 1)).to(device)
x = x.to(device)
mean_loss = float("nan")
for step in range(start, steps):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    t = loss.detach().clone()
    dist.all_reduce(t)
    mean_loss = t.item() / world
    if step_sleep > 0:
        time.sleep(step_sleep)
    if rank == 0:
        mlflow("POST", "runs/log-metric", {"run_id": RUN_ID, "key": "loss", "value": mean_loss,
                                           "timestamp": now_ms(), "step": step})
        if CKPT_DIR and every > 0 and ((step + 1) % every == 0 or step + 1 == steps):
            save_checkpoint(step + 1, model, opt)
    if CKPT_DIR and every > 0 and ((step + 1) % every == 0 or step + 1 == steps):
        dist.barrier()  # the checkpoint exists before any rank goes on

if rank == 0:
    mlflow("POST", "runs/log-batch", {"run_id": RUN_ID, "metrics": [
        {"key": "final_loss", "value": mean_loss, "timestamp": now_ms(), "step": steps - 1}],
        "params": [], "tags": [{"key": "framework", "value": "pytorch"}]})
    history = mlflow("GET", "metrics/get-history", {"run_id": RUN_ID, "metric_key": "loss"})
    mlflow("POST", "runs/update", {"run_id": RUN_ID, "status": "FINISHED",
                                   "end_time": now_ms()})
    print(f"rank 0: logged {steps - start} loss points to {TRACKING_URI} run {RUN_ID}; "
          f"history has {len(history['metrics'])} points; final loss {mean_loss:.4f}; "
          f"backend {dist.get_backend()}; checkpoints {[s for s, _ in checkpoints()]} in "
          f"{CKPT_DIR or '(none)'}", flush=True)
dist.destroy_process_group()
