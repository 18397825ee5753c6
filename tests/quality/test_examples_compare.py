"""How an output is compared with the expected one (quality.examples.compare, pure), as a table: within the
absolute and the relative tolerance, just beyond either, NaN against NaN (equal) and against a number (the
worst difference), integers, BOOL and BYTES exactly, a shape that differs; the largest difference is the one
reported, with its index."""

from __future__ import annotations

import numpy as np
import pytest
from mlmodel_runtime.quality.examples import Tolerance, compare

F = np.float32


@pytest.mark.parametrize(
    ("expected", "actual", "tol", "problem"),
    [
        (np.array([1.0, 2.0], F), np.array([1.0, 2.0], F), Tolerance(0, 0), None),
        (np.array([1.0, 100.0], F), np.array([1.05, 100.0], F), Tolerance(0.1, 0), None),
        (np.array([1.0, 100.0], F), np.array([1.0, 101.0], F), Tolerance(0, 0.011), None),
        (np.array([1.0, 100.0], F), np.array([1.0, 102.0], F), Tolerance(0, 0.01), "largest difference 2 at [1]"),
        (np.array([1.0, 100.0], F), np.array([1.3, 100.5], F), Tolerance(0.1, 0),
         "largest difference 0.5 at [1] (expected 100, got 100.5"),
        (np.array([np.nan, 1.0], F), np.array([np.nan, 1.0], F), Tolerance(0, 0), None),
        (np.array([0.0, 1.0], F), np.array([np.nan, 1.0], F), Tolerance(1, 1), "largest difference inf at [0]"),
        (np.array([[3, 4]], np.int64), np.array([[3, 5]], np.int64), Tolerance(0, 0), "at [0, 1]"),
        (np.array([[3, 4]], np.int64), np.array([[3, 5]], np.int64), Tolerance(1, 0), None),
        (np.array([True, False]), np.array([True, True]), Tolerance(1, 1), "differs at [1]"),
        (np.array([b"a", b"b"], object), np.array([b"a", b"b"], object), Tolerance(), None),
        (np.array([b"a", b"b"], object), np.array([b"a", b"c"], object), Tolerance(), "differs at [1]"),
        (np.zeros((2, 2), F), np.zeros((2, 3), F), Tolerance(), "shape [2, 3], expected [2, 2]"),
    ],
    ids=["equal", "abs", "rel", "beyond-rel", "worst-reported", "nan-nan", "nan-number", "int", "int-abs",
         "bool", "bytes", "bytes-differ", "shape"],
)
def test_compare(expected: np.ndarray, actual: np.ndarray, tol: Tolerance, problem: str | None) -> None:
    found = compare("e", "out", expected, actual, tol)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.message.startswith("example 'e' output 'out': ")
        assert problem in found.message, found.message
