#!/usr/bin/env python3
"""Differential test: Azure ML's own SDK (azure-ai-ml's load_job) against `kubetrain job validate`.

Every command-job file in ../shared/compat/azureml-jobs/ (published azureml-examples files) and in
tests/compat/jobs/ (written from Azure ML's commandJob schema: ok-* valid, bad-* wrong on purpose,
diff-* where kubetrain differs on purpose) goes through both:

  * the SDK: azure.ai.ml.load_job(FILE), offline (no credentials, no workspace) — accepts or raises;
  * kubetrain: `kubetrain job validate -f FILE --set compute=compat -o json` on a throw-away
    workspace with a local compute `compat` whose instance types are the names the files use
    (files that say `compute: local` keep it), and every data asset and environment the files
    name (azureml:<name>:<version>, <name>@latest) registered with `kubetrain data create` /
    `kubetrain environment create`, as a user would — exit 0 or not.

Both must accept or both reject (the wording of errors is not compared: ours carry
file:line:column, field and fix). For a file both accept, the normalised results must be equal:
command, inputs (literal values; data type, mode, resolved path), outputs (type, mode, path),
distribution with Azure ML's defaults applied (mpi / pytorch: 1 process per instance; tensorflow:
worker_count = instance_count, 0 parameter servers), resources (instance type, count, shm_size),
limits.timeout, environment variables, environment (image / conda file / build context /
registered name and version or label) and code folder.

Where kubetrain differs on purpose, DIFFERENCES below says so with the reason; a listed file that
starts agreeing fails the test too (the table must stay true). The test prints one line per file
and the agreement figure.

Usage (ctest runs it): azureml_sdk_diff_test.py --kubetrain BUILD/bin/kubetrain --source-dir SRC
It re-executes itself under the project venv ($KUBETRAIN_VENV, default SRC/.deps/venv) and exits
77 (skipped) naming the missing package when the venv or azure-ai-ml is not there.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

SKIP = 77  # ctest SKIP_RETURN_CODE

# Deliberate differences: file -> (what kubetrain does, why). `sdk` is what load_job does.
SERVICE_SIDE = ("kubetrain rejects at validate what Azure ML's load_job leaves to the service at "
                "submit time")
DIFFERENCES = {
    # kubetrain accepts, the SDK rejects
    "bad-code-missing.yml": (
        "accept", "a `code` folder missing here is a warning at validate, not an error: on "
        "Kubernetes it may be a path on a PVC (Azure ML's ml.azure.com/pvc rule) that only the "
        "cluster sees; a local `job create` still fails with the agent's error"),
    "diff-kubetrain-section.yml": (
        "accept", "kubetrain's own keys (max_retries, checkpoint) live under one `kubetrain:` "
        "section; Azure ML's schema has no such key, so load_job rejects it as an unknown field"),
    "diff-code-local-path.yml": (
        "accept", "`code: {local_path: src}` is the older CLI v2 form azureml-examples still "
        "publishes (hello-mlflow.yml); azure-ai-ml 1.35 accepts only a string"),
    "hello-mlflow.yml": ("accept", "published file with `code: {local_path: src}` (see above)"),
    "diff-input-rw-mount.yml": (
        "accept", "inputs in rw_mount mode: the published hello-iris-datastore-folder.yml uses it; "
        "azure-ai-ml 1.35 allows only ro_mount, download, direct, eval_* for inputs"),
    "hello-iris-datastore-folder.yml": (
        "accept", "published file with an rw_mount input (see above)"),
    # the SDK accepts, kubetrain rejects
    "gpu-perf-nccl-tests.yml": (
        "reject", "instance_type Standard_NC6s_v3 is an AmlCompute VM size; a kubetrain (and Azure "
        "ML Kubernetes) compute's instance types are InstanceType objects with DNS names, so the "
        "user maps it with --set resources.instance_type=..."),
    "diff-eval-mount.yml": (
        "reject", "eval_mount / eval_download make Azure ML evaluate an MLTable on the node; "
        "kubetrain does not evaluate MLTable"),
    "bad-env-incomplete-reference.yml": ("reject", SERVICE_SIDE + " (environment without a "
                                         "version or label)"),
    "bad-env-inline-no-image.yml": ("reject", SERVICE_SIDE + " (inline environment with "
                                    "neither image nor build)"),
    "bad-input-missing-local-path.yml": ("reject", SERVICE_SIDE + " (a local input path that "
                                         "does not exist; Azure ML fails uploading it)"),
    "bad-input-no-path.yml": ("reject", SERVICE_SIDE + " (a uri_folder input without path)"),
    "bad-name-invalid.yml": ("reject", SERVICE_SIDE + " (job name with spaces and '!')"),
    "bad-shm-size.yml": ("reject", SERVICE_SIDE + " (shm_size that is no size)"),
    "bad-undeclared-input-reference.yml": ("reject", SERVICE_SIDE + " (${{inputs.x}} not "
                                           "declared)"),
}
# Same verdict, different meaning (not counted as disagreement; listed for the report).
SEMANTIC_NOTES = {
    "diff-compute-local.yml": "`compute: local` runs on this machine's own software in kubetrain "
                              "(the environment's image is not used); Azure ML runs local jobs "
                              "in Docker",
}
# Real parser bugs found by this test, to fix in launcher/spec/job_parser.cc: file -> reason.
# Each is a file load_job rejects and `kubetrain job validate` accepts today.
KNOWN_BUGS = {}


def reexec_under_venv(source_dir):
    venv = os.environ.get("KUBETRAIN_VENV") or os.path.join(source_dir, ".deps", "venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"SKIP: the project venv {venv} does not exist (azure-ai-ml lives there): "
              "run scripts/setup-deps.sh")
        sys.exit(SKIP)
    if os.path.realpath(sys.prefix) != os.path.realpath(venv) and \
            not os.environ.get("KUBETRAIN_COMPAT_REEXEC"):
        os.environ["KUBETRAIN_VENV"] = venv
        os.environ["KUBETRAIN_COMPAT_REEXEC"] = "1"  # once: a broken venv must not loop
        os.execv(python, [python] + sys.argv)


def load_sdk():
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from azure.ai.ml import load_job  # noqa: F401
            import azure.ai.ml
    except ImportError as e:
        print(f"SKIP: azure-ai-ml is not installed in {sys.prefix} ({e}): run scripts/setup-deps.sh")
        sys.exit(SKIP)
    return azure.ai.ml


def yaml_load(text):
    import yaml  # PyYAML comes with azure-ai-ml
    return yaml.safe_load(text)


# ---- the SDK side -----------------------------------------------------------------------------

def sdk_verdict(ml, path):
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            job = ml.load_job(path)
        return True, job, ""
    except Exception as e:  # the SDK raises ValidationError / ValidationException / others
        first = " ".join(str(e).split())
        return False, None, f"{type(e).__name__}: {first[:160]}"


def literal_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve(base, path):
    if path is None:
        return ""
    path = str(path)
    for remote in ("azureml:", "https://", "http://", "wasbs://", "wasb://", "abfss://", "adl://"):
        if path.startswith(remote):
            return path
    if path.startswith("file://"):
        path = path[len("file://"):]
    return os.path.normpath(os.path.join(base, path))


def sdk_normalise(job, base):
    out = {"command": job.command}
    inputs = {}
    for name, node in (job.inputs or {}).items():
        data = getattr(node, "_data", node)
        if hasattr(data, "type") and hasattr(data, "path"):
            inputs[name] = {"type": data.type or "uri_folder", "path": resolve(base, data.path),
                            "mode": data.mode or "default"}
        elif isinstance(data, str) and data.startswith("azureml:") and \
                not data.startswith("azureml://"):
            # Offline, load_job keeps `x: azureml:name:version` as a string; the service resolves
            # it to the data asset (a uri_folder here: what register_assets registers).
            inputs[name] = {"type": "uri_folder", "path": data, "mode": "default"}
        else:
            inputs[name] = {"literal": yaml_load(literal_text(data))}
    out["inputs"] = inputs
    outputs = {}
    for name, node in (job.outputs or {}).items():
        data = getattr(node, "_data", node)
        if data is None:
            outputs[name] = {"type": "uri_folder", "path": "", "mode": "default"}
        else:
            outputs[name] = {"type": data.type or "uri_folder",
                             "path": resolve(base, getattr(data, "path", None)),
                             "mode": getattr(data, "mode", None) or "default"}
    out["outputs"] = outputs
    resources = job.resources
    count = (resources.instance_count if resources and resources.instance_count else 1)
    out["resources"] = {
        "instance_type": (resources.instance_type if resources else None) or "",
        "instance_count": count,
        "shm_size": (resources.shm_size if resources else None) or "",
    }
    d = job.distribution
    if d is None:
        out["distribution"] = {"type": "none"}
    else:
        kind = type(d).__name__
        if kind == "MpiDistribution":
            out["distribution"] = {"type": "mpi",
                                   "process_count_per_instance": d.process_count_per_instance or 1}
        elif kind == "PyTorchDistribution":
            out["distribution"] = {"type": "pytorch",
                                   "process_count_per_instance": d.process_count_per_instance or 1}
        elif kind == "TensorFlowDistribution":
            out["distribution"] = {"type": "tensorflow",
                                   "worker_count": d.worker_count or count,
                                   "parameter_server_count": d.parameter_server_count or 0}
        else:
            out["distribution"] = {"type": kind}
    timeout = job.limits.timeout if job.limits is not None else None
    out["limits"] = {"timeout": int(timeout) if timeout else 0}
    out["environment_variables"] = {k: literal_text(v)
                                    for k, v in (job.environment_variables or {}).items()}
    env = job.environment
    if isinstance(env, str):
        ref = env[len("azureml:"):] if env.startswith("azureml:") else env
        out["environment"] = {"reference": ref}
    elif env is not None:
        build = getattr(env, "build", None)
        out["environment"] = {
            "image": env.image or "",
            "conda": env.conda_file or None,  # the SDK reads the conda file: compare contents
            "build": resolve(base, build.path) if build is not None and build.path else "",
        }
    else:
        out["environment"] = None
    out["code"] = resolve(base, job.code) if job.code else ""
    return out


# ---- the kubetrain side -----------------------------------------------------------------------

def kt_run(kubetrain, workspace, args):
    env = dict(os.environ, KUBETRAIN_WORKSPACE=workspace)
    p = subprocess.run([kubetrain] + args, env=env, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def enum_name(value, prefix, default):
    if not value:
        return default
    return value[len(prefix):].lower() if value.startswith(prefix) else value.lower()


def kt_normalise(resolved):
    job = resolved["job"]
    out = {"command": job.get("command", "")}
    inputs = {}
    for name, i in job.get("inputs", {}).items():
        kind = enum_name(i.get("type"), "DATA_TYPE_", "uri_folder")
        if kind == "literal":
            inputs[name] = {"literal": yaml_load(i.get("literal", ""))}
        else:
            # A data asset input records the asset it resolved to; the SDK shows the reference.
            path = "azureml:" + i["asset"] if i.get("asset") else i.get("path", "")
            inputs[name] = {"type": kind, "path": path,
                            "mode": enum_name(i.get("mode"), "DATA_MODE_", "default")}
    out["inputs"] = inputs
    out["outputs"] = {
        name: {"type": enum_name(o.get("type"), "DATA_TYPE_", "uri_folder"),
               "path": o.get("path", ""),
               "mode": enum_name(o.get("mode"), "DATA_MODE_", "default")}
        for name, o in job.get("outputs", {}).items()}
    r = job.get("resources", {})
    count = int(r.get("instance_count", 1))
    out["resources"] = {"instance_type": r.get("instance_type", ""), "instance_count": count,
                        "shm_size": r.get("shm_size", {}).get("original", "")}
    d = job.get("distribution", {})
    kind = enum_name(d.get("type"), "TYPE_", "none")
    if kind in ("mpi", "pytorch"):
        out["distribution"] = {"type": kind, "process_count_per_instance":
                               int(d.get("process_count_per_instance", 0))}
    elif kind == "tensorflow":
        out["distribution"] = {"type": kind, "worker_count": int(d.get("worker_count", 0)),
                               "parameter_server_count": int(d.get("parameter_server_count", 0))}
    else:
        out["distribution"] = {"type": "none"}
    out["limits"] = {"timeout": int(job.get("limits", {}).get("timeout_seconds", 0))}
    out["environment_variables"] = dict(job.get("environment_variables", {}))
    e = job.get("environment")
    if not e:
        out["environment"] = None
    elif e.get("reference") and not e.get("file"):
        ref = e["reference"]
        out["environment"] = {"reference": ref[len("azureml:"):] if ref.startswith("azureml:")
                              else ref}
    else:
        conda = None
        if e.get("conda_file"):
            with open(e["conda_file"]) as f:
                conda = yaml_load(f.read())
        out["environment"] = {"image": e.get("image", ""), "conda": conda,
                              "build": e.get("build_context", "")}
    out["code"] = job.get("code", {}).get("local_path", "")
    return out


# ---- staging and the workspace ----------------------------------------------------------------

def stage_published(shared_dir, dest):
    """The published files come with their folders in azureml-examples; the copies in shared/ do
    not. Copy them and create what they name (an empty code folder `src/`, the inline environment
    file of `environment: file:...`), the same for both tools."""
    os.makedirs(dest)
    files = []
    for name in sorted(os.listdir(shared_dir)):
        if not name.endswith((".yml", ".yaml")):
            continue
        shutil.copy(os.path.join(shared_dir, name), os.path.join(dest, name))
        files.append(os.path.join(dest, name))
        with open(os.path.join(dest, name)) as f:
            doc = yaml_load(f.read()) or {}
        code = doc.get("code")
        if isinstance(code, dict):
            code = code.get("local_path") or code.get("path")
        if isinstance(code, str) and ":" not in code:
            os.makedirs(os.path.join(dest, code), exist_ok=True)
            with open(os.path.join(dest, code, "README"), "w") as f:
                f.write("placeholder for the job's code folder\n")
        env = doc.get("environment")
        if isinstance(env, str) and env.startswith("file:"):
            env_path = os.path.join(dest, env[len("file:"):])
            os.makedirs(os.path.dirname(env_path), exist_ok=True)
            with open(env_path, "w") as f:
                f.write("$schema: https://azuremlschemas.azureedge.net/latest/"
                        "environment.schema.json\nimage: mcr.microsoft.com/azureml/"
                        "openmpi4.1.0-ubuntu20.04\n")
    return files


# azureml:<name>:<version>, azureml:<name>@latest, <name>@latest (groups: name, version).
ASSET_REFERENCE = re.compile(
    r"^(?:azureml:)?([A-Za-z0-9][A-Za-z0-9._-]*)(?::([A-Za-z0-9._-]+)|@latest)$")


def referenced_assets(doc):
    """{(kind, name, version)}: the registered data assets and environments a job file names."""
    out = set()
    if not isinstance(doc, dict):
        return out
    env = doc.get("environment")
    if isinstance(env, str) and not env.startswith("file:"):
        m = ASSET_REFERENCE.match(env)
        if m:
            out.add(("environment", m.group(1), m.group(2) or "1", ""))
    for value in (doc.get("inputs") or {}).values():
        kind = "uri_folder"
        if isinstance(value, dict):
            kind = value.get("type") or kind
            value = value.get("path")
        if isinstance(value, str) and value.startswith("azureml:") and \
                not value.startswith("azureml://"):
            m = ASSET_REFERENCE.match(value)
            if m:
                out.add(("data", m.group(1), m.group(2) or "1", kind))
    return out


def register_assets(kubetrain, workspace, files, tmp):
    """Registers what the files name, as a user maps cloud assets onto local ones."""
    assets = set()
    for path in files:
        try:
            with open(path) as f:
                assets |= referenced_assets(yaml_load(f.read()))
        except Exception:
            pass
    for kind, name, version, data_type in sorted(assets):
        spec = os.path.join(tmp, f"{kind}-{name}-{version}.yml")
        with open(spec, "w") as f:
            f.write(f"name: {name}\nversion: '{version}'\n")
            if kind == "environment":
                f.write("image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04\n")
            else:
                data = os.path.join(tmp, "assets", f"{name}-{version}")
                os.makedirs(os.path.dirname(data), exist_ok=True)
                if data_type == "uri_file":
                    open(data, "w").close()
                else:
                    os.makedirs(data, exist_ok=True)
                f.write(f"type: {data_type}\npath: {data}\n")
        rc, out, err = kt_run(kubetrain, workspace, [kind, "create", "-f", spec])
        if rc != 0:
            sys.exit(f"registering {kind} {name}:{version} failed:\n{out}{err}")


def set_up_workspace(kubetrain, workspace, files, tmp):
    """A local compute `compat` with room for every job here, every instance type they name, and
    the data assets and environments they reference."""
    types = set()
    for path in files:
        try:
            with open(path) as f:
                doc = yaml_load(f.read())
            t = (doc.get("resources") or {}).get("instance_type")
            # InstanceType objects are Kubernetes resources: DNS names only (see DIFFERENCES).
            if isinstance(t, str) and re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", t):
                types.add(t)
        except Exception:
            pass
    nodes = os.path.join(tmp, "nodes.yml")
    with open(nodes, "w") as f:
        f.write("nodes:\n")
        for n in range(4):
            f.write(f"  - {{name: compat-{n}, cpu: '8', memory: 32Gi}}\n")
    items = "".join(
        f"  - metadata: {{name: {t}}}\n"
        "    spec:\n"
        "      resources:\n"
        "        requests: {cpu: 100m, memory: 128Mi}\n"
        "        limits: {cpu: '1', memory: 1Gi}\n" for t in sorted(types))
    type_file = os.path.join(tmp, "instance-types.yml")
    with open(type_file, "w") as f:
        f.write("apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceTypeList\nitems:\n" + items)
    for args in (["compute", "attach", "compat", "--type", "local", "--nodes", nodes],
                 ["instance-type", "apply", "--compute", "compat", "-f", type_file]):
        rc, out, err = kt_run(kubetrain, workspace, args)
        if rc != 0:
            sys.exit(f"setting up the workspace failed: kubetrain {' '.join(args)}:\n{out}{err}")
    register_assets(kubetrain, workspace, files, tmp)


# ---- the comparison ---------------------------------------------------------------------------

def compare(ml, kubetrain, workspace, path):
    """(verdict, detail): verdict is 'agree', 'deliberate', 'known-bug' or 'DISAGREE'."""
    name = os.path.basename(path)
    sdk_ok, job, sdk_error = sdk_verdict(ml, path)
    with open(path) as f:
        try:
            doc = yaml_load(f.read())
        except Exception:
            doc = None
    args = ["job", "validate", "-f", path, "-o", "json"]
    if not (isinstance(doc, dict) and doc.get("compute") == "local"):
        args += ["--set", "compute=compat"]
    rc, out, err = kt_run(kubetrain, workspace, args)
    kt_ok = rc == 0
    kt_error = " ".join(l for l in err.splitlines() if "error" in l)[:200]
    if sdk_ok != kt_ok:
        got = f"SDK {'accepts' if sdk_ok else 'rejects'}, kubetrain {'accepts' if kt_ok else 'rejects'}"
        why = sdk_error if not sdk_ok else kt_error
        if name in DIFFERENCES and DIFFERENCES[name][0] == ("accept" if kt_ok else "reject"):
            return "deliberate", f"{got}: {DIFFERENCES[name][1]}"
        if name in KNOWN_BUGS:
            return "known-bug", f"{got}: {KNOWN_BUGS[name]}"
        return "DISAGREE", f"{got} ({why})"
    if not sdk_ok:
        verdict, detail = "agree", "both reject"
    else:
        base = os.path.dirname(os.path.abspath(path))
        ours = kt_normalise(json.loads(out))
        theirs = sdk_normalise(job, base)
        diffs = [f"{k}: SDK {theirs[k]!r} vs kubetrain {ours[k]!r}"
                 for k in theirs if theirs[k] != ours.get(k)]
        if diffs:
            if name in KNOWN_BUGS:
                return "known-bug", f"both accept, results differ: {KNOWN_BUGS[name]}"
            return "DISAGREE", "both accept, results differ: " + "; ".join(diffs)
        verdict, detail = "agree", "both accept, same result"
    if name in DIFFERENCES or name in KNOWN_BUGS:
        return "STALE", f"{detail}, but the file is listed as a difference: remove it from the table"
    return verdict, detail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubetrain", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    reexec_under_venv(args.source_dir)
    ml = load_sdk()
    if not os.access(args.kubetrain, os.X_OK):
        sys.exit(f"{args.kubetrain} is not built")
    corpus_dir = os.path.join(args.source_dir, "tests", "compat", "jobs")
    shared_dir = os.path.normpath(os.path.join(args.source_dir, "..", "shared", "compat",
                                               "azureml-jobs"))
    tmp = tempfile.mkdtemp(prefix="kt-compat-")
    try:
        files = []
        if os.path.isdir(shared_dir):
            files += stage_published(shared_dir, os.path.join(tmp, "published"))
        else:
            print(f"note: no published files at {shared_dir}; the corpus alone is compared")
        files += sorted(os.path.join(corpus_dir, f) for f in os.listdir(corpus_dir)
                        if f.endswith(".yml") and f.split("-")[0] in ("ok", "bad", "diff"))
        workspace = os.path.join(tmp, "workspace")
        set_up_workspace(args.kubetrain, workspace, files, tmp)
        counts = {}
        for path in files:
            verdict, detail = compare(ml, args.kubetrain, workspace, path)
            counts[verdict] = counts.get(verdict, 0) + 1
            where = "published" if path.startswith(tmp) else "corpus"
            print(f"{verdict:10} {where:9} {os.path.basename(path)}: {detail}")
        for name, note in SEMANTIC_NOTES.items():
            print(f"note       {name}: {note}")
        total = len(files)
        agree = counts.get("agree", 0)
        print(f"\nazure-ai-ml {ml.__version__} vs kubetrain job validate: {agree}/{total} files agree "
              f"(accept/reject and normalised result); {counts.get('deliberate', 0)} deliberate "
              f"differences, {counts.get('known-bug', 0)} known parser bugs, "
              f"{counts.get('DISAGREE', 0)} unexpected, {counts.get('STALE', 0)} stale entries")
        ok = counts.get("DISAGREE", 0) == 0 and counts.get("STALE", 0) == 0
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
