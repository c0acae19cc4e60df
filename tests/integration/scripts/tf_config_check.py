"""Checks TF_CONFIG as TensorFlow's MultiWorkerMirroredStrategy reads it, without TensorFlow.

Expects distribution: tensorflow with EXPECT_WORKERS workers and EXPECT_PS parameter servers
(environment variables set in the job). Every task must see the same cluster, a task type and an
index that fit it, and a unique (type, index) — checked by writing a marker file per task into
the output folder given as argv[1].
"""
import json
import os
import sys

cfg = json.loads(os.environ["TF_CONFIG"])
cluster, task = cfg["cluster"], cfg["task"]
workers, ps = cluster.get("worker", []), cluster.get("ps", [])
ok = (len(workers) == int(os.environ["EXPECT_WORKERS"]) and
      len(ps) == int(os.environ["EXPECT_PS"]) and
      task["type"] in ("worker", "ps") and
      0 <= task["index"] < len(cluster[task["type"]]) and
      all(":" in a for a in workers + ps))
marker = os.path.join(sys.argv[1], f"{task['type']}-{task['index']}")
with open(marker, "x") as f:  # "x": a duplicate (type, index) fails
    f.write(json.dumps(cfg))
print(f"TF_CONFIG task={task['type']}:{task['index']} workers={len(workers)} ps={len(ps)} "
      f"{'TF OK' if ok else 'TF BAD'}", flush=True)
sys.exit(0 if ok else 1)
