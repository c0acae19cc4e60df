#!/usr/bin/env python3
"""A test double of the Kubernetes API server: the subset kubetrain uses, with its real semantics.

No real API server can run on the test machines, so the REST flow of the Kubernetes backend runs
against this. It follows what kube-apiserver does for the calls kubetrain makes:

  * one cluster-wide resourceVersion counter; every write bumps it and stamps the object's
    metadata.resourceVersion (a string), uid and creationTimestamp are set on create;
  * GET collection (list, with `labelSelector` equality terms `k=v,k2=v2`) answers a List whose
    metadata.resourceVersion is the current one; `?watch=1&resourceVersion=N` streams (chunked,
    one JSON object per line) every ADDED / MODIFIED / DELETED event after N that matches, then
    waits for new ones until `timeoutSeconds` or until the test kills the connection;
  * a watch from a resourceVersion older than the compaction point gets HTTP 200 and one
    `{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}` event (what the
    real server sends after etcd compaction), then the stream ends;
  * POST of a name that exists → 409 AlreadyExists (a Status object); POST into a namespace that
    does not exist → 404; DELETE of a missing object → 404; GET of a missing object → 404;
  * DELETE removes the object and then, as the garbage collector does with background
    propagation, every object whose ownerReferences name its uid (recursively);
  * pod logs: GET .../pods/NAME/log (`follow=true` streams until the container ends); a pod whose
    container has not started answers 400 "is waiting to start", as the real one does;
  * authentication: with --token, every request without `Authorization: Bearer <token>` is 401.

Control endpoints for tests (not part of Kubernetes), under /_control/:
  POST /_control/objects            body: any object (Node, Namespace, Pod, PVC, InstanceType...)
                                    stored as if created (the CRD is "installed" once an
                                    InstanceType is stored)
  POST /_control/pods/NS/NAME/status  body: fields merged into the pod's status (phase,
                                    containerStatuses, reason, message) → MODIFIED event
  POST /_control/pods/NS/NAME/log   body: {"text": "..."} appended to the container log
  POST /_control/kill-watches       closes every open watch / log stream abruptly (no final chunk)
  POST /_control/compact            every resourceVersion up to now becomes too old (410)
  POST /_control/faults             body: {"method","resource","codes":[...],"after_create":bool}:
                                    the next matching requests answer these HTTP codes;
                                    after_create stores the object first (a lost answer)
  POST /_control/kubelet            body: {"enabled":true,"bin_dir":DIR,"work_dir":DIR}: act as
                                    the kubelet of every node (see below)
  GET  /_control/requests           the requests received so far (method, path), for assertions

Kubelet double: when enabled, a pod bound to an existing node (spec.nodeName) is started as a
local process: Pending → Running (containerStatuses running) → Succeeded / Failed with the
container's exit code (reason Completed / Error; exit 137 → OOMKilled is NOT inferred). The
container's `command`+`args` run with the pod's env (value, secretKeyRef, configMapKeyRef,
fieldRef metadata.name/namespace and spec.nodeName), `$(VAR)` expanded as Kubernetes does; PATH gets
bin_dir first. Volume mounts are emulated: each mountPath maps to a per-pod directory under
work_dir (a persistentVolumeClaim to one directory per claim, shared by all pods) where configMap /
secret volumes are written (data, binaryData, items), and any argument or env value that starts
with a mountPath, and any quoted "mountPath/..." inside a mounted file, is rewritten to that
directory (there are no mount namespaces here). Deleting a running pod sends SIGTERM, then SIGKILL
after its grace period, before the DELETED event.

Limits (what it does not do): a watch from resourceVersion 0 (or none) starts at the current
version without replaying the current objects as ADDED (kubetrain always lists first), no scheduler (pods without nodeName stay Pending), no admission or
schema validation beyond metadata.name, no PATCH/PUT, label selectors are equality only, a
MODIFIED event is sent even when the object no longer matches a watch's selector, no
bookmarks, no field selectors, no RBAC (one token for everything; with --client-ca a client
certificate signed by that CA is required as well), TLS only with --tls-cert, images are
not pulled (the image field is ignored by the kubelet double), resource limits are not enforced.
"""

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Condition()
STATE = {
    "rv": 1,
    "compacted": 0,
    "objects": {},  # (resource, namespace, name) -> object
    "events": [],  # (rv, type, resource, namespace, object)
    "logs": {},  # (namespace, pod) -> list of lines
    "faults": [],
    "kubelet": None,
    "procs": {},  # (namespace, pod) -> Popen
    "watch_generation": 0,  # bumped by kill-watches
    "requests": [],
    "crd": False,
}
TOKEN = None

KINDS = {
    "namespaces": ("Namespace", False),
    "nodes": ("Node", False),
    "pods": ("Pod", True),
    "services": ("Service", True),
    "configmaps": ("ConfigMap", True),
    "secrets": ("Secret", True),
    "persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "instancetypes": ("InstanceType", False),
}
RESOURCE_OF_KIND = {v[0]: k for k, v in KINDS.items()}


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_obj(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def bump(resource, namespace, obj, etype):
    """Records a write (LOCK held): stamps the object, logs the event, wakes watchers."""
    STATE["rv"] += 1
    obj["metadata"]["resourceVersion"] = str(STATE["rv"])
    STATE["events"].append((STATE["rv"], etype, resource, namespace, copy.deepcopy(obj)))
    LOCK.notify_all()


def store(resource, namespace, obj):
    meta = obj.setdefault("metadata", {})
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", now())
    if namespace:
        meta["namespace"] = namespace
    kind, _ = KINDS[resource]
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", "amlarc.azureml.com/v1alpha1" if resource == "instancetypes"
                   else "v1")
    if resource == "pods":
        obj.setdefault("status", {"phase": "Pending"})
    STATE["objects"][(resource, namespace, meta["name"])] = obj
    bump(resource, namespace, obj, "ADDED")


def matches(obj, selector):
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in [t for t in selector.split(",") if t]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term not in labels:
            return False
    return True


def delete_locked(resource, namespace, name):
    """Deletes one object and cascades to its dependents (LOCK held). Returns the object."""
    obj = STATE["objects"].pop((resource, namespace, name), None)
    if obj is None:
        return None
    bump(resource, namespace, obj, "DELETED")
    uid = obj["metadata"].get("uid")
    for (r, ns, n), dep in list(STATE["objects"].items()):
        refs = dep.get("metadata", {}).get("ownerReferences", []) or []
        if ns == namespace and any(ref.get("uid") == uid for ref in refs):
            if r == "pods" and (ns, n) in STATE["procs"]:
                threading.Thread(target=terminate_pod, args=(ns, n, 1), daemon=True).start()
            else:
                delete_locked(r, ns, n)
    return obj


# ---- kubelet double ------------------------------------------------------------------------------

def set_pod_status(namespace, name, fields):
    with LOCK:
        pod = STATE["objects"].get(("pods", namespace, name))
        if pod is None:
            return False
        pod.setdefault("status", {}).update(fields)
        bump("pods", namespace, pod, "MODIFIED")
        return True


def expand(value, env):
    out, i = "", 0
    while i < len(value):
        if value.startswith("$$", i):
            out += "$"
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            j = value.index(")", i)
            var = value[i + 2:j]
            out += env.get(var, value[i:j + 1])
            i = j + 1
        else:
            out += value[i]
            i += 1
    return out


def run_pod(namespace, name):
    cfg = STATE["kubelet"]
    with LOCK:
        pod = copy.deepcopy(STATE["objects"].get(("pods", namespace, name)))
    if pod is None:
        return
    spec = pod["spec"]
    container = spec["containers"][0]
    root = os.path.join(cfg["work_dir"], namespace, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {}
    files = []  # (path, bytes) written once every mount is known (their text is rewritten)
    import base64
    with LOCK:
        for m in container.get("volumeMounts", []):
            vol = volumes.get(m["name"], {})
            if "persistentVolumeClaim" in vol:  # shared by every pod, like the real claim
                d = os.path.join(cfg["work_dir"], "pvc", namespace, vol["persistentVolumeClaim"]["claimName"])
            else:
                d = os.path.join(root, "mounts", m["name"])
            os.makedirs(d, exist_ok=True)
            mounts[m["mountPath"]] = d
            data = {}
            if "configMap" in vol:
                src = STATE["objects"].get(("configmaps", namespace, vol["configMap"]["name"]), {})
                data = {k: v.encode() for k, v in src.get("data", {}).items()}
                data.update({k: base64.b64decode(v) for k, v in src.get("binaryData", {}).items()})
                items = vol["configMap"].get("items")
            elif "secret" in vol:
                src = STATE["objects"].get(("secrets", namespace, vol["secret"]["secretName"]), {})
                data = {k: base64.b64decode(v) for k, v in src.get("data", {}).items()}
                items = vol["secret"].get("items")
            else:
                continue
            for item in (items if items else [{"key": k, "path": k} for k in data]):
                if item["key"] in data:
                    files.append((os.path.join(d, item["path"]), data[item["key"]]))

    def rewrite(v):
        for path in sorted(mounts, key=len, reverse=True):
            if v == path or v.startswith(path + "/"):
                return mounts[path] + v[len(path):]
        return v

    def rewrite_text(text):
        for path in sorted(mounts, key=len, reverse=True):
            text = text.replace(b'"' + path.encode() + b'/', b'"' + mounts[path].encode() + b'/')
            text = text.replace(b'"' + path.encode() + b'"', b'"' + mounts[path].encode() + b'"')
        return text

    for path, content in files:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rewrite_text(content))

    env = {"PATH": cfg["bin_dir"] + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
           "HOME": root, "HOSTNAME": spec.get("hostname", name)}
    with LOCK:
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "secretKeyRef" in vf:
                    import base64
                    s = STATE["objects"].get(("secrets", namespace, vf["secretKeyRef"]["name"]), {})
                    raw = s.get("data", {}).get(vf["secretKeyRef"]["key"])
                    if raw is not None:
                        env[e["name"]] = base64.b64decode(raw).decode()
                elif "configMapKeyRef" in vf:
                    c = STATE["objects"].get(("configmaps", namespace, vf["configMapKeyRef"]["name"]), {})
                    env[e["name"]] = c.get("data", {}).get(vf["configMapKeyRef"]["key"], "")
                elif "fieldRef" in vf:
                    path = vf["fieldRef"]["fieldPath"]
                    env[e["name"]] = {"metadata.name": name, "metadata.namespace": namespace,
                                      "spec.nodeName": spec.get("nodeName", "")}.get(path, "")
    env = {k: rewrite(v) for k, v in env.items()}
    argv = [rewrite(expand(a, env)) for a in container.get("command", []) + container.get("args", [])]
    log_path = os.path.join(root, "container.log")
    out = open(log_path, "wb")
    try:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as e:
        set_pod_status(namespace, name, {"phase": "Pending", "containerStatuses": [{
            "name": container["name"], "ready": False, "restartCount": 0,
            "image": container.get("image", ""), "imageID": "",
            "state": {"waiting": {"reason": "RunContainerError", "message": str(e)}}}]})
        return
    with LOCK:
        STATE["procs"][(namespace, name)] = proc
    started = now()
    set_pod_status(namespace, name, {"phase": "Running", "startTime": started, "containerStatuses": [{
        "name": container["name"], "ready": True, "restartCount": 0,
        "image": container.get("image", ""), "imageID": "",
        "state": {"running": {"startedAt": started}}}]})
    # Copy the container's output into the pod log as it appears.
    with open(log_path, "rb") as f:
        pending = b""
        while True:
            done = proc.poll() is not None
            chunk = f.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                with LOCK:
                    STATE["logs"].setdefault((namespace, name), []).extend(
                        l.decode(errors="replace") for l in lines)
                    LOCK.notify_all()
            if done and not chunk:
                break
            time.sleep(0.02)
        if pending:
            with LOCK:
                STATE["logs"].setdefault((namespace, name), []).append(pending.decode(errors="replace"))
    code = proc.returncode
    exit_code = code if code >= 0 else 128 - code
    with LOCK:
        STATE["procs"].pop((namespace, name), None)
        deleting = ("pods", namespace, name) not in STATE["objects"] or \
            "deletionTimestamp" in STATE["objects"][("pods", namespace, name)]["metadata"]
    if not deleting:
        set_pod_status(namespace, name, {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": container["name"], "ready": False, "restartCount": 0,
                                   "image": container.get("image", ""), "imageID": "",
                                   "state": {"terminated": {
                                       "exitCode": exit_code, "startedAt": started,
                                       "finishedAt": now(),
                                       "reason": "Completed" if exit_code == 0 else "Error"}}}]})


def terminate_pod(namespace, name, grace):
    with LOCK:
        pod = STATE["objects"].get(("pods", namespace, name))
        proc = STATE["procs"].get((namespace, name))
        if pod is not None:
            pod["metadata"]["deletionTimestamp"] = now()
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            bump("pods", namespace, pod, "MODIFIED")
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + grace
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    with LOCK:
        delete_locked("pods", namespace, name)


# ---- HTTP ----------------------------------------------------------------------------------------

def parse_path(path):
    """→ (resource, namespace, name, subresource) for /api/v1/... and the InstanceType CRD."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:3] == ["apis", "amlarc.azureml.com", "v1alpha1"]:
        rest = parts[3:]
        if not STATE["crd"]:
            return None
    else:
        return None
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces":
        return ("namespaces", "", rest[1], None)
    if not rest or rest[0] not in KINDS:
        return None
    return (rest[0], ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away first
            self.close_connection = True

    def abort(self):
        """Drops the connection without a final chunk: what a broken network looks like."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def handle_any(self, method):
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with LOCK:
            STATE["requests"].append({"method": method, "path": url.path, "query": query})
        if url.path.startswith("/_control/"):
            return self.control(method, url.path, self.body() if method == "POST" else {})
        if TOKEN is not None and self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.body()
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        body = self.body() if method in ("POST", "DELETE") else {}
        parsed = parse_path(url.path)
        if parsed is None:
            return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
        resource, ns, name, sub = parsed
        with LOCK:
            for i, f in enumerate(STATE["faults"]):
                if f["method"] == method and f["resource"] == resource and f["codes"]:
                    code = f["codes"].pop(0)
                    if not f["codes"]:
                        STATE["faults"].pop(i)
                    if f.get("after_create") and method == "POST":
                        key = (resource, ns, body.get("metadata", {}).get("name"))
                        if key not in STATE["objects"]:
                            store(resource, ns, copy.deepcopy(body))
                    return self.send_json(code, status_obj(code, "TooManyRequests" if code == 429
                                                           else "InternalError", "injected fault"),
                                          {"Retry-After": "0"} if code == 429 else None)
        if method == "GET" and name is None:
            return self.list_or_watch(resource, ns, query)
        if method == "GET" and sub == "log":
            return self.pod_log(ns, name, query)
        if method == "GET":
            with LOCK:
                obj = STATE["objects"].get((resource, ns, name))
            if obj is None:
                return self.send_json(404, status_obj(404, "NotFound", f'{resource} "{name}" not found',
                                                      {"name": name, "kind": resource}))
            return self.send_json(200, obj)
        if method == "POST" and name is None:
            return self.create(resource, ns, body)
        if method == "DELETE" and name is not None:
            return self.delete(resource, ns, name, body)
        return self.send_json(405, status_obj(405, "MethodNotAllowed", "not supported by the test server"))

    def create(self, resource, ns, obj):
        name = obj.get("metadata", {}).get("name")
        if not name:
            return self.send_json(422, status_obj(422, "Invalid", f"{resource}: metadata.name: Required value"))
        with LOCK:
            if KINDS[resource][1] and ("namespaces", "", ns) not in STATE["objects"]:
                return self.send_json(404, status_obj(404, "NotFound", f'namespaces "{ns}" not found'))
            if (resource, ns, name) in STATE["objects"]:
                return self.send_json(409, status_obj(409, "AlreadyExists",
                                                      f'{resource} "{name}" already exists',
                                                      {"name": name, "kind": resource}))
            obj = copy.deepcopy(obj)
            store(resource, ns, obj)
            created = copy.deepcopy(obj)
            kubelet = STATE["kubelet"]
        if resource == "pods" and kubelet and kubelet.get("enabled"):
            node = obj.get("spec", {}).get("nodeName")
            if node and ("nodes", "", node) in STATE["objects"]:
                threading.Thread(target=run_pod, args=(ns, name), daemon=True).start()
        return self.send_json(201, created)

    def delete(self, resource, ns, name, options):
        with LOCK:
            obj = STATE["objects"].get((resource, ns, name))
            if obj is None:
                return self.send_json(404, status_obj(404, "NotFound", f'{resource} "{name}" not found',
                                                      {"name": name, "kind": resource}))
            running = resource == "pods" and (ns, name) in STATE["procs"]
            if not running:
                delete_locked(resource, ns, name)
                return self.send_json(200, obj)
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        threading.Thread(target=terminate_pod, args=(ns, name, grace), daemon=True).start()
        return self.send_json(200, obj)

    def list_or_watch(self, resource, ns, query):
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("1", "true"):
            return self.watch(resource, ns, selector, query)
        with LOCK:
            items = [copy.deepcopy(o) for (r, n, _), o in sorted(STATE["objects"].items())
                     if r == resource and (not ns or n == ns) and matches(o, selector)]
            rv = STATE["rv"]
        kind, _ = KINDS[resource]
        return self.send_json(200, {"kind": kind + "List", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": str(rv)}, "items": items})

    def watch(self, resource, ns, selector, query):
        try:
            since = int(query.get("resourceVersion", "0") or 0)
        except ValueError:
            return self.send_json(400, status_obj(400, "BadRequest", "invalid resourceVersion"))
        deadline = time.time() + float(query.get("timeoutSeconds", "1800"))
        self.start_chunked()
        with LOCK:
            generation = STATE["watch_generation"]
            if since == 0:
                since = STATE["rv"]  # "start at the most recent": no replay (we send no synthetic ADDED)
            elif since < STATE["compacted"]:
                err = {"type": "ERROR", "object": status_obj(
                    410, "Expired", f"too old resource version: {since} ({STATE['compacted']})")}
                self.chunk(json.dumps(err).encode() + b"\n")
                self.end_chunked()
                return
        sent = since
        while True:
            with LOCK:
                if STATE["watch_generation"] != generation:
                    return self.abort()
                batch = [e for e in STATE["events"] if e[0] > sent and e[2] == resource
                         and (not ns or e[3] == ns) and matches(e[4], selector)]
                if not batch:
                    if time.time() >= deadline:
                        break
                    LOCK.wait(0.2)
                    continue
            for rv, etype, _, _, obj in batch:
                try:
                    self.chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")
                except OSError:
                    return
                sent = rv
            with LOCK:
                sent = max(sent, max(e[0] for e in batch))
        self.end_chunked()

    def pod_log(self, ns, name, query):
        with LOCK:
            pod = STATE["objects"].get(("pods", ns, name))
            if pod is None:
                return self.send_json(404, status_obj(404, "NotFound", f'pods "{name}" not found'))
            statuses = pod.get("status", {}).get("containerStatuses", [])
            if not statuses or "waiting" in statuses[0].get("state", {}):
                c = pod["spec"]["containers"][0]["name"]
                return self.send_json(400, status_obj(400, "BadRequest",
                                                      f'container "{c}" in pod "{name}" is waiting to start: ContainerCreating'))
            generation = STATE["watch_generation"]
        follow = query.get("follow") in ("true", "1")
        self.start_chunked()
        sent = 0
        while True:
            with LOCK:
                if STATE["watch_generation"] != generation:
                    return self.abort()
                lines = STATE["logs"].get((ns, name), [])[sent:]
                pod = STATE["objects"].get(("pods", ns, name))
                phase = (pod or {}).get("status", {}).get("phase")
                ended = pod is None or phase in ("Succeeded", "Failed")
                if not lines:
                    if not follow or ended:
                        break
                    LOCK.wait(0.2)
                    continue
            try:
                self.chunk("".join(l + "\n" for l in lines).encode())
            except OSError:
                return
            sent += len(lines)
        self.end_chunked()

    def control(self, method, path, body):
        parts = [p for p in path.split("/") if p][1:]
        if parts == ["objects"]:
            resource = RESOURCE_OF_KIND[body["kind"]]
            ns = body.get("metadata", {}).get("namespace", "") if KINDS[resource][1] else ""
            with LOCK:
                if resource == "instancetypes":
                    STATE["crd"] = True
                store(resource, ns, copy.deepcopy(body))
            return self.send_json(200, {})
        if len(parts) == 4 and parts[0] == "pods" and parts[3] == "status":
            ok = set_pod_status(parts[1], parts[2], body)
            return self.send_json(200 if ok else 404, {})
        if len(parts) == 4 and parts[0] == "pods" and parts[3] == "log":
            with LOCK:
                STATE["logs"].setdefault((parts[1], parts[2]), []).extend(body["text"].splitlines())
                LOCK.notify_all()
            return self.send_json(200, {})
        if parts == ["kill-watches"]:
            with LOCK:
                STATE["watch_generation"] += 1
                LOCK.notify_all()
            return self.send_json(200, {})
        if parts == ["compact"]:
            with LOCK:
                STATE["compacted"] = STATE["rv"] + 1
            return self.send_json(200, {"compacted": STATE["compacted"]})
        if parts == ["faults"]:
            with LOCK:
                STATE["faults"].append(body)
            return self.send_json(200, {})
        if parts == ["kubelet"]:
            with LOCK:
                STATE["kubelet"] = body
            return self.send_json(200, {})
        if parts == ["requests"]:
            with LOCK:
                return self.send_json(200, {"requests": STATE["requests"]})
        if parts == ["objects", "list"]:
            with LOCK:
                return self.send_json(200, {"items": [
                    {"resource": r, "namespace": n, "name": m} for (r, n, m) in STATE["objects"]]})
        return self.send_json(404, {"error": "unknown control endpoint " + path})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    global TOKEN
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default=None)
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", default=None)
    p.add_argument("--client-ca", default=None,
                   help="require a client certificate signed by this CA (mutual TLS)")
    args = p.parse_args()
    TOKEN = args.token
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"READY {server.server_address[1]}", flush=True)

    def stop(*_):
        with LOCK:
            procs = list(STATE["procs"].values())
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Exit with the test that started us (stdin closes when it dies).
    threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
