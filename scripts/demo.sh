#!/usr/bin/env bash
# `make demo`: trains the native C++ example (examples/native-mlp) as a real distributed job on
# this machine through kubetrain, then shows its loss curve and where its results are.
#
# The job is 2 instances x 2 processes on a local compute of two virtual nodes
# (examples/instance-types/local-nodes.yml) with the instance types of
# examples/instance-types/instance-types.yml: kubetrain places the gang (one cpu-large instance per
# node), starts one kubetrain-worker per instance, the 4 ranks average gradients through
# kubetrain::collective, log their loss every step and save a checkpoint every 50 steps; the logs
# stream here. Everything goes to a workspace under the build directory.
set -euo pipefail
build="${1:-build}"
cd "$(dirname "$0")/.."
mkdir -p "$build"
export KUBETRAIN_WORKSPACE="${KUBETRAIN_WORKSPACE:-$(realpath "$build")/demo-workspace}"
kt="$build/bin/kubetrain"
job="demo-mlp-$(date +%Y%m%d-%H%M%S)"
started=$(date +%s)
bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

bold "demo: kubetrain $("$kt" --version | awk '{print $2}'), workspace $KUBETRAIN_WORKSPACE"
bold "1. a local compute with two virtual nodes, and the example instance types"
"$kt" compute attach demo --type local --nodes examples/instance-types/local-nodes.yml
"$kt" instance-type apply -f examples/instance-types/instance-types.yml --compute demo
set_args=(--set compute=demo --set resources.instance_type=cpu-large)
"$kt" job validate -f examples/native-mlp/job.yml "${set_args[@]}" >/dev/null

bold "2. the job: examples/native-mlp/job.yml, 2 instances x 2 processes"
"$kt" job create -f examples/native-mlp/job.yml --name "$job" "${set_args[@]}" --stream

echo
bold "3. its loss curve (kubetrain job metrics $job --key loss)"
"$kt" job metrics "$job" --key loss | head -4
echo
"$kt" job metrics "$job"
jobdir="$KUBETRAIN_WORKSPACE/jobs/$job"
echo
bold "where things are"
echo "  checkpoints  $jobdir/checkpoints/ ($(cd "$jobdir/checkpoints" && ls -d step-* | sort -t- -k2 -n | tr '\n' ' '))"
echo "  metrics      workspace $KUBETRAIN_WORKSPACE (SQLite); $kt job metrics $job --key loss -o csv"
echo "  final model  $jobdir/outputs/model/ (params.bin, final.json)"
echo "  logs         $kt job logs $job --rank 1"
echo "  the job      $kt job show $job"
echo "  (set KUBETRAIN_WORKSPACE=$KUBETRAIN_WORKSPACE to use these commands from elsewhere)"
echo "demo: finished in $(($(date +%s) - started)) s"
