"""`python -m mlmodel_operator --config FILE [--namespace NS ...]`: run the operator in the foreground
against the current kubeconfig (KUBECONFIG) or, inside a pod, the service account."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import kopf
from prometheus_client import CollectorRegistry, start_http_server

from mlmodel_operator.adapters import KubeApi, PackageValidator, connect
from mlmodel_operator.config import ConfigError, OperatorConfig, load_config
from mlmodel_operator.handlers import register
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler

log = logging.getLogger("mlmodel_operator")

# kopf's own bookkeeping goes under our API group; progress and the diff base in annotations
# (a structural schema would prune kopf's status fields).
STORAGE_PREFIX = "serving.mlmodel.io"


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # the reconcile posts the events worth reading
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/kopf-finalizer"  # needed by kopf's timers
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.execution.max_workers = config.max_workers
    settings.peering.name = config.peering.name
    settings.peering.priority = config.peering.priority
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
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mlmodel-operator: {exc}", file=sys.stderr)
        return 2
    namespaces = args.namespace or config.watch.namespaces

    metrics = OperatorMetrics(CollectorRegistry())
    if config.metrics_port:
        start_http_server(config.metrics_port, registry=metrics.registry)
    kube = KubeApi(connect(args.kubeconfig), config.field_manager, metrics)
    reconciler = Reconciler(config, kube, PackageValidator(config), metrics)
    registry = kopf.OperatorRegistry()
    register(registry, reconciler, config)

    log.info("serving MLModels in %s", ", ".join(namespaces) if namespaces else "all namespaces")
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(config),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=not config.peering.enabled,
            liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
