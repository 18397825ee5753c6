#!/usr/bin/env bash
# `make demo`: start the local cluster and object store and show them working, then stop what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LOCAL="${MLMODEL_LOCAL_DIR:-.local}"
KUBECTL=("$LOCAL/bin/kubectl" --kubeconfig "$LOCAL/cluster/kubeconfig")
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

was_running=$($PY -m hack.localcluster status | grep -c ': running' || true)
cleanup() { if [ "$was_running" = "0" ]; then say "stopping what the demo started"; $PY -m hack.localcluster down; fi; }
trap cleanup EXIT

say "starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) and SeaweedFS S3"
$PY -m hack.localcluster up

say "kubectl version"
"${KUBECTL[@]}" version

say "nodes: a GPU pool (tainted nvidia.com/gpu) and a CPU node"
"${KUBECTL[@]}" get nodes -L pool,nvidia.com/gpu.product
"${KUBECTL[@]}" get nodes -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,TAINTS:.spec.taints[*].key'

say "object store: buckets at $(grep AWS_ENDPOINT_URL "$LOCAL/objectstore/env" | cut -d= -f2)"
set -a; source "$LOCAL/objectstore/env"; set +a
$PY - <<'PYEOF'
import boto3
s3 = boto3.client("s3")
s3.put_object(Bucket="models", Key="hello.txt", Body=b"hello from the demo")
print("buckets:", [b["Name"] for b in s3.list_buckets()["Buckets"]])
print("models/hello.txt:", s3.get_object(Bucket="models", Key="hello.txt")["Body"].read().decode())
PYEOF
