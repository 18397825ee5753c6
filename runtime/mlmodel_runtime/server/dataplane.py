"""The data plane: model state, health, metadata and inference, with no HTTP in it.

Endpoints (server/endpoints.py) only read bodies and headers and write responses; everything
the protocol means happens here. The model arrives from a loader running in a thread; until then
(and after a failed load) the model is not ready, and while draining it stops reporting ready but
still serves what reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from mlmodel_runtime.backends.base import Array, Signature
from mlmodel_runtime.backends.loading import LoadedModel
from mlmodel_runtime.batching import Batcher, QueueFullError
from mlmodel_runtime.metrics import ModelMetrics
from mlmodel_runtime.server.admission import Reservation
from mlmodel_runtime.server.codec import (
    EncodedResponse,
    InferRequest,
    decode_request,
    encode_response,
    request_bytes,
)
from mlmodel_runtime.server.errors import ModelNotFound, ModelNotReady, QueueFull, RateLimited
from mlmodel_runtime.server.wire import quote

if TYPE_CHECKING:
    from mlmodel_runtime.quality.drift import DriftMonitor
    from mlmodel_runtime.server.auth import Authenticator
    from mlmodel_runtime.server.ratelimit import RateLimiter
    from mlmodel_runtime.server.shadow import Shadow

log = logging.getLogger(__name__)

SERVER_NAME = "mlmodel-runtime"
_RESIZE_ABOVE = 1 << 20
"""A request's reservation follows its tensors and response only above this (small ones keep theirs)."""
EXTENSIONS = ("binary_tensor_data",)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlmodel-operator")
    except PackageNotFoundError:
        return "0.0.0"


class DataPlane:
    """Serves one model under `model_name`."""

    def __init__(
        self,
        model_name: str,
        metrics: ModelMetrics,
        *,
        max_batch_size: int = 0,
        max_batch_delay_s: float = 0.0,
        max_queue_size: int = 256,
    ) -> None:
        self.model_name = model_name
        self.metrics = metrics
        self._batch = (max_batch_size, max_batch_delay_s, max_queue_size)
        self._model: LoadedModel | None = None
        self._batcher: Batcher | None = None
        self._draining = False
        self.failure: BaseException | None = None
        self.drift: DriftMonitor | None = None  # set by the loader before the model is attached
        self.shadow: Shadow | None = None  # copies a share of requests to a candidate revision (server/shadow.py)
        self.rate_limit: RateLimiter | None = None  # per-client token buckets (server/ratelimit.py)
        self.auth: Authenticator | None = None  # bearer tokens on inference and metadata (server/auth.py)
        self._server_metadata = {"name": SERVER_NAME, "version": _version(), "extensions": list(EXTENSIONS)}

    # ---- lifecycle

    def attach(self, model: LoadedModel) -> None:
        """Start serving `model` (call on the event loop's thread)."""
        max_batch_size, delay, queue_size = self._batch
        if max_batch_size > 1 and not model.signature.batchable:
            log.warning("dynamic batching is off: not every tensor of the signature has a variable first dimension")
            max_batch_size = 0
        batcher = Batcher(
            model.backend.predict,
            self.metrics,
            max_batch_size=max_batch_size,
            max_delay_s=delay,
            max_queue_size=queue_size,
        )
        batcher.start()
        self._batcher = batcher
        self._model = model
        self.metrics.set_model_info(model.format, model.backend.device)
        self.metrics.load_duration.set(model.load_seconds)
        log.info("model ready", extra={"batching": batcher.batching, "max_batch_size": max_batch_size})

    def attach_when_loaded(
        self,
        loading: Future[LoadedModel],
        on_failure: Callable[[BaseException], None],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """When the loader's future is done: attach its model on this loop (then `on_ready`), or report."""
        loop = asyncio.get_running_loop()

        def finish(done: Future[LoadedModel]) -> None:
            exc = done.exception()
            if exc is not None:
                self.failure = exc
                on_failure(exc)
                return
            self.attach(done.result())
            if on_ready is not None:
                on_ready()

        loading.add_done_callback(lambda done: loop.call_soon_threadsafe(finish, done))

    def start_draining(self) -> None:
        """Stop reporting ready (SIGTERM); requests that reach us are still served."""
        if not self._draining:
            self._draining = True
            log.info("draining: readiness is now false")

    def stop(self) -> None:
        """After the last request: end the inference worker."""
        if self._batcher is not None:
            self._batcher.stop()
        if self.drift is not None:
            self.drift.stop()

    # ---- health and metadata

    @property
    def draining(self) -> bool:
        return self._draining

    def started(self) -> bool:
        return self._model is not None

    def ready(self) -> bool:
        return self._model is not None and not self._draining

    def server_metadata(self) -> dict[str, Any]:
        return self._server_metadata

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self._lookup(name, version)
        return self.ready()

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        model = self._require(name, version)
        return {
            "name": self.model_name,
            "versions": [model.version],
            "platform": model.backend.platform,
            "inputs": [t.as_json() for t in model.signature.inputs],
            "outputs": [t.as_json() for t in model.signature.outputs],
        }

    # ---- inference

    async def identify(self, authorization: str | bytes | None) -> str | None:
        """The caller's identity from its Authorization header (401/403/503 errors), None with auth off."""
        if self.auth is None:
            return None
        from mlmodel_runtime.server.auth import bearer_token

        return await self.auth.identify(bearer_token(authorization))

    def admit(self, client: str, protocol: str) -> None:
        """Take a token of `client`'s rate limit (both protocols share it), or raise RateLimited (counted)."""
        limiter = self.rate_limit
        if limiter is not None:
            try:
                limiter.admit(client)
            except RateLimited:
                self.metrics.rate_limited[protocol].inc()
                raise

    def check(self, name: str, version: str | None) -> None:
        """Refuse an infer request before its body is read: unknown model (404), not ready or busy (503)."""
        self._require(name, version)
        batcher = self._batcher
        if batcher is not None and batcher.full():
            raise self._busy(batcher)

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes | bytearray,
        header_length: int | None,
        reservation: Reservation | None = None,
    ) -> EncodedResponse:
        """Decode, run and encode one request; `reservation` then holds what it keeps in memory."""
        model = self._require(name, version)
        batcher = self._batcher
        assert batcher is not None
        if batcher.full():  # refuse before spending time on the body
            raise self._busy(batcher)
        request = decode_request(body, header_length, model.signature)
        if reservation is not None and reservation.held > _RESIZE_ABOVE:
            # binary tensors are views of the body; JSON ones own their memory and the body goes
            reservation.resize(len(body) if header_length is not None else request_bytes(request))
        del body
        outputs = await self._run(batcher, request)
        response = encode_response(
            self.model_name,
            model.version,
            request.id,
            request.outputs,
            [outputs[n] for n in request.outputs],
            request.binary,
        )
        if reservation is not None and max(reservation.held, len(response.body)) > _RESIZE_ABOVE:
            reservation.resize(len(response.body))
        return response

    async def predict(
        self, name: str, version: str | None, decode: Callable[[Signature], InferRequest]
    ) -> tuple[str, InferRequest, dict[str, Array]]:
        """Another transport's request (gRPC): `decode` turns it into an InferRequest for the model's
        signature; returns the model version, the request and its outputs. Same checks, batcher and
        queue bound as `infer`."""
        model = self._require(name, version)
        batcher = self._batcher
        assert batcher is not None
        if batcher.full():
            raise self._busy(batcher)
        request = decode(model.signature)
        return model.version, request, await self._run(batcher, request)

    async def _run(self, batcher: Batcher, request: InferRequest) -> dict[str, Array]:
        """Queue the request for the model; then drift and shadow see its inputs and outputs."""
        try:
            future = batcher.submit(request.inputs, request.outputs, request.rows)
        except QueueFullError:
            raise self._busy(batcher) from None
        outputs = await future
        if self.drift is not None:
            self.drift.observe(request.inputs, outputs)
        if self.shadow is not None:
            self.shadow.offer(request.inputs, {n: outputs[n] for n in request.outputs})
        return outputs

    def _busy(self, batcher: Batcher) -> QueueFull:
        return QueueFull(
            f"model '{self.model_name}' is busy: {batcher.max_queue_size} requests are queued already; retry shortly"
        )

    def _lookup(self, name: str, version: str | None) -> LoadedModel | None:
        if name != self.model_name:
            raise ModelNotFound(f"model {quote(name)} is not served here (this server serves '{self.model_name}')")
        model = self._model
        if version and model is not None and version != model.version:
            raise ModelNotFound(f"model '{name}' has no version {quote(version)} (serving version '{model.version}')")
        return model

    def _require(self, name: str, version: str | None) -> LoadedModel:
        model = self._lookup(name, version)
        if model is None:
            reason = f"failed to load: {self.failure}" if self.failure else "is loading"
            raise ModelNotReady(f"model '{name}' {reason}")
        return model
