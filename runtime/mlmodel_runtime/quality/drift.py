"""Drift scores of the live inputs and outputs against the package's baseline, as Prometheus gauges.

The request path only samples: `observe` copies the last rows of a request's scored input and output tensors
into a deque bounded by rows (one random draw, a small copy, an append; no reference to the request's body is
kept). A background thread recomputes the scores every `interval_s` from the
last `window_rows` sampled rows and sets, per feature and per output column:

- `psi`: Population Stability Index over the baseline's quantile bins, sum((q - p) * ln(q / p)), computed as
  the symmetric Kullback-Leibler divergence with scipy.special.rel_entr (shares smoothed by EPSILON);
- `ks`: the two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp) of the window against the
  baseline's quantile sketch;
- `js`: the Jensen-Shannon distance of the binned shares (scipy.spatial.distance.jensenshannon, base 2, 0..1);

plus the window's row count. NaNs are left out of both distributions. Scores are NaN (absent from alerts) until
the window holds `min_rows`.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import ks_2samp

from mlmodel_runtime.backends.base import Array
from mlmodel_runtime.metrics import RuntimeMetrics
from mlmodel_runtime.quality.baseline import Baseline, Column, shares_of

log = logging.getLogger(__name__)

EPSILON = 1e-4
"""Smallest share a bin counts with in PSI (an empty bin would make it infinite)."""
SCORES = ("psi", "ks", "js")


@dataclass(frozen=True)
class Scores:
    psi: float
    ks: float
    js: float

    def as_dict(self) -> dict[str, float]:
        return {"psi": self.psi, "ks": self.ks, "js": self.js}


NO_SCORES = Scores(float("nan"), float("nan"), float("nan"))


def psi(expected: Array, actual: Array, epsilon: float = EPSILON) -> float:
    """Population Stability Index of two share vectors over the same bins."""
    p = np.clip(np.asarray(expected, dtype=np.float64), epsilon, None)
    q = np.clip(np.asarray(actual, dtype=np.float64), epsilon, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(rel_entr(q, p) + rel_entr(p, q)))


def score(column: Column, values: Array) -> Scores:
    """The three scores of one column's live `values` against its baseline (NaN when no value is finite)."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return NO_SCORES
    shares = shares_of(column.cuts, finite)
    expected = np.asarray(column.shares)
    return Scores(
        psi=psi(expected, shares),
        ks=float(ks_2samp(np.asarray(column.sketch), finite).statistic),
        js=float(jensenshannon(expected, shares, base=2)),
    )


class DriftMonitor:
    """Samples requests on the request path; scores them on its own thread."""

    def __init__(
        self,
        baseline: Baseline,
        metrics: RuntimeMetrics,
        model: str,
        revision: str,
        *,
        window_rows: int = 2000,
        sample_rate: float = 1.0,
        interval_s: float = 10.0,
        min_rows: int = 100,
    ) -> None:
        self.baseline = baseline
        self.window_rows = window_rows
        self.sample_rate = sample_rate
        self.interval_s = interval_s
        self.min_rows = min_rows
        self._samples: deque[tuple[int, dict[str, Array], dict[str, Array]]] = deque()
        self._rows = 0  # rows held in _samples
        self._input_names = tuple(sorted({c.tensor for c in baseline.features}))
        self._output_names = tuple(sorted({c.tensor for c in baseline.outputs}))
        self._random = random.Random(0).random
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        labels = (model, revision)
        self._features = {c.name: {s: metrics.feature_drift.labels(*labels, c.name, s) for s in SCORES}
                          for c in baseline.features}
        self._outputs = {c.name: {s: metrics.prediction_drift.labels(*labels, c.name, s) for s in SCORES}
                         for c in baseline.outputs}
        self._window = metrics.drift_window_rows.labels(*labels)
        self._set_all(None)

    # -- the request path ---------------------------------------------------------------------------

    def observe(self, inputs: Mapping[str, Array], outputs: Mapping[str, Array]) -> None:
        """Keep a copy of this request's last rows for the window (sampled; nothing computed here)."""
        if self.sample_rate < 1.0 and self._random() >= self.sample_rate:
            return
        # Hot path, kept to plain operations (about 2 us a request here): a tensor that owns its memory and fits
        # the window (a JSON-decoded one) is kept as it is; a view (into a binary request body or a merged batch)
        # or a larger one is copied, its last rows only. Baseline tensors are [-1, n] or [-1]: len() is the rows.
        keep = self.window_rows
        rows = 0
        ins: dict[str, Array] = {}
        for name in self._input_names:
            array = inputs.get(name)
            if array is not None:
                if array.base is not None or len(array) > keep:
                    array = np.array(array[-keep:])
                ins[name] = array
                rows = len(array)
        outs: dict[str, Array] = {}
        for name in self._output_names:
            array = outputs.get(name)
            if array is not None:
                outs[name] = array if array.base is None and len(array) <= keep else np.array(array[-keep:])
        samples = self._samples
        samples.append((rows, ins, outs))
        self._rows += rows
        while self._rows - samples[0][0] >= keep:  # the oldest request is not needed any more
            self._rows -= samples.popleft()[0]

    # -- the scoring thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drift", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.update()
            except Exception:  # a scoring bug must never take the server down
                log.exception("drift scores could not be computed")

    def window(self) -> tuple[dict[str, Array], dict[str, Array]]:
        """The last `window_rows` rows of each tensor the baseline scores, from the sampled requests."""
        samples = list(self._samples)  # a snapshot (atomic under the GIL): requests keep appending meanwhile
        found: tuple[dict[str, Array], dict[str, Array]] = ({}, {})
        for side, names in ((0, self._input_names), (1, self._output_names)):
            for name in names:
                held = [s[2] if side else s[1] for s in samples]
                parts = [tensors[name] for tensors in held if name in tensors]
                if parts:
                    rows = np.concatenate([p.reshape(p.shape[0], -1) if p.ndim else p.reshape(1, 1)
                                           for p in parts])[-self.window_rows:]
                    found[side][name] = rows
        return found

    def update(self) -> int:
        """Recompute every score from the window; returns the window's rows."""
        inputs, outputs = self.window()
        rows = max((a.shape[0] for a in inputs.values()), default=0)
        self._window.set(rows)
        if rows < self.min_rows:
            self._set_all(None)
            return rows
        for columns, tensors, gauges in ((self.baseline.features, inputs, self._features),
                                         (self.baseline.outputs, outputs, self._outputs)):
            for column in columns:
                tensor = tensors.get(column.tensor)
                result = NO_SCORES if tensor is None else score(column, _column(tensor, column))
                for name, value in result.as_dict().items():
                    gauges[column.name][name].set(value)
        return rows

    def _set_all(self, value: float | None) -> None:
        for gauges in (*self._features.values(), *self._outputs.values()):
            for gauge in gauges.values():
                gauge.set(float("nan") if value is None else value)


def _column(rows: Array, column: Column) -> Array:
    values = rows[:, column.index if column.index is not None else 0]
    return np.asarray(values, dtype=np.float64)
