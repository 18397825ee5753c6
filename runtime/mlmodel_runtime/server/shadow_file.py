"""Shadow traffic set while the runtime runs: the operator writes the canary's shadow settings into a ConfigMap
mounted at MLMODEL_SHADOW_FILE, and the runtime follows the file (read again every second; the kubelet updates
the mounted copy), so that the stable revision's pods start and stop copying requests to a candidate without a
restart. An absent or empty file is off; a file naming this runtime's own revision as the candidate (the
candidate's pods mount the same ConfigMap) is off too.

The file (JSON): {"url": "http://m-canary.ns.svc:8080", "candidate": "2", "percent": 10, "atol": 1e-5,
"rtol": 1e-3, "outputs": {"name": [atol, rtol]}}.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import orjson
from pydantic import BaseModel, Field, ValidationError

from mlmodel_runtime.server.shadow import ShadowConfig, Tolerance

log = logging.getLogger(__name__)


class ShadowFile(BaseModel):
    url: str = Field(pattern=r"^http://[^\s/]+(/\S*)?$")
    candidate: str
    percent: float = Field(gt=0, le=100)
    atol: float = Field(default=1e-5, ge=0)
    rtol: float = Field(default=1e-3, ge=0)
    outputs: dict[str, tuple[float, float]] = Field(default_factory=dict)


def parse(text: str, own_revision: str, max_inflight: int = 16, timeout_s: float = 5.0) -> ShadowConfig | None:
    """The shadow settings in `text`; None when it is empty or names this runtime's own revision. Raises
    ValueError when it is not a valid shadow file."""
    if not text.strip():
        return None
    try:
        found = ShadowFile.model_validate(orjson.loads(text))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"not a shadow file: {exc}") from exc
    if found.candidate == own_revision:
        return None
    return ShadowConfig(url=found.url, candidate=found.candidate, percent=found.percent,
                        tolerance=Tolerance(found.atol, found.rtol),
                        per_output={name: Tolerance(*tol) for name, tol in found.outputs.items()},
                        max_inflight=max_inflight, timeout_s=timeout_s)


def _read(path: Path) -> str:
    """The file's text; empty when it is absent (a small local file: read on the event loop, in microseconds)."""
    try:
        return path.read_text() if path.is_file() else ""
    except OSError:
        return ""


async def follow(path: Path, read: Callable[[str], ShadowConfig | None],
                 apply: Callable[[ShadowConfig | None], object], interval_s: float = 1.0) -> None:
    """Read `path` every `interval_s` and `apply` what it says when that changes (a bad file keeps what runs)."""
    last: str | None = None
    while True:
        text = _read(path)
        if text != last:
            last = text
            try:
                config = read(text)
            except ValueError as exc:
                log.warning("shadow file %s ignored: %s", path, exc)
            else:
                log.info("shadow traffic %s", f"to {config.url} at {config.percent:g}%" if config else "off")
                apply(config)
        await asyncio.sleep(interval_s)  # poll: the kubelet replaces the mounted file, no notification reaches us
