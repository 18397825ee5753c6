"""Build the base, runtime and operator images with buildah, cached by content, and record them in images.json.

Each image is a cache entry outside the repository (`$MLMODEL_CACHE/images/`, default
`~/.cache/mlmodel-operator/images/`): an OCI archive `NAME-TAG.oci.tar` and, written last, `NAME-TAG.json`
with its ref, id and size. An entry that exists is used as it is: no buildah call at all. images.json is
written only when every image is there, so a failed build leaves the previous images.json in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from hack.localcluster.layout import REPO, Layout

from .recipe import BaseRecipe, ImageSpec, cache_key, context_files, failed_step
from .tools import RUNC, ImageError, _log, ensure_tools, run

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MANIFEST = "images.json"
SPECS = (
    ImageSpec("runtime", "Dockerfile.runtime", {"VARIANT": "onnx"}, tag_prefix="onnx-"),
    ImageSpec("operator", "Dockerfile.operator"),
)
BASE = BaseRecipe()
BUILD_TIMEOUT_S = 3600
KEEP = 3  # images kept per name (prune)
LOG_TAIL_LINES = 30


def cache_dir() -> Path:
    root = Path(os.environ.get("MLMODEL_CACHE", Path.home() / ".cache" / "mlmodel-operator"))
    return root / "images"


@dataclass(frozen=True)
class Built:
    """One image, as recorded next to its archive."""

    name: str
    ref: str
    id: str  # the image id in buildah's storage (the base's is part of the others' cache keys)
    archive: str
    compressed_bytes: int  # its layers as they travel (gzip)
    unpacked_bytes: int  # its layers unpacked on a node
    key: str
    cached: bool = False  # found in the cache by this run

    @staticmethod
    def entry(cache: Path, name: str, ref: str) -> tuple[Path, Path]:
        """(archive, record) of the cache entry of `ref`."""
        stem = f"{name}-{ref.rsplit(':', 1)[1]}"
        return cache / f"{stem}.oci.tar", cache / f"{stem}.json"

    @classmethod
    def load(cls, record: Path) -> Built | None:
        try:
            data = json.loads(record.read_text())
            built = cls(**{**data, "cached": True})
        except (OSError, ValueError, TypeError):
            return None
        return built if Path(built.archive).is_file() else None

    def save(self, record: Path) -> None:
        _write_atomic(record, json.dumps({k: v for k, v in asdict(self).items() if k != "cached"}, indent=2))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (a second `make images` waits for the first)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- buildah -----------------------------------------------------------------------------------------------

def image_id(ref: str) -> str | None:
    res = run(["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref],
              what=f"inspect {ref}", check=False, timeout=60)
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def archive_sizes(archive: Path) -> tuple[int, int]:
    """(compressed, unpacked) bytes of the image's layers in its OCI archive: what travels to a node, and what
    the image takes there once unpacked (`docker images` shows the latter)."""
    compressed = unpacked = 0
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> IO[bytes]:
            member = tar.extractfile("blobs/" + digest.replace(":", "/"))
            if member is None:
                raise ImageError(f"{archive}: no blob {digest}")
            return member

        index_file = tar.extractfile("index.json")
        if index_file is None:
            raise ImageError(f"{archive}: no index.json")
        manifest = json.load(blob(json.load(index_file)["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            compressed += int(layer["size"])
            if not layer["mediaType"].endswith("gzip"):
                unpacked += int(layer["size"])
                continue
            stream, inflate = blob(layer["digest"]), zlib.decompressobj(16 + zlib.MAX_WBITS)
            while chunk := stream.read(1 << 20):
                unpacked += len(inflate.decompress(chunk))
            unpacked += len(inflate.flush())
    return compressed, unpacked


def _export(name: str, ref: str, key: str, cache: Path, *, cached: bool) -> Built:
    """Push `ref` (in buildah's storage) to its archive and record the cache entry."""
    archive, record = Built.entry(cache, name, ref)
    ident = image_id(ref)
    if ident is None:
        raise ImageError(f"{ref} is not in buildah's storage after its build")
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        run(["buildah", "push", "-q", ref, f"oci-archive:{tmp}:{ref}"],
            what=f"exporting {ref} to {archive}")
        tmp.replace(archive)
    finally:
        tmp.unlink(missing_ok=True)
    compressed, unpacked = archive_sizes(archive)
    built = Built(name, ref, ident, str(archive), compressed, unpacked, key, cached=cached)
    built.save(record)
    return built


def _log_file(layout: Layout, name: str, ref: str) -> Path:
    logs = layout.images / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}-{ref.rsplit(':', 1)[1]}.log"


def _run_logged(argv: list[str], log: Path, what: str) -> None:
    """Run a long build step with its output in `log`; on failure name the step and show the log's tail."""
    with open(log, "w") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S,
                                env={**os.environ, "BUILDAH_RUNTIME": RUNC}).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    if rc == 0:
        return
    text = log.read_text(errors="replace")
    step = failed_step(text)
    tail = "\n".join("    " + line for line in text.rstrip().splitlines()[-LOG_TAIL_LINES:])
    raise ImageError(
        f"{what} failed" + (f" at {step}" if step else "") + f" (exit {rc}); the build's log is {log}, ending:\n{tail}"
    )


# --- the base image ----------------------------------------------------------------------------------------

def ensure_base(layout: Layout, cache: Path, recipe: BaseRecipe = BASE) -> Built:
    """The Debian base image: its cache entry when there is one, else made with mmdebstrap (or re-exported when
    buildah's storage has it). `base_in_storage` brings it back into buildah's storage when a build needs it."""
    ref, key = recipe.ref(), recipe.key()
    _, record = Built.entry(cache, "base", ref)
    entry = Built.load(record)
    if entry:
        return entry
    if image_id(ref) is None:
        _log(f"making the base image {ref} with mmdebstrap (about a minute)")
        with tempfile.TemporaryDirectory(dir=cache, prefix=".base-") as tmp:
            rootfs = Path(tmp) / "base.tar"
            _run_logged(recipe.mmdebstrap_argv(rootfs), _log_file(layout, "base", ref), f"mmdebstrap for {ref}")
            container = run(["buildah", "from", "scratch"], what="buildah from scratch").stdout.strip()
            try:
                run(["buildah", "add", "-q", container, str(rootfs), "/"], what=f"adding the root filesystem to {ref}")
                config = [arg for env in recipe.env for arg in ("--env", env)]
                run(["buildah", "config", *config, "--cmd", '["python3"]', container], what=f"configuring {ref}")
                run(["buildah", "commit", "-q", container, ref], what=f"committing {ref}")
            finally:
                run(["buildah", "rm", container], what="removing the working container", check=False)
    return _export("base", ref, key, cache, cached=False)


def base_in_storage(base: Built) -> None:
    """Pull the base back from its archive when buildah's storage lost it: the same config, so the same id
    (which the other images' cache keys hold)."""
    if image_id(base.ref) == base.id:
        return
    _log(f"restoring {base.ref} from {base.archive}")
    run(["buildah", "pull", "-q", f"oci-archive:{base.archive}"], what=f"pulling {base.archive}")
    run(["buildah", "tag", base.id, base.ref], what=f"tagging {base.ref}")
    if image_id(base.ref) != base.id:
        raise ImageError(f"{base.ref} restored from {base.archive} does not have the recorded id {base.id}")


# --- the images of the Dockerfiles ------------------------------------------------------------------------

def _stage_context(source: Path, spec: ImageSpec, dest: Path) -> None:
    """A build context of exactly what the cache key covers: the Dockerfile and the files it copies."""
    for rel in [spec.dockerfile, *context_files(source, spec.dockerfile)]:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)


def ensure_image(layout: Layout, cache: Path, spec: ImageSpec, base: Built, source: Path = REPO) -> Built:
    key = cache_key(source, spec, base.id)
    ref = spec.ref(key)
    _, record = Built.entry(cache, spec.name, ref)
    entry = Built.load(record)
    if entry:
        return entry
    if image_id(ref) is not None:  # built before, never exported
        return _export(spec.name, ref, key, cache, cached=True)
    base_in_storage(base)
    _log(f"building {ref} from {spec.dockerfile}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".context-{spec.name}-") as ctx:
        _stage_context(source, spec, Path(ctx))
        args = [arg for name, value in sorted({"PYTHON_IMAGE": base.ref, **spec.build_args}.items())
                for arg in ("--build-arg", f"{name}={value}")]
        argv = ["buildah", "bud", "--runtime", RUNC, "--layers", "--format", "docker", *args,
                # The host's CA bundle, for pip behind this network's proxy: mounted for RUN steps, never baked in.
                "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
                "-f", str(Path(ctx) / spec.dockerfile), "-t", ref, ctx]
        _run_logged(argv, _log_file(layout, spec.name, ref), f"building {spec.name} ({spec.dockerfile})")
    _log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return _export(spec.name, ref, key, cache, cached=False)


# --- images.json ----------------------------------------------------------------------------------------------

def manifest(base: Built, images: Sequence[Built], specs: Sequence[ImageSpec]) -> dict[str, Any]:
    everything = [base, *images]
    out: dict[str, Any] = {b.name: b.ref for b in everything}
    out["variant"] = next((s.build_args.get("VARIANT") for s in specs if s.name == "runtime"), None)
    out["ids"] = {b.name: b.id for b in everything}
    out["archives"] = {b.name: b.archive for b in everything}
    out["sizes"] = {b.name: {"compressed": b.compressed_bytes, "unpacked": b.unpacked_bytes} for b in everything}
    return out


def build(layout: Layout, *, specs: Sequence[ImageSpec] = SPECS, source: Path = REPO,
          cache: Path | None = None) -> tuple[dict[str, Any], list[Built]]:
    """Build what is missing and write images.json; returns (its content, the images with cached flags)."""
    ensure_tools()
    cache = cache or cache_dir()
    with _locked(cache):
        base = ensure_base(layout, cache)
        images = [ensure_image(layout, cache, spec, base, source) for spec in specs]
        data = manifest(base, images, specs)
        _write_atomic(layout.images / MANIFEST, json.dumps(data, indent=2))
        for image in images:
            if not image.cached:
                prune(cache, image.name)
    return data, [base, *images]


def prune(cache: Path, name: str, keep: int = KEEP) -> None:
    """Keep the newest `keep` images of `name` (its cache entries and its refs in buildah's storage): other
    checkouts or tests may still use a recent one; older ones only take disk (about 0.3 GB of archive and
    0.6 GB in buildah's storage each)."""
    records = sorted(cache.glob(f"{name}-*.json"), key=lambda r: r.stat().st_mtime, reverse=True)
    for record in records[keep:]:
        old = Built.load(record)
        if old is None or old.name != name:
            continue
        run(["buildah", "rmi", old.ref], what=f"removing {old.ref}", check=False, timeout=120)
        Path(old.archive).unlink(missing_ok=True)
        record.unlink(missing_ok=True)
