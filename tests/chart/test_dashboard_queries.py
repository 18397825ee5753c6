"""The chart's Grafana dashboard: every panel's PromQL parses (`promtool check rules` on a recording rule per
query, the dashboard's variables replaced by `.*`), each query names only metrics the operator or the runtime
exports, drift has its panels (PSI per feature and per output, KS, the window's rows), and so do canaries (the
configured and achieved weight, analysis windows by verdict and outcomes)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "mlmodel-operator" / "files" / "dashboard.json"
PROMTOOL = shutil.which("promtool")


def _queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def _exported() -> set[str]:
    names: set[str] = set()
    for cls in (OperatorMetrics, RuntimeMetrics):
        registry = CollectorRegistry()
        cls(registry)
        for family in registry.collect():
            names.update(s.name for s in family.samples)
            names.add(family.name + ("_total" if family.type == "counter" else ""))
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is missing: `make tools` installs it (Debian prometheus)")
def test_every_query_parses(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", expr)}
             for i, (_, expr) in enumerate(_queries())]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    res = subprocess.run([str(PROMTOOL), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_queries_name_exported_metrics_and_drift_has_panels() -> None:
    exported = _exported()
    for title, expr in _queries():
        used = set(re.findall(r"\b(mlmodel_(?:operator|runtime)_[a-z_]+)", expr))
        assert used <= exported, f"{title}: {sorted(used - exported)} is not exported"
    drift = {title: expr for title, expr in _queries() if "drift" in title.lower()}
    assert any("feature_drift" in e and 'score="psi"' in e for e in drift.values()), drift
    assert any("prediction_drift" in e and 'score="psi"' in e for e in drift.values()), drift
    assert any("feature_drift" in e and 'score="ks"' in e for e in drift.values()), drift
    assert any("drift_window_rows" in e for e in drift.values()), drift


def test_canaries_have_panels() -> None:
    canary = [expr for title, expr in _queries() if "canary" in title.lower()]
    assert any("canary_weight_percent" in e for e in canary), canary
    assert any("canary_analysis_windows_total" in e and "verdict" in e for e in canary), canary
    assert any("canary_outcomes_total" in e for e in canary), canary
