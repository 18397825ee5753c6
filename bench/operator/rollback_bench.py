"""Rollback benchmark on the local cluster and object store (run by hand; prints figures, asserts nothing).

    .venv/bin/python bench/operator/rollback_bench.py [--rollbacks 20] [--batch 5] [--deadline-models 3]

1. Evidence -> old revision Available again: models serving revision 1 (2 replicas, strategy Replace, so the
   old ReplicaSet really shrinks) get a revision 2 whose pods crash-loop (kwok's crashloop stage, a restart
   every 3-7 s). A poller (every 100 ms) records when the evidence appears (a revision 2 pod reaches the
   restart threshold), when the operator writes the failure to status, and when revision 1 is Available again
   (the Deployment's template is revision 1, rollout complete, revision 1's ReplicaSet at full strength).
   p50 / p95 over all rollbacks, run `--batch` at a time. The operator runs with its default failure
   detection (3 restarts, checks every 5 s while a revision rolls out, resync every 60 s).
2. Crash-loop detection vs the progress deadline: the time from the spec change to the failure in status,
   by crash-loop evidence (phase 1) and, in a second operator that ignores restarts, by the Deployment's
   ProgressDeadlineExceeded with progressDeadlineSeconds 30 (the schema's minimum; the default is 600).

Needs `make cluster-up`; removes its namespaces and bucket at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlmodel_operator.config import FailureDetection
from mlmodel_operator.spec import GROUP, PLURAL, VERSION
from operator_bench import REPO, Bench, log, percentile

from tests.support.packages import build_package, make_onnx_mlp, upload_dir

REVISION = "serving.mlmodel.io/revision"
SELECTOR = "app.kubernetes.io/name=mlmodel-runtime"
CRASHLOOP = {"labels": {"mlmodel.io/simulate": "crashloop"}}


class Tracker:
    """Polls one namespace and records, per model, the first time each milestone is seen."""

    def __init__(self, bench: Bench, namespace: str, restarts: int) -> None:
        self.bench, self.namespace, self.restarts = bench, namespace, restarts
        self.times: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _mark(self, model: str, milestone: str, now: float) -> None:
        self.times.setdefault(model, {}).setdefault(milestone, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                self._poll(now)
            except Exception as exc:  # the API may hiccup; the next poll sees the same
                log(f"poll: {exc!r}")
            self._stop.wait(0.1)  # poll

    def _poll(self, now: float) -> None:
        b, ns = self.bench, self.namespace
        pods = b.core.list_namespaced_pod(ns, label_selector=SELECTOR, _preload_content=False)
        for pod in _items(pods):
            labels = pod["metadata"].get("labels") or {}
            counts = [c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or []]
            if labels.get(REVISION) == "2" and counts and max(counts) >= self.restarts:
                self._mark(labels["app.kubernetes.io/instance"], "evidence", now)
        models = b.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _preload_content=False)
        for model in _items(models):
            history = (model.get("status") or {}).get("history") or []
            if any(e.get("revision") == 2 and e.get("outcome") == "Failed" for e in history):
                self._mark(model["metadata"]["name"], "failed", now)
        replicasets = {
            (rs["metadata"]["labels"].get("app.kubernetes.io/instance"), rs["metadata"]["labels"].get(REVISION)): rs
            for rs in _items(b.apps.list_namespaced_replica_set(ns, label_selector=SELECTOR, _preload_content=False))
        }
        for dep in _items(b.apps.list_namespaced_deployment(ns, _preload_content=False)):
            name = dep["metadata"]["name"]
            want = dep["spec"].get("replicas", 1)
            status = dep.get("status") or {}
            old = replicasets.get((name, "1"))
            back = (
                "failed" in self.times.get(name, {})
                and dep["spec"]["template"]["metadata"]["labels"].get(REVISION) == "1"
                and status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
                and status.get("updatedReplicas") == want == status.get("availableReplicas") == status.get("replicas")
                and old is not None and (old.get("status") or {}).get("availableReplicas") == want
            )
            if back:
                self._mark(name, "available", now)

    def wait(self, names: list[str], milestone: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(milestone in self.times.get(n, {}) for n in names):
            if time.monotonic() > deadline:
                missing = [n for n in names if milestone not in self.times.get(n, {})]
                raise TimeoutError(f"{milestone} never seen for {missing}")
            time.sleep(0.2)  # poll

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _items(response: Any) -> list[dict[str, Any]]:
    import json

    return list(json.loads(response.data).get("items", []))


class RollbackBench(Bench):
    def packages(self, folder: Path) -> tuple[str, str, str]:
        s3 = boto3.client("s3", endpoint_url=self.store["AWS_ENDPOINT_URL"],
                          aws_access_key_id=self.store["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=self.store["AWS_SECRET_ACCESS_KEY"],
                          region_name=self.store["AWS_REGION"])
        bucket = f"bench-{self.tag}"
        s3.create_bucket(Bucket=bucket)
        uris = []
        for version in (1, 2):
            pkg = build_package(folder / f"pkg{version}", make_onnx_mlp(folder / f"m{version}.onnx", seed=version),
                                name="mlp", version=str(version), format="onnx")
            uris.append(upload_dir(s3, bucket, f"mlp/{version}", pkg))
        return bucket, uris[0], uris[1]

    def model(self, name: str, uri: str, deadline: int) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MLModel",
            "metadata": {"name": name},
            "spec": {
                "source": {"uri": uri, "credentialsSecret": "models-s3"},
                "nodePool": "cpu",
                "replicas": 2,
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "rollout": {"strategy": "Replace", "progressDeadlineSeconds": deadline},
            },
        }

    def run_batch(self, ns: str, tracker: Tracker, names: list[str], v1: str, v2: str, deadline: int,
                  timeout: float) -> dict[str, float]:
        """Serve revision 1, then roll out a crash-looping revision 2; returns the patch time of each model."""
        for name in names:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, self.model(name, v1, deadline))
        self.wait_ready(ns, names, 120)
        patched: dict[str, float] = {}
        patch = {"spec": {"source": {"uri": v2}, "podMetadata": CRASHLOOP}}

        def change(name: str) -> None:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
            patched[name] = time.perf_counter()

        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(change, names))
        tracker.wait(names, "available", timeout)
        return patched

    def wait_ready(self, ns: str, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = set()
            for model in _items(self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                                          _preload_content=False)):
                status = model.get("status") or {}
                if status.get("revision") == 1 and any(c["type"] == "Ready" and c["status"] == "True"
                                                       for c in status.get("conditions") or []):
                    ready.add(model["metadata"]["name"])
            if set(names) <= ready:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not Ready: {sorted(set(names) - ready)}")
            time.sleep(0.2)  # poll


def summary(values: list[float]) -> str:
    return (f"p50 {statistics.median(values):.1f} s, p95 {percentile(values, 95):.1f} s, "
            f"min {min(values):.1f} s, max {max(values):.1f} s (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollbacks", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5, help="rollbacks under way at the same time")
    parser.add_argument("--deadline-models", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    bench = RollbackBench(argparse.Namespace())
    bench.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / f"{GROUP}_{PLURAL}.yaml"))
    restarts = FailureDetection().crash_loop_restarts
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bucket, v1, v2 = bench.packages(folder)
        try:
            with bench.operator_process(folder / "default") as _:
                ns = bench.namespace("rollback")
                tracker = Tracker(bench, ns, restarts)
                patched: dict[str, float] = {}
                try:
                    for start in range(0, args.rollbacks, args.batch):
                        names = [f"m-{i}" for i in range(start, min(start + args.batch, args.rollbacks))]
                        log(f"rollbacks {names[0]}..{names[-1]}")
                        patched |= bench.run_batch(ns, tracker, names, v1, v2, 600, args.timeout)
                finally:
                    tracker.stop()
                crash = {n: t for n, t in tracker.times.items() if n in patched}
            # Only the progress deadline: restarts never count as a crash loop in this operator.
            ignore_restarts = {"failureDetection": {"crashLoopRestarts": 1_000_000}}
            with bench.operator_process(folder / "deadline", ignore_restarts) as _:
                ns = bench.namespace("deadline")
                tracker = Tracker(bench, ns, 1_000_000)
                try:
                    names = [f"d-{i}" for i in range(args.deadline_models)]
                    log(f"progress deadline (30 s): {len(names)} models")
                    deadline_patched = bench.run_batch(ns, tracker, names, v1, v2, 30, args.timeout)
                finally:
                    tracker.stop()
                by_deadline = [tracker.times[n]["failed"] - deadline_patched[n] for n in names]
        finally:
            bench.remove_bucket(bucket)

    evidence_to_available = [crash[n]["available"] - crash[n]["evidence"] for n in patched]
    evidence_to_failed = [crash[n]["failed"] - crash[n]["evidence"] for n in patched]
    by_crashloop = [crash[n]["failed"] - patched[n] for n in patched]
    print(f"crash-looping revision 2 -> revision 1 Available again ({args.rollbacks} rollbacks, "
          f"{args.batch} at a time, default failure detection: {restarts} restarts, checks every 5 s):")
    print(f"  evidence (a pod reaches {restarts} restarts) -> old revision Available: {summary(evidence_to_available)}")
    print(f"  evidence -> failure written to status:                    {summary(evidence_to_failed)}")
    print("time from the spec change to the failure in status:")
    print(f"  by crash-loop evidence:                         {summary(by_crashloop)}")
    print(f"  by ProgressDeadlineExceeded (deadline 30 s):    {summary(by_deadline)}")
    print("  (with the default progressDeadlineSeconds of 600 the deadline alone would take over 10 minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
