"""The CRD reference and the metrics list in docs/reference/ are generated from the CRD and the metrics
classes, and are up to date (run `make crds` after changing either)."""

from __future__ import annotations

from hack.docs import generated


def test_reference_pages_are_up_to_date() -> None:
    for path, content in generated().items():
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text() == content, f"{path.name} is stale: run `make crds`"


def test_every_spec_field_is_described() -> None:
    reference = generated()
    crd_page = next(text for path, text in reference.items() if path.name == "mlmodel.md")
    rows = [line for line in crd_page.splitlines() if line.startswith("| `spec.")]
    assert rows
    undocumented = [row.split("|")[1] for row in rows if not row.split("|")[5].strip()]
    assert not undocumented, f"fields without a description: {undocumented}"
