"""A rank that prints numbered lines and logs a metric per line to the agent's MLflow endpoint.

Usage: lines_and_metrics.py N [DELAY_S] [EXIT_CODE]
Prints "line <i>" for i in 0..N-1, logs "loss" = 1/(i+1) at step i
with a fixed timestamp (so that two runs store the same points) in batches of 10, a param and a
tag, sleeps DELAY_S after each line, then exits with EXIT_CODE (default 0).
"""
import json
import os
import sys
import time
import urllib.request

TRACKING_URI = os.environ["MLFLOW_TRACKING_URI"]
RUN_ID = os.environ["MLFLOW_RUN_ID"]


def post(endpoint, body):
    req = urllib.request.Request(f"{TRACKING_URI}/api/2.0/mlflow/{endpoint}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()


n = int(sys.argv[1])
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
code = int(sys.argv[3]) if len(sys.argv) > 3 else 0
post("runs/log-parameter", {"run_id": RUN_ID, "key": "lines", "value": str(n)})
post("runs/set-tag", {"run_id": RUN_ID, "key": "writer", "value": "lines_and_metrics"})
pending = []
for i in range(n):
    print(f"line {i}", flush=True)
    pending.append({"key": "loss", "value": 1.0 / (i + 1), "step": i,
                    "timestamp": 1700000000000 + i})
    if len(pending) == 10 or i == n - 1:
        post("runs/log-batch", {"run_id": RUN_ID, "metrics": pending})
        pending = []
    if delay:
        time.sleep(delay)
print(f"done: {n} lines", flush=True)
sys.exit(code)
