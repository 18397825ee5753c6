"""`make images` (hack/images): the cache key changes with what goes into an image and only with that; a build
that fails names the failing Dockerfile step and keeps the previous images.json; `--load` without a running
node says so; and, where root and buildah are here, a real build of both images whose second call is a cache
hit, the images running as the non-root user 65532."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hack import images as images_api
from hack.images import __main__ as cli
from hack.images import build as build_mod
from hack.images import load as load_mod
from hack.images import tools as tools_mod
from hack.images.recipe import BaseRecipe, ImageSpec, cache_key, context_files, context_sources, failed_step
from hack.images.tools import ImageError, ensure_tools
from hack.localcluster.layout import REPO, Layout
from tests.support.realnode import require_real_node_or_skip

RUNTIME = ImageSpec("runtime", "Dockerfile.runtime", {"VARIANT": "onnx"}, tag_prefix="onnx-")
BASE_ID = "e" * 64


def _tree(root: Path) -> Path:
    """A small source tree shaped like the repository: the Dockerfiles copy pyproject, README and two trees."""
    shutil.copy(REPO / "Dockerfile.runtime", root / "Dockerfile.runtime")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "README.md").write_text("# x\n")
    for pkg in ("operator/mlmodel_operator", "runtime/mlmodel_runtime"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("VALUE = 1\n")
    (root / "docs").mkdir()
    (root / "docs" / "notes.md").write_text("not copied\n")
    return root


# --- the cache key (pure) ---------------------------------------------------------------------------------

def test_the_dockerfiles_copy_exactly_the_sources_the_key_covers() -> None:
    expected = ["pyproject.toml", "README.md", "operator", "runtime"]
    for dockerfile in ("Dockerfile.runtime", "Dockerfile.operator"):
        assert context_sources((REPO / dockerfile).read_text()) == expected


def test_key_changes_with_a_source_file_the_dockerfile_the_variant_and_the_base(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    key = cache_key(src, RUNTIME, BASE_ID)
    assert key == cache_key(src, RUNTIME, BASE_ID), "the same inputs give the same key"

    (src / "runtime/mlmodel_runtime/__init__.py").write_text("VALUE = 2\n")
    changed_source = cache_key(src, RUNTIME, BASE_ID)
    (src / "runtime/mlmodel_runtime/new.py").write_text("")
    added_file = cache_key(src, RUNTIME, BASE_ID)
    (src / "runtime/mlmodel_runtime/new.py").chmod(0o755)
    made_executable = cache_key(src, RUNTIME, BASE_ID)
    (src / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    changed_pyproject = cache_key(src, RUNTIME, BASE_ID)
    with (src / "Dockerfile.runtime").open("a") as fh:
        fh.write("# a comment is a change too\n")
    changed_dockerfile = cache_key(src, RUNTIME, BASE_ID)
    cpu = cache_key(src, ImageSpec("runtime", "Dockerfile.runtime", {"VARIANT": "cpu"}), BASE_ID)
    other_base = cache_key(src, RUNTIME, "f" * 64)

    keys = [key, changed_source, added_file, made_executable, changed_pyproject, changed_dockerfile, cpu, other_base]
    assert len(set(keys)) == len(keys), "every change gives a new key"
    assert RUNTIME.ref(key) == f"localhost/mlmodel/runtime:onnx-{key[:12]}"
    assert ImageSpec("operator", "Dockerfile.operator").ref(key) == f"localhost/mlmodel/operator:{key[:12]}"


def test_key_ignores_files_the_dockerfile_does_not_copy_and_build_leftovers(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    key = cache_key(src, RUNTIME, BASE_ID)
    (src / "docs" / "notes.md").write_text("changed, but not copied\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("")
    cache = src / "runtime/mlmodel_runtime/__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (src / "runtime/mlmodel_operator.egg-info").mkdir()
    (src / "runtime/mlmodel_operator.egg-info/PKG-INFO").write_text("x")
    assert cache_key(src, RUNTIME, BASE_ID) == key
    assert "runtime/mlmodel_runtime/__pycache__/__init__.cpython-311.pyc" not in context_files(src, RUNTIME.dockerfile)


def test_copy_from_another_stage_and_continued_lines_are_parsed() -> None:
    text = ("FROM x AS build\n# comment\nCOPY --chown=1:1 a.txt \\\n  b/ dest/\nCOPY --from=build /opt /opt\n"
            'ADD ["c d", "/e"]\n')
    assert context_sources(text) == ["a.txt", "b", "c d"]
    with pytest.raises(ValueError, match="unsupported"):
        context_sources("COPY ../secret /x\n")


def test_base_ref_is_a_hash_of_its_recipe() -> None:
    base = BaseRecipe()
    assert base.ref() == f"localhost/mlmodel/base:bookworm-{base.key()[:12]}"
    assert "python-is-python3" in base.mmdebstrap_argv(Path("b.tar"))[2], "the Dockerfiles run `python -m venv`"
    assert BaseRecipe(include=(*base.include, "curl")).key() != base.key()


# --- failures and their messages ------------------------------------------------------------------------

BUILDAH_LOG = """\
[1/2] STEP 1/11: FROM localhost/mlmodel/base:bookworm-0123 AS build
[1/2] STEP 10/11: SHELL ["/bin/bash", "-o", "pipefail", "-c"]
[1/2] STEP 11/11: RUN /opt/venv/bin/pip install --no-compile ".[runtime,onnx]"
ERROR: Could not find a version that satisfies the requirement onnxruntime>=99
error building at STEP "RUN /opt/venv/bin/pip install ...": exit status 1
"""


def test_failed_step_is_the_last_step_buildah_started() -> None:
    assert failed_step(BUILDAH_LOG) == '[1/2] STEP 11/11: RUN /opt/venv/bin/pip install --no-compile ".[runtime,onnx]"'
    assert failed_step("STEP 1/2: FROM x\nSTEP 2/2: RUN false\n") == "STEP 2/2: RUN false"
    assert failed_step("no steps at all") is None


def test_a_failing_build_names_the_step_and_shows_the_tail_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    log.parent.mkdir()
    script = f"cat <<'EOF'\n{BUILDAH_LOG}EOF\nexit 1"
    with pytest.raises(ImageError) as err:
        build_mod._run_logged(["sh", "-c", script], log, "building runtime (Dockerfile.runtime)")
    message = str(err.value)
    assert message.startswith("building runtime (Dockerfile.runtime) failed at [1/2] STEP 11/11: RUN /opt/venv/bin/pip")
    assert "onnxruntime>=99" in message, "the tail of the log is in the message"
    assert str(log) in message
    assert log.is_file(), "the log is kept"


def test_load_without_a_running_node_fails_with_the_socket_or_only_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = Layout(tmp_path)
    data = {"runtime": "localhost/mlmodel/runtime:onnx-1", "operator": "localhost/mlmodel/operator:1",
            "archives": {"runtime": "/nonexistent", "operator": "/nonexistent"}}
    with pytest.raises(load_mod.NodeNotRunning, match=str(layout.containerd_socket)):
        load_mod.load(layout, data)

    monkeypatch.setenv("MLMODEL_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "build", lambda _layout: (data, []))
    assert cli.main(["build", "--load"]) == 1
    assert "containerd is not running" in capsys.readouterr().err
    assert cli.main(["build", "--load-if-running"]) == 0
    assert "not loaded: the real node's containerd is not running" in capsys.readouterr().out


def test_prune_keeps_the_newest_images_of_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[list[str]] = []
    monkeypatch.setattr(build_mod, "run", lambda argv, **_: removed.append(argv))
    for i in range(5):
        ref = f"localhost/mlmodel/runtime:onnx-{i:012d}"
        archive, record = build_mod.Built.entry(tmp_path, "runtime", ref)
        archive.write_bytes(b"")
        build_mod.Built("runtime", ref, str(i), str(archive), 1, 2, "k").save(record)
        os.utime(record, (1000 + i, 1000 + i))
    other = build_mod.Built.entry(tmp_path, "operator", "localhost/mlmodel/operator:000000000000")[1]
    other.write_text("{}")

    build_mod.prune(tmp_path, "runtime", keep=3)
    assert removed == [["buildah", "rmi", f"localhost/mlmodel/runtime:onnx-{i:012d}"] for i in (1, 0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"runtime-onnx-{i:012d}.{ext}" for i in (2, 3, 4) for ext in ("json", "oci.tar")] + [other.name]
    )


def test_a_machine_that_cannot_build_is_told_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hack.images.tools.os.geteuid", lambda: 1000)
    with pytest.raises(ImageError, match="needs root"):
        ensure_tools()
    monkeypatch.setattr("hack.images.tools.sys.platform", "darwin")
    assert "needs Linux" in (tools_mod.cannot_build_reason() or "")


def test_read_refs_says_to_run_make_images_when_nothing_was_built(tmp_path: Path) -> None:
    with pytest.raises(images_api.ImagesNotBuilt, match="make images"):
        images_api.read_refs(Layout(tmp_path))


# --- real builds (root and buildah) ------------------------------------------------------------------

def _builder() -> None:
    try:
        ensure_tools()
    except ImageError as e:
        require_real_node_or_skip(f"cannot build images here: {e}")


def _snapshot(dest: Path) -> Path:
    """The files the Dockerfiles read, copied: other work in the checkout cannot change them mid-test."""
    for dockerfile in ("Dockerfile.runtime", "Dockerfile.operator"):
        for rel in [dockerfile, *context_files(REPO, dockerfile)]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_a_failing_build_keeps_the_previous_images_json(tmp_path: Path) -> None:
    _builder()
    src = tmp_path / "src"
    src.mkdir()
    (src / "Dockerfile.broken").write_text(
        "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN python -c 'print(1)'\n"
        "RUN echo 'this step fails' >&2 && exit 3\nRUN echo never\n"
    )
    layout = Layout(tmp_path / "local")
    previous = {"runtime": "localhost/mlmodel/runtime:onnx-previous", "operator": "o", "base": "b"}
    (layout.images).mkdir(parents=True)
    (layout.images / "images.json").write_text(json.dumps(previous))

    with pytest.raises(ImageError) as err:
        build_mod.build(layout, specs=[ImageSpec("broken", "Dockerfile.broken")], source=src)
    message = str(err.value)
    assert "failed at STEP 3/4: RUN echo 'this step fails' >&2 && exit 3" in message, message
    assert "this step fails" in message.split("ending:")[1], "the tail of buildah's log is shown"
    assert list((layout.images / "logs").glob("broken-*.log")), "the log is kept under .local/images/logs"
    assert images_api.read_refs(layout) == previous, "images.json is untouched"


def _run_in_image(ref: str, *command: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["buildah", "from", "-q", ref], capture_output=True, text=True, check=True)
    container = res.stdout.strip()
    try:
        return subprocess.run(["buildah", "run", "--runtime", "/usr/sbin/runc", container, "--", *command],
                              capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_build_of_both_images_then_a_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _builder()
    src = _snapshot(tmp_path / "src")
    layout = Layout(tmp_path / "local")
    data, built = build_mod.build(layout, source=src)
    refs = images_api.read_refs(layout)
    assert refs == {b.name: b.ref for b in built}
    assert refs["runtime"].startswith("localhost/mlmodel/runtime:onnx-")
    assert data["variant"] == "onnx"
    for name in ("runtime", "operator", "base"):
        assert Path(data["archives"][name]).is_file()
        assert 0 < data["sizes"][name]["compressed"] < data["sizes"][name]["unpacked"]

    def no_build(*args: Any) -> None:
        raise AssertionError(f"nothing changed, yet a build step ran: {args}")

    monkeypatch.setattr(build_mod, "_run_logged", no_build)
    monkeypatch.setattr(build_mod, "image_id", no_build)  # a cache hit needs no buildah call at all
    started = time.monotonic()
    again, rebuilt = build_mod.build(layout, source=src)
    assert time.monotonic() - started < 10
    assert again == data
    assert all(b.cached for b in rebuilt)
    monkeypatch.undo()

    # Both run as the numeric non-root user with the venv's python (the base has `python`).
    runtime = _run_in_image(refs["runtime"], "sh", "-c", "id -u && python -m mlmodel_runtime serve --help "
                            "&& python -c 'import onnxruntime, fastapi'")
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.splitlines()[0] == "65532"
    operator = _run_in_image(refs["operator"], "python", "-m", "mlmodel_operator", "--help")
    assert operator.returncode == 0, operator.stderr
    torch = _run_in_image(refs["runtime"], "python", "-c", "import torch")
    assert torch.returncode != 0, "the onnx variant has no torch"
