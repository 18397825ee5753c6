"""What goes into an image, and the content hash that names it (pure: files in, strings out).

An image's tag is a hash of everything its build reads: the Dockerfile, the files and folders its COPY/ADD
instructions take from the build context, its build arguments and the id of its base image. The same
inputs always give the same tag, so an image whose tag exists is never built again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# Bumped when the way images are built changes in a way the inputs below do not show.
KEY_VERSION = "1"
# Never part of a build context: caches and build leftovers of the local checkout.
EXCLUDED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".git"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
REGISTRY = "localhost/mlmodel"


@dataclass(frozen=True)
class ImageSpec:
    """One image built from a Dockerfile of the repository, e.g. the runtime with VARIANT=onnx."""

    name: str  # "runtime", "operator": the key in images.json and the repository under REGISTRY
    dockerfile: str  # relative to the build's source folder
    build_args: Mapping[str, str] = field(default_factory=dict)
    tag_prefix: str = ""  # "onnx-" for the runtime: the variant stays readable in the ref

    def ref(self, key: str) -> str:
        return f"{REGISTRY}/{self.name}:{self.tag_prefix}{key[:12]}"


@dataclass(frozen=True)
class BaseRecipe:
    """The Debian base image made with mmdebstrap; its tag is a hash of this recipe."""

    suite: str = "bookworm"
    variant: str = "minbase"
    # python-is-python3: the Dockerfiles run `python -m venv`.
    include: tuple[str, ...] = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
    # Documentation, manual pages and translations are not needed in an image (the copyright files stay).
    dpkg_options: tuple[str, ...] = (
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias",
    )
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")

    def mmdebstrap_argv(self, target: Path) -> list[str]:
        return [
            "mmdebstrap", f"--variant={self.variant}", f"--include={','.join(self.include)}",
            *(f"--dpkgopt={opt}" for opt in self.dpkg_options), self.suite, str(target),
        ]

    def key(self) -> str:
        recipe = {"version": KEY_VERSION, "argv": self.mmdebstrap_argv(Path("base.tar")), "env": self.env}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()

    def ref(self) -> str:
        return f"{REGISTRY}/base:{self.suite}-{self.key()[:12]}"


def _instructions(dockerfile_text: str) -> Iterator[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    logical = ""
    for line in dockerfile_text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        words = logical.split()
        logical = ""
        if words:
            yield words[0].upper(), words[1:]


def context_sources(dockerfile_text: str) -> list[str]:
    """The paths that COPY and ADD take from the build context (not `--from=` another stage)."""
    sources: list[str] = []
    for instruction, args in _instructions(dockerfile_text):
        if instruction not in ("COPY", "ADD"):
            continue
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        if paths and paths[0].startswith("["):
            paths = json.loads(" ".join(paths))
        for src in paths[:-1]:
            norm = str(PurePosixPath(src))
            if norm.startswith("/") or ".." in PurePosixPath(norm).parts or any(c in norm for c in "*?["):
                raise ValueError(f"unsupported COPY/ADD source {src!r}: name files or folders of the context")
            if norm not in sources:
                sources.append(norm)
    return sources


def _excluded(path: Path) -> bool:
    return path.name in EXCLUDED_NAMES or path.name.endswith(EXCLUDED_SUFFIXES)


def context_files(source: Path, dockerfile: str) -> list[str]:
    """Every file (relative, sorted) that the Dockerfile's COPY/ADD instructions take from `source`."""
    files: set[str] = set()
    for rel in context_sources((source / dockerfile).read_text()):
        path = source / rel
        if path.is_file():
            files.add(rel)
        elif path.is_dir():
            stack = [path]
            while stack:
                folder = stack.pop()
                for child in folder.iterdir():
                    if _excluded(child):
                        continue
                    if child.is_dir():
                        stack.append(child)
                    elif child.is_file():
                        files.add(child.relative_to(source).as_posix())
        else:
            raise FileNotFoundError(f"{dockerfile} copies {rel}, which is not in {source}")
    return sorted(files)


def cache_key(source: Path, spec: ImageSpec, base_id: str) -> str:
    """sha256 over the Dockerfile, the context files it copies (content and executable bit), its build
    arguments and the base image id."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)

    add("version", KEY_VERSION.encode())
    add("dockerfile", (source / spec.dockerfile).read_bytes())
    for name, value in sorted(spec.build_args.items()):
        add(f"arg:{name}", value.encode())
    add("base", base_id.encode())
    for rel in context_files(source, spec.dockerfile):
        path = source / rel
        add(f"file:{rel}:{'x' if path.stat().st_mode & 0o111 else '-'}", path.read_bytes())
    return h.hexdigest()


STEP_LINE = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: .*$", re.M)


def failed_step(log_text: str) -> str | None:
    """The last `STEP n/m: INSTRUCTION` line buildah printed: the step that was running when it failed."""
    steps = STEP_LINE.findall(log_text)
    if not steps:
        return None
    step = str(steps[-1])
    return step if len(step) <= 300 else step[:297] + "..."
