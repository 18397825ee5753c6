"""Shadow traffic between real runtime processes: the stable runtime copies a share of its requests to a
candidate and compares the answers (agree with the same weights, disagree with other weights), never returns
the candidate's answer, and a dead or slow candidate neither fails nor slows the stable answers (the copies
are counted as errors or dropped). The request encoding and the comparison, as tables."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlmodel_runtime.server.shadow import ShadowConfig, Tolerance, agrees, decode_response, encode_request

from tests.runtime.conftest import EXTRA_FILES, Serve
from tests.runtime.models import binary_body
from tests.runtime.process import RuntimeServer
from tests.support.packages import MLP_INPUT, build_package, make_onnx_mlp, mlp_signature
from tests.support.ports import free_port
from tests.support.waiting import wait_for

SHADOW = "mlmodel_runtime_shadow_requests_total"


def _mlp(root: Path, seed: int) -> Path:
    model = make_onnx_mlp(root / f"src-{seed}" / "mlp.onnx", seed=seed)
    signature: dict[str, Any] = mlp_signature()
    return build_package(root / f"pkg-{seed}", model, name="mlp", version="1", format="onnx",
                         extra_files=EXTRA_FILES, **signature)



def _send(server: RuntimeServer, count: int) -> list[bytes]:
    answers = []
    for i in range(count):
        body, headers = binary_body({MLP_INPUT: np.random.default_rng(i).normal(size=(2, 4)).astype(np.float32)})
        response = server.infer(body, headers)
        assert response.status_code == 200, response.text
        answers.append(response.content)
    return answers


def _shadowed(stable: RuntimeServer, result: str) -> float:
    return stable.metric(SHADOW, model="mlp", revision="1", candidate="2", result=result)


def _shadow_settings(url: str, percent: float, **more: object) -> dict[str, object]:
    return {"shadow_url": url, "shadow_percent": percent, "shadow_revision": "2", "model_revision": "1", **more}


def test_same_weights_agree_and_other_weights_disagree(serve: Serve, tmp_path: Path) -> None:
    same = serve(_mlp(tmp_path / "same", seed=0), model_revision="2")
    other = serve(_mlp(tmp_path / "other", seed=7), model_revision="2")
    stable_same = serve(_mlp(tmp_path / "a", seed=0), **_shadow_settings(same.base_url, 100))
    stable_other = serve(_mlp(tmp_path / "b", seed=0), **_shadow_settings(other.base_url, 50))

    alone = _send(serve(_mlp(tmp_path / "c", seed=0)), 20)
    assert _send(stable_same, 20) == alone
    wait_for(lambda: _shadowed(stable_same, "agree") == 20, 30, "20 shadow comparisons")
    assert _shadowed(stable_same, "disagree") == 0
    assert same.metric("mlmodel_runtime_requests_total", model="mlp", revision="2", code="200") == 20

    # Half the requests are copied (exactly, not by chance); every answer the client got is the stable one.
    assert _send(stable_other, 20) == alone
    wait_for(lambda: _shadowed(stable_other, "disagree") == 10, 30, "10 shadow comparisons")
    assert _shadowed(stable_other, "agree") == 0


def test_a_dead_candidate_costs_the_stable_revision_nothing(serve: Serve, tmp_path: Path) -> None:
    stable = serve(_mlp(tmp_path / "a", seed=0), **_shadow_settings(f"http://127.0.0.1:{free_port()}", 100))
    assert len(_send(stable, 10)) == 10
    wait_for(lambda: _shadowed(stable, "error") == 10, 30, "10 failed shadow copies counted")
    assert stable.metric("mlmodel_runtime_requests_total", model="mlp", revision="1", code="200") == 10


def test_a_candidate_that_never_answers_holds_at_most_the_bound_of_copies(serve: Serve, tmp_path: Path) -> None:
    # A listener that never accepts: connections complete in its backlog and then hang, like a stuck server.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        stable = serve(_mlp(tmp_path / "a", seed=0),
                       **_shadow_settings(url, 100, shadow_max_inflight=2, shadow_timeout_s=60))
        assert len(_send(stable, 12)) == 12  # every client request answered while copies hang
        wait_for(lambda: _shadowed(stable, "dropped") == 10, 30, "copies beyond the 2 in flight dropped")
        assert _shadowed(stable, "agree") + _shadowed(stable, "error") == 0, "the 2 copies still hang"


def test_request_encoding_round_trips() -> None:
    inputs = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "flag": np.array([True, False])}
    body, header_length = encode_request(inputs, {"y": np.zeros(1)})
    assert body[header_length:] == inputs["x"].tobytes() + inputs["flag"].tobytes()
    # a response laid out the same way decodes to the arrays
    header = (b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2,3],'
              b'"parameters":{"binary_data_size":24}}]}')
    decoded = decode_response(header + inputs["x"].tobytes(), len(header))
    np.testing.assert_array_equal(decoded["y"], inputs["x"])
    with pytest.raises(ValueError, match="beyond its outputs"):
        decode_response(header + inputs["x"].tobytes() + b"x", len(header))


@pytest.mark.parametrize(
    ("candidate", "config", "agree"),
    [
        ({"y": np.array([1.0, 2.0])}, ShadowConfig("u", "2", 100), True),
        ({"y": np.array([1.0, 2.0005])}, ShadowConfig("u", "2", 100), True),  # within rtol 1e-3
        ({"y": np.array([1.0, 2.1])}, ShadowConfig("u", "2", 100), False),
        ({"y": np.array([1.0, 2.1])}, ShadowConfig("u", "2", 100, per_output={"y": Tolerance(0.2, 0)}), True),
        ({"y": np.array([1.0])}, ShadowConfig("u", "2", 100), False),  # another shape
        ({}, ShadowConfig("u", "2", 100), False),  # an output missing
    ],
)
def test_agreement(candidate: dict[str, np.ndarray], config: ShadowConfig, agree: bool) -> None:
    assert agrees({"y": np.array([1.0, 2.0])}, candidate, config) is agree


def test_a_shadow_file_starts_and_stops_copies_without_a_restart(serve: Serve, tmp_path: Path) -> None:
    """MLMODEL_SHADOW_FILE (the canary's ConfigMap, mounted): written, the stable runtime copies to the candidate;
    emptied, it stops; a file naming the runtime's own revision is off (the candidate mounts the same file)."""
    candidate = serve(_mlp(tmp_path / "other", seed=7), model_revision="2")
    settings = tmp_path / "shadow" / "shadow.json"
    settings.parent.mkdir()
    stable = serve(_mlp(tmp_path / "a", seed=0), model_revision="1", shadow_file=str(settings))
    _send(stable, 5)
    assert _shadowed(stable, "disagree") == 0

    settings.write_text(f'{{"url": "{candidate.base_url}", "candidate": "2", "percent": 100}}')
    wait_for(lambda: _send(stable, 2) and _shadowed(stable, "disagree") >= 2, 30, "copies to the candidate")
    assert stable.metric("mlmodel_runtime_shadow_percent", model="mlp", revision="1") == 100
    settings.write_text("")
    wait_for(lambda: stable.metric("mlmodel_runtime_shadow_percent", model="mlp", revision="1") == 0, 30,
             "the runtime to read the emptied file")
    settled = wait_for(lambda: (n := _shadowed(stable, "disagree")) == _shadowed(stable, "disagree") and n + 1, 10,
                       "copies in flight to finish") - 1
    _send(stable, 5)
    assert _shadowed(stable, "disagree") == settled

    own = serve(_mlp(tmp_path / "b", seed=0), model_revision="2", shadow_file=str(settings))
    settings.write_text(f'{{"url": "{candidate.base_url}", "candidate": "2", "percent": 100}}')
    wait_for(lambda: _send(stable, 1) and _shadowed(stable, "disagree") > settled, 30, "the stable one copies again")
    _send(own, 5)
    assert own.metric(SHADOW, model="mlp", revision="2", candidate="2", result="disagree") == 0
    assert own.metric(SHADOW, model="mlp", revision="2", candidate="2", result="agree") == 0
