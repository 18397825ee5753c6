"""Run the server: uvicorn (uvloop + httptools) on the app, model loading in the background,
metrics on their own port, and a graceful drain on SIGTERM.

Start-up order: the listener answers at once (live 200, startup/ready 503) while a thread
fetches, verifies, loads and warms up the model; then startup and readiness turn 200. A fetch
or load failure stops the server with the contract's exit code.

SIGTERM (or SIGINT): readiness drops at once; uvicorn stops accepting connections, lets every
request it has accepted finish (up to graceful_shutdown_s), then the inference worker ends and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server

from mlmodel_runtime.backends.loading import LoadedModel, load_model
from mlmodel_runtime.fetch import (
    EXIT_FAILED,
    EXIT_OK,
    exit_code_for,
    fetch,
    log_failure,
    write_termination_message,
)
from mlmodel_runtime.metrics import RuntimeMetrics
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlmodel_runtime.quality.drift import DriftMonitor
    from mlmodel_runtime.server.auth import Authenticator
    from mlmodel_runtime.server.ratelimit import RateLimiter
    from mlmodel_runtime.server.shadow import Shadow, ShadowConfig

log = logging.getLogger(__name__)


def start_loading(load: Callable[[], LoadedModel]) -> Future[LoadedModel]:
    """Run `load` in a thread now; the future holds the model or the failure."""
    future: Future[LoadedModel] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(load())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="model-loader", daemon=True).start()
    return future


def model_loader(
    settings: ServeSettings, metrics_start: float, on_loaded: Callable[[Path, LoadedModel], None] | None = None
) -> Callable[[], LoadedModel]:
    def load() -> LoadedModel:
        package = fetch(settings)
        assert package.path is not None
        warmup_rows = (1, settings.max_batch_size) if settings.batching else (1,)
        model = load_model(
            Path(package.path),
            served_name=settings.model_name,
            format_override=package.format.value,
            allow_pickle=settings.allow_pickle,
            device=settings.device,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            warmup_rows=warmup_rows,
        )
        run_package_examples(Path(package.path), model)
        if on_loaded is not None:
            on_loaded(Path(package.path), model)
        # the gauge reports download + verify + load + warm-up, from process start
        return LoadedModel(
            model.name,
            model.version,
            model.format,
            model.signature,
            model.backend,
            time.monotonic() - metrics_start,
        )

    return load


def run_package_examples(model_dir: Path, model: LoadedModel) -> None:
    """The package's examples, after warm-up and before the model is attached (so before started/ready):
    ExamplesMismatch (exit code 17) when the model answers them wrongly."""
    from mlmodel_runtime.quality.examples import check_examples, load_package_examples

    examples = load_package_examples(model_dir, model.signature)
    if examples is None:
        return
    started = time.perf_counter()
    passed = check_examples(model.backend, examples)
    log.info("examples passed", extra={"examples": passed, "examples_s": round(time.perf_counter() - started, 3)})


def start_drift(
    model_dir: Path, model: LoadedModel, settings: ServeSettings, metrics: RuntimeMetrics
) -> DriftMonitor | None:
    """The drift monitor of the package's baseline.json, started; None without one (or with drift off)."""
    from mlmodel_runtime.package import MetadataInvalid
    from mlmodel_runtime.package.models import BASELINE_FILE
    from mlmodel_runtime.quality.baseline import parse_baseline
    from mlmodel_runtime.quality.drift import DriftMonitor

    path = model_dir / BASELINE_FILE
    if not settings.drift or not path.is_file():
        return None
    try:
        baseline = parse_baseline(path.read_bytes())
    except ValueError as exc:
        raise MetadataInvalid(str(exc)) from None
    monitor = DriftMonitor(
        baseline, metrics, settings.model_name, settings.model_revision,
        window_rows=settings.drift_window_rows, sample_rate=settings.drift_sample_rate,
        interval_s=settings.drift_interval_s,
    )
    monitor.start()
    log.info("drift scoring", extra={"features": len(baseline.features), "outputs": len(baseline.outputs),
                                      "window_rows": settings.drift_window_rows})
    return monitor


def start_shadow(settings: ServeSettings, metrics: RuntimeMetrics) -> Shadow | None:
    """Shadow traffic to a candidate revision, when MLMODEL_SHADOW_URL and a share are set."""
    if not settings.shadow_url or settings.shadow_percent <= 0:
        return None
    from mlmodel_runtime.server.shadow import Shadow, ShadowConfig, Tolerance

    config = ShadowConfig(
        url=settings.shadow_url, candidate=settings.shadow_revision, percent=settings.shadow_percent,
        tolerance=Tolerance(settings.shadow_atol, settings.shadow_rtol),
        per_output={name: Tolerance(*tol) for name, tol in settings.shadow_output_tolerances.items()},
        max_inflight=settings.shadow_max_inflight, timeout_s=settings.shadow_timeout_s,
    )
    log.info("shadow traffic", extra={"url": settings.shadow_url, "percent": settings.shadow_percent})
    return Shadow(config, settings.model_name, settings.model_revision, metrics.shadow_requests)


def follow_shadow_file(settings: ServeSettings, data_plane: DataPlane, metrics: RuntimeMetrics
                       ) -> asyncio.Task[None] | None:
    """Follow MLMODEL_SHADOW_FILE (server/shadow_file.py): each change replaces the data plane's shadow."""
    if not settings.shadow_file:
        return None
    from mlmodel_runtime.server.shadow import Shadow
    from mlmodel_runtime.server.shadow_file import follow, parse

    def read(text: str) -> ShadowConfig | None:
        return parse(text, settings.model_revision, settings.shadow_max_inflight, settings.shadow_timeout_s)

    def apply(config: ShadowConfig | None) -> None:
        old = data_plane.shadow
        data_plane.shadow = (Shadow(config, settings.model_name, settings.model_revision, metrics.shadow_requests)
                             if config is not None else None)
        metrics.shadow_percent.labels(settings.model_name, settings.model_revision).set(
            config.percent if config is not None else 0)
        if old is not None:
            closing = asyncio.get_running_loop().create_task(old.close())
            _background.add(closing)
            closing.add_done_callback(_background.discard)

    return asyncio.get_running_loop().create_task(follow(Path(settings.shadow_file), read, apply))


_background: set[asyncio.Task[None]] = set()  # old shadows closing (a task needs a reference until done)


def rate_limiter(settings: ServeSettings) -> RateLimiter | None:
    """The per-client rate limit of MLMODEL_RATE_LIMIT_RPS (and _BURST), None when it is 0."""
    if settings.rate_limit_rps <= 0:
        return None
    from mlmodel_runtime.server.ratelimit import RateLimiter

    burst = settings.rate_limit_burst or max(1, math.ceil(settings.rate_limit_rps))
    log.info("rate limit", extra={"rps": settings.rate_limit_rps, "burst": burst,
                                  "max_clients": settings.rate_limit_max_clients})
    return RateLimiter(settings.rate_limit_rps, burst, settings.rate_limit_max_clients)


def authenticator(settings: ServeSettings) -> Authenticator | None:
    """The token check of MLMODEL_AUTH, None when it is `none`."""
    if settings.auth == "none":
        return None
    from mlmodel_runtime.server.auth import ApiKeys, KubeReviews, TokenReviewer

    log.info("authentication", extra={"auth": settings.auth})
    if settings.auth == "apikeys":
        return ApiKeys(Path(settings.auth_api_keys_dir))
    if not settings.auth_namespace:
        raise ValueError("MLMODEL_AUTH=kubernetes needs MLMODEL_AUTH_NAMESPACE (the MLModel's namespace)")
    return TokenReviewer(
        KubeReviews(settings.auth_kubeconfig), settings.auth_namespace, settings.model_name,
        verb=settings.auth_verb, ttl_s=settings.auth_cache_ttl_s, max_entries=settings.auth_cache_size,
    )


def freeze_heap() -> None:
    """Keep the garbage collector off the objects that live as long as the process.

    After imports and model loading the heap holds 10^5-10^6 long-lived objects; a full
    collection walks all of them (25 ms with onnxruntime, far more with torch) and, as it comes
    every so often under load, it shows up directly in p99 latency. Frozen objects are never
    scanned again; what requests allocate is collected as usual.
    """
    gc.collect()
    gc.freeze()


def serve(settings: ServeSettings) -> int:
    """Serve until SIGTERM; returns the process exit code."""
    started = time.monotonic()
    registry = CollectorRegistry()
    families = RuntimeMetrics(registry)
    metrics = families.for_model(settings.model_name, settings.model_revision)
    data_plane = DataPlane(
        settings.model_name,
        metrics,
        max_batch_size=settings.max_batch_size,
        max_batch_delay_s=settings.max_batch_delay_ms / 1000.0,
        max_queue_size=settings.max_queue_size,
    )
    # The download starts before FastAPI and uvicorn are even imported (~0.4 s of start-up).
    def watch_drift(model_dir: Path, model: LoadedModel) -> None:
        data_plane.drift = start_drift(model_dir, model, settings, families)

    loading = start_loading(model_loader(settings, started, watch_drift))
    from mlmodel_runtime.server.app import create_app
    from mlmodel_runtime.server.listener import DrainingServer, listener_config

    exit_code = EXIT_OK
    server: DrainingServer | None = None

    def failed(exc: BaseException) -> None:
        nonlocal exit_code
        log_failure("model could not be served", exc)
        write_termination_message(settings.termination_message_path, exc)
        exit_code = exit_code_for(exc)
        if server is not None:
            server.should_exit = True

    data_plane.shadow = start_shadow(settings, families)
    data_plane.rate_limit = rate_limiter(settings)
    try:
        data_plane.auth = authenticator(settings)
    except Exception as exc:  # a missing namespace, no in-cluster config or an unreadable kubeconfig
        log_failure("cannot set up authentication", exc)
        return EXIT_FAILED

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal exit_code
        grpc_server = None
        if settings.grpc_port:
            from mlmodel_runtime.server.grpc_service import start_grpc_server

            try:
                grpc_server, _ = await start_grpc_server(
                    data_plane, settings.host, settings.grpc_port, settings.max_request_bytes, app.state.request_budget
                )
            except RuntimeError as exc:
                log_failure(f"cannot serve gRPC on {settings.host}:{settings.grpc_port}", exc)
                exit_code = EXIT_FAILED
                raise
        data_plane.attach_when_loaded(loading, failed, freeze_heap)
        follower = follow_shadow_file(settings, data_plane, families)
        yield
        if follower is not None:
            follower.cancel()
        if grpc_server is not None:  # after the REST listener drained: gRPC calls in flight finish too
            await grpc_server.stop(settings.graceful_shutdown_s)
        data_plane.stop()
        if data_plane.shadow is not None:
            await data_plane.shadow.close()

    app = create_app(settings, data_plane, registry=registry, lifespan=lifespan)
    server = DrainingServer(listener_config(settings, app), data_plane.start_draining)
    metrics_server = None
    if settings.metrics_port:
        try:
            metrics_server, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
        except OSError as exc:
            log_failure(f"cannot serve metrics on {settings.host}:{settings.metrics_port}", exc)
            return EXIT_FAILED
    log.info(
        "starting",
        extra={"host": settings.host, "port": settings.port, "metrics_port": settings.metrics_port,
               "grpc_port": settings.grpc_port},
    )
    try:
        server.run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    answered = {str(code): int(n) for code, n in metrics.request_counts().items()}
    log.info("stopped", extra={"exit_code": exit_code, "requests_by_code": answered})
    return exit_code
