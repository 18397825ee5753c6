"""The drift baseline (quality.baseline and the scores of quality.drift, pure): quantile bins with equal shares;
NaNs counted apart and left out of the bins; a constant column gets below/equal/above bins, and a live value off
the constant scores as drift; fewer rows than bins gives fewer bins and a warning; CSV with a header names the
features, .npy and .npz do too by position; files that do not fit the model's input, a model that is not
tabular and Parquet without pyarrow are refused with the reason; scores are 0 for the baseline itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from mlmodel_runtime.backends.base import Signature, TensorSpec
from mlmodel_runtime.quality.baseline import BaselineInvalid, compute_baseline, reference
from mlmodel_runtime.quality.drift import psi, score

TABULAR = Signature((TensorSpec("input", "FP32", (-1, 3)),), (TensorSpec("output", "FP32", (-1, 2)),))


def test_equal_frequency_bins_and_a_zero_score_for_the_baseline_itself() -> None:
    values = np.random.default_rng(0).standard_normal(10_000)
    column = reference("x", "input", 0, values, bins=10)
    assert len(column.cuts) == 9
    np.testing.assert_allclose(column.shares, 0.1, atol=1e-3)
    same = score(column, values)
    assert same.psi < 1e-3
    assert same.ks < 0.01
    assert same.js < 0.01


def test_nans_are_counted_apart() -> None:
    values = np.random.default_rng(0).standard_normal(1000)
    values[::4] = np.nan
    column = reference("x", "input", 0, values, bins=10)
    assert column.nan == 0.25
    assert abs(sum(column.shares) - 1) < 1e-9
    assert score(column, values).psi < 1e-3  # NaNs in the live data are left out the same way
    with pytest.raises(BaselineInvalid, match="no values that are not NaN"):
        reference("x", "input", 0, np.full(10, np.nan), bins=10)


def test_a_constant_column_gets_below_equal_above() -> None:
    column = reference("c", "input", 0, np.full(500, 3.0), bins=10)
    assert column.shares == (0.0, 1.0, 0.0)
    assert score(column, np.full(100, 3.0)).psi == 0.0
    assert score(column, np.full(100, 2.0)).psi > 1  # below the constant: another bin
    assert score(column, np.full(100, 4.0)).psi > 1


def test_fewer_rows_than_bins(tmp_path: Path) -> None:
    np.save(tmp_path / "few.npy", np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3.0, 5.0, 9.0]]))
    baseline, warnings = compute_baseline(tmp_path / "few.npy", TABULAR, None, bins=10)
    assert all(len(c.cuts) <= 3 for c in baseline.features)
    assert any("3 rows, fewer than the 10 bins" in w for w in warnings)
    assert [c.name for c in baseline.features] == ["input[0]", "input[1]", "input[2]"]


def test_csv_header_names_the_features(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("amount,age,score\n1,2,3\n4,,6\n7,8,9\n")
    baseline, _ = compute_baseline(tmp_path / "t.csv", TABULAR, None, bins=2)
    assert [c.name for c in baseline.features] == ["amount", "age", "score"]
    assert baseline.features[1].nan == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("two.csv", "a,b\n1,2\n", "rows of [2] values; the input 'input' [-1, 3] needs 3 per row"),
        ("text.csv", "a,b,c\n1,x,2\n", "not numbers"),
        ("rows.txt", "1,2,3\n", "a baseline is .csv, .npy, .npz or .parquet"),
        ("empty.csv", "a,b,c\n", "no rows"),
    ],
)
def test_files_that_do_not_fit_are_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(BaselineInvalid, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute_baseline(tmp_path / name, TABULAR, None)


def test_non_tabular_models_are_refused(tmp_path: Path) -> None:
    images = Signature((TensorSpec("pixels", "FP32", (-1, 3, 224, 224)),), (TensorSpec("logits", "FP32", (-1, 10)),))
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    with pytest.raises(BaselineInvalid, match="numeric tabular tensors"):
        compute_baseline(tmp_path / "x.npy", images, None)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(BaselineInvalid, match="reading Parquet needs pyarrow"):
        compute_baseline(tmp_path / "t.parquet", TABULAR, None)


def test_psi_of_a_known_shift() -> None:
    # Shares moving from (0.5, 0.5) to (0.9, 0.1): sum((q - p) * ln(q / p)) = 0.4 ln(1.8) + 0.4 ln(5) = 0.4 ln(9)
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(0.4 * np.log(9))


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed (extra: parquet)")
def test_parquet_columns_name_the_features(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    pq.write_table(pa.table({"amount": rng.standard_normal(300), "age": rng.integers(18, 90, 300),
                             "score": [None if i % 10 == 0 else float(i) for i in range(300)]}),
                   tmp_path / "t.parquet")
    baseline, _ = compute_baseline(tmp_path / "t.parquet", TABULAR, None)
    assert [c.name for c in baseline.features] == ["amount", "age", "score"]
    assert baseline.features[2].nan == pytest.approx(0.1)  # Parquet nulls are NaNs
