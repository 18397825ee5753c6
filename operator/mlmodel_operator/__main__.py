"""`python -m mlmodel_operator --config FILE [--namespace NS ...]`: run the operator in the foreground
against the current kubeconfig (KUBECONFIG) or, inside a pod, the service account."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import kopf
from kopf._core.engines.peering import Identity  # kopf.operator's type for it, not re-exported
from prometheus_client import CollectorRegistry, start_http_server

from mlmodel_operator import plan
from mlmodel_operator.adapters import KubeApi, PackageValidator, connect
from mlmodel_operator.adapters.lease import LeaseElector
from mlmodel_operator.config import ConfigError, OperatorConfig, load_config
from mlmodel_operator.faults import FaultInjector
from mlmodel_operator.handlers import register
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler

log = logging.getLogger("mlmodel_operator")

# Exit status when leadership is lost: the pod restarts and waits as a standby (no two writers, ever).
EXIT_LOST_LEASE = 3

# kopf's own bookkeeping goes under our API group; progress and the diff base in annotations
# (a structural schema would prune kopf's status fields).
STORAGE_PREFIX = "serving.mlmodel.io"

# How long a deletion waits for a running timer pass to end before it polls (see kopf_settings).
DELETE_WAIT_SECONDS = 3.0

# API connections beyond the reconcile workers: the lease renewer and kopf's own calls on the side.
SPARE_CONNECTIONS = 4


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf's scanning watches namespaces (to resolve its globs) and CRDs cluster-wide: RBAC the chart does not
    # grant, and a namespace created during its start-up is missed. Patterns are resolved by the handlers'
    # own namespace filter instead (plan/scope.py), so kopf never scans.
    settings.scanning.disabled = True
    settings.posting.enabled = False  # the reconcile posts the events worth reading
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/kopf-finalizer"  # needed by kopf's timers
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.execution.max_workers = config.max_workers
    # Deleting a model stops its timers; a timer in the middle of a (synchronous) pass cannot be cancelled, and
    # by default kopf then looks again only after 60 s, holding the finalizer that long. A pass takes well
    # under a second: wait for it, then poll often.
    settings.background.instant_exit_timeout = DELETE_WAIT_SECONDS
    settings.background.cancellation_polling = 1.0
    # One replica reconciles, elected through a Lease (see run_elected), so kopf's own peering is off.
    settings.peering.standalone = True
    return settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlmodel_operator", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="operator configuration file (YAML)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="serve only this namespace (repeatable; overrides watch.namespaces)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG or in-cluster)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "DEBUG":
        # kopf logs every handler call at INFO; the reconcile logs what changed.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mlmodel-operator: {exc}", file=sys.stderr)
        return 2
    scope = plan.WatchScope.of(args.namespace or config.watch.namespaces)

    try:
        faults = FaultInjector.from_env()
    except ValueError as exc:
        print(f"mlmodel-operator: {exc}", file=sys.stderr)
        return 2

    metrics = OperatorMetrics(CollectorRegistry())
    if config.metrics_port:
        start_http_server(config.metrics_port, registry=metrics.registry)
    api_client = connect(args.kubeconfig, pool_size=config.max_workers + SPARE_CONNECTIONS)
    # Who this replica is, for the Lease, its events and kopf (whose own guess, getpass.getuser(), fails for a
    # uid that has no passwd entry: the images' 65532).
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    elector = None
    if config.leader_election.enabled:
        le = config.leader_election
        elector = LeaseElector(
            api_client,
            name=le.lease_name,
            namespace=le.lease_namespace or os.environ.get("POD_NAMESPACE", "default"),
            identity=identity,
            lease_duration=le.lease_duration_seconds,
            renew_deadline=le.renew_deadline_seconds,
            retry_period=le.retry_period_seconds,
        )
    fence = elector.fence(_exit_lost_lease) if elector else None
    kube = KubeApi(api_client, config.field_manager, metrics, fence=fence, instance=identity)
    packages = PackageValidator(config, faults=faults)
    metrics.watch_digest_cache(lambda: (packages.cache.hits, packages.cache.misses))
    reconciler = Reconciler(config, kube, packages, metrics, faults=faults)
    registry = kopf.OperatorRegistry()
    register(registry, reconciler, config, scope, fence=kube.fence)

    if elector is not None:
        metrics.leader.set(0)
        # As PID 1 of its container a process ignores SIGTERM unless it handles it: a standby replica would
        # wait out the whole grace period on every rollout and uninstall. (kopf handles it once it runs.)
        previous = signal.signal(signal.SIGTERM, _stop_standby)
        with standby_health(config.health_port):
            elector.acquire()
        signal.signal(signal.SIGTERM, previous)
        elector.keep(on_lost=lambda: os._exit(EXIT_LOST_LEASE))
    metrics.leader.set(1)  # the Lease is held, or there is no election

    log.info("serving MLModels in %s", scope.describe())
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                settings=kopf_settings(config),
                clusterwide=scope.clusterwide,
                namespaces=scope.kopf_namespaces,
                standalone=True,
                identity=Identity(identity),
                liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
            )
        )
    finally:
        if elector is not None:
            elector.release()
    return 0


def _exit_lost_lease() -> NoReturn:
    """Before a write, this replica could not prove it still holds the Lease: end at once, without writing (the
    new leader may already be writing; exiting, not raising, so that kopf's own bookkeeping writes after a
    failed handler never happen either)."""
    log.error("cannot prove this replica still holds the lease: exiting before the write")
    logging.shutdown()
    os._exit(EXIT_LOST_LEASE)


def _stop_standby(signum: int, frame: object) -> None:
    log.info("stopping while standing by (signal %d)", signum)
    raise SystemExit(0)


@contextlib.contextmanager
def standby_health(port: int) -> Iterator[None]:
    """While a replica waits for the Lease it is alive: answer /healthz until kopf's own endpoint takes over."""
    if not port:
        yield
        return

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"standby\n")

        def log_message(self, *args: object) -> None:  # probes would flood the log
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    raise SystemExit(main())
