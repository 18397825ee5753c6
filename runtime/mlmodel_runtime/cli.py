"""`mlmodel`: pack, verify and push model packages; show and roll back an MLModel's revisions, promote or abort
its canary (typer + rich).

Every command takes `--output json` for scripts (one JSON object on stdout, also on failure)
and exits with the contract's codes: 0 ok, 2 usage, 10-16 the package failure reasons.
Progress bars and warnings go to stderr, so stdout stays clean for YAML or JSON.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml
from mlmodel_operator.spec import API_VERSION  # the MLModel's group/version: the typed spec defines them
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mlmodel_runtime.package.archive import ArchiveKind
from mlmodel_runtime.package.errors import EXIT_USAGE, PackageError
from mlmodel_runtime.package.models import MANIFEST_FILE, ModelFormat
from mlmodel_runtime.package.source import InvalidUri, PackageUri, open_source, parse_uri
from mlmodel_runtime.package.store import ObjectStore, redact_endpoint
from mlmodel_runtime.package.verify import ValidatedPackage, check_head, validate_package
from mlmodel_runtime.packing import PackError, QualityInputs, pack

if TYPE_CHECKING:
    from mlmodel_operator.client import Models

app = typer.Typer(
    name="mlmodel",
    help="Pack, verify and push model packages, and manage an MLModel's revisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True, highlight=False)  # soft_wrap: messages stay one greppable line
out = Console(soft_wrap=True, highlight=False)


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for scripts")]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)", show_default=False),
]


class UsageError(Exception):
    """A usage error found after parsing (exit code 2)."""


def _emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _fail(output: Output, reason: str, message: str, code: int) -> NoReturn:
    if output is Output.JSON:
        _emit_json({"ok": False, "reason": reason, "message": message, "exitCode": code})
    else:
        err.print(f"[bold red]error[/] [red]{reason}[/]: {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _failures(output: Output) -> Iterator[None]:
    """Turn the package errors into the contract's exit codes and a clear last line."""
    try:
        yield
    except PackageError as exc:
        _fail(output, exc.reason, exc.message, exc.exit_code)
    except (InvalidUri, PackError, UsageError) as exc:
        _fail(output, "UsageError", str(exc), EXIT_USAGE)


def _warn(output: Output, warnings: tuple[str, ...]) -> None:
    if output is Output.TEXT:
        for warning in warnings:
            err.print(f"[yellow]warning[/]: {warning}", highlight=False)


def _store_for(uri: str, endpoint: str | None) -> ObjectStore | None:
    return ObjectStore(endpoint_url=endpoint) if uri.startswith("s3://") else None


def _package_summary(pkg: ValidatedPackage) -> dict[str, Any]:
    return {
        "uri": pkg.uri,
        "digest": pkg.digest,
        "name": pkg.metadata.name,
        "version": pkg.metadata.version,
        "format": pkg.format.value,
        "entrypoint": pkg.manifest.entrypoint,
        "files": len(pkg.manifest.files) + 1,
        "totalSize": pkg.total_size,
        "inputs": [t.model_dump(mode="json") for t in pkg.metadata.inputs],
        "outputs": [t.model_dump(mode="json") for t in pkg.metadata.outputs],
        "warnings": list(pkg.warnings),
    }


@app.command("pack")
def pack_command(
    directory: Annotated[Path, typer.Argument(help="directory holding the model file (model.onnx, ...)")],
    name: Annotated[str | None, typer.Option(help="model name (default: the directory name)")] = None,
    version: Annotated[str | None, typer.Option(help="model version (default: 1)")] = None,
    format: Annotated[
        ModelFormat | None, typer.Option("--format", help="model format (default: from the file name)")
    ] = None,
    archive: Annotated[
        ArchiveKind | None, typer.Option(help="also write <dir>.zip or <dir>.tar.gz beside the directory")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="examples the model must answer (.json V2 request/response pairs, or .npz): "
                     "stored as examples.json, run before a revision serves (docs/quality.md)"),
    ] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(help="OUTPUT=ABS,REL: how far OUTPUT may be from the examples' values "
                     "(|got - expected| <= ABS + REL * |expected|); OUTPUT 'default' for every other output"),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="training rows (.csv with a header, .npy, .npz, .parquet) for the drift baseline: "
                     "stored as baseline.json with the model's outputs on them (docs/quality.md)"),
    ] = None,
    baseline_bins: Annotated[int, typer.Option(min=2, max=100, help="quantile bins per column")] = 10,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Write metadata.json (where missing) and deployment_manifest.json for DIRECTORY."""
    with _failures(output):
        quality = _quality_inputs(examples, tolerance or [], baseline, baseline_bins)
        result = pack(directory, name=name, version=version, format=format, archive=archive, quality=quality)
    if output is Output.JSON:
        _emit_json({"ok": True, **result.summary()})
        return
    _warn(output, result.warnings)
    meta = result.metadata
    out.print(f"packed {result.directory}: {meta.name} version {meta.version}, {meta.format.value}")
    out.print(f"  entrypoint {result.manifest.entrypoint}, {len(result.manifest.files)} files listed")
    out.print(f"  digest {result.digest}")
    listed = {e.path for e in result.manifest.files}
    carried = [name for name in ("examples.json", "baseline.json") if name in listed]
    if carried:
        out.print(f"  quality: {', '.join(carried)} (docs/quality.md)")
    if result.archive:
        out.print(f"  archive {result.archive}")


def _quality_inputs(examples: Path | None, tolerances: list[str], baseline: Path | None = None,
                    bins: int = 10) -> QualityInputs:
    parsed: dict[str, tuple[float, float]] = {}
    for item in tolerances:
        output, _, values = item.partition("=")
        try:
            abs_tol, rel_tol = (float(v) for v in values.split(","))
        except ValueError:
            raise UsageError(f"--tolerance {item!r}: expected OUTPUT=ABS,REL, e.g. output=1e-5,1e-4") from None
        if not output:
            raise UsageError(f"--tolerance {item!r}: no output name before '='")
        parsed[output] = (abs_tol, rel_tol)
    if parsed and examples is None:
        raise UsageError("--tolerance applies to --examples: give the examples file too")
    default = parsed.pop("default", None)
    return QualityInputs(examples=examples, tolerances=parsed, default_tolerance=default, baseline=baseline,
                         bins=bins)


@app.command("verify")
def verify_command(
    target: Annotated[str, typer.Argument(help="package directory, archive, or s3://bucket/prefix/ URI")],
    endpoint: EndpointOpt = None,
    allow_pickle: Annotated[bool, typer.Option(help="accept pickle-based formats (joblib)")] = False,
    expected_digest: Annotated[
        str | None, typer.Option(help="fail unless the package digest is this sha256:<hex>")
    ] = None,
    examples: Annotated[
        bool, typer.Option(help="load the model and run the package's examples.json, as the runtime does")
    ] = True,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Run the same validation as the operator and the runtime (validate_package) on TARGET,
    then the package's examples (as the runtime does before it serves)."""
    with _failures(output), _progress(output, None, "verifying") as advance:
        pkg = validate_package(
            target,
            allow_pickle=allow_pickle,
            expected_digest=expected_digest,
            store=_store_for(target, endpoint),
            progress=advance,
        )
    ran: dict[str, Any] | None = None
    if examples and any(e.path == "examples.json" for e in pkg.manifest.files):
        from mlmodel_runtime.backends.errors import ModelLoadError

        with _failures(output):
            try:
                ran = _run_examples(target, pkg, allow_pickle, endpoint)
            except ModelLoadError as exc:
                _fail(output, "ModelLoadError", str(exc), 1)
    if output is Output.JSON:
        _emit_json({"ok": True, **_package_summary(pkg), "examples": ran})
        return
    _warn(output, pkg.warnings)
    out.print(f"[green]valid[/] {pkg.uri}: {pkg.metadata.name} version {pkg.metadata.version}, {pkg.format.value}")
    out.print(f"  {len(pkg.manifest.files) + 1} files, {pkg.total_size} bytes, digest {pkg.digest}")
    if ran is not None:
        out.print(f"  examples: {ran['passed']} passed in {ran['seconds']}s")


def _run_examples(target: str, pkg: ValidatedPackage, allow_pickle: bool, endpoint: str | None) -> dict[str, Any]:
    """Load the model (a copy fetched into a temporary folder unless TARGET is a directory) and run its examples."""
    import tempfile

    from mlmodel_runtime.fetch import is_local_dir
    from mlmodel_runtime.quality.examples import check_package_examples

    started = time.monotonic()
    if is_local_dir(target):
        passed = check_package_examples(Path(parse_uri(target).key), pkg.format.value, allow_pickle=allow_pickle)
    else:
        from mlmodel_runtime.package import fetch_package

        with tempfile.TemporaryDirectory(prefix="mlmodel-verify-") as tmp:
            fetched = fetch_package(target, Path(tmp), allow_pickle=allow_pickle, expected_digest=pkg.digest,
                                    store=_store_for(target, endpoint))
            assert fetched.path is not None
            passed = check_package_examples(fetched.path, pkg.format.value, allow_pickle=allow_pickle)
    return {"passed": passed, "seconds": round(time.monotonic() - started, 3)}


def _mlmodel_resource(
    name: str, uri: str, fmt: ModelFormat, endpoint: str | None, credentials_secret: str | None
) -> dict[str, Any]:
    """The MLModel that serves the pushed package (docs: DESIGN.md "The resource")."""
    source: dict[str, Any] = {"uri": uri}
    if endpoint:
        source["endpoint"] = endpoint
    if credentials_secret:
        source["credentialsSecret"] = credentials_secret
    return {
        "apiVersion": API_VERSION,
        "kind": "MLModel",
        "metadata": {"name": name},
        "spec": {"source": source, "format": fmt.value},
    }


def _resource_name(name: str) -> str:
    """A DNS-1123 label from the model name (MLModel names become Deployment names)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "model"


def _upload_plan(local: Path, dest: PackageUri) -> list[tuple[Path, str]]:
    """(file, key) pairs to upload, the manifest last so no reader sees it before its files."""
    if local.is_file():
        key = dest.key if dest.archive else dest.key + local.name
        return [(local, key)]
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() == MANIFEST_FILE)
    return [(p, dest.key + p.relative_to(local).as_posix()) for p in files]


def _check_target(
    store: ObjectStore, dest: PackageUri, digest: str, plan: list[tuple[Path, str]], *, archive: bool, force: bool
) -> list[str]:
    """Keys to delete after the upload; UsageError when the target holds another package."""
    if archive:  # one object
        if store.exists(dest.bucket, plan[0][1]) and not force:
            raise UsageError(f"s3://{dest.bucket}/{plan[0][1]} exists; pass --force to replace it")
        return []
    existing = [o.key for o in store.list(dest.bucket, dest.key)]
    if not existing:
        return []
    manifest_key = dest.key + MANIFEST_FILE
    if not force:
        try:
            with open_source(str(dest), store=store) as remote:
                same = check_head(remote, allow_pickle=True).digest == digest
        except PackageError:
            same = False
        if not same:
            raise UsageError(
                f"{dest} already holds other files or another package; push to a new prefix "
                "(e.g. one per version) or pass --force to replace it"
            )
    ours = {key for _, key in plan} | {manifest_key}
    return [k for k in existing if k not in ours]


@app.command("push")
def push_command(
    local: Annotated[Path, typer.Argument(help="a packed directory, or a .zip / .tar.gz package")],
    uri: Annotated[str, typer.Argument(help="s3://bucket/prefix/ (or s3://bucket/name.zip for an archive)")],
    endpoint: EndpointOpt = None,
    cluster_endpoint: Annotated[
        str | None, typer.Option(help="endpoint the cluster uses, for the printed MLModel (default: --endpoint)")
    ] = None,
    credentials_secret: Annotated[
        str | None, typer.Option(help="Secret with the access key pair, for the printed MLModel")
    ] = "models-s3",
    name: Annotated[str | None, typer.Option(help="MLModel name (default: the package's name)")] = None,
    force: Annotated[bool, typer.Option(help="replace what the target already holds")] = False,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Verify LOCAL, upload it (multipart, concurrent) to URI and print the MLModel that serves it."""
    with _failures(output):
        dest = parse_uri(uri)
        if dest.scheme != "s3":
            raise UsageError(f"{uri}: push needs an s3:// URI")
        pkg = validate_package(str(local))
        if local.is_dir() and dest.archive:
            raise UsageError(f"{uri}: a directory goes to a prefix (s3://bucket/prefix/); pack --archive for a file")
        store = ObjectStore(endpoint_url=endpoint)
        plan = _upload_plan(local, dest)
        stale = _check_target(store, dest, pkg.digest, plan, archive=local.is_file(), force=force)
        started = time.monotonic()
        total = sum(path.stat().st_size for path, _ in plan)
        with _progress(output, total, "uploading") as advance:
            for path, key in plan:
                store.upload(path, dest.bucket, key, progress=advance)
        if stale:
            store.delete(dest.bucket, stale)
        pushed_uri = f"s3://{dest.bucket}/{plan[0][1]}" if local.is_file() else str(dest)
        with open_source(pushed_uri, store=store) as remote:
            pushed = check_head(remote, allow_pickle=True, expected_digest=pkg.digest)
        seconds = time.monotonic() - started
    shown_endpoint = cluster_endpoint or (redact_endpoint(store.endpoint_url) if store.endpoint_url else None)
    resource = _mlmodel_resource(
        _resource_name(name or pkg.metadata.name), pushed_uri, pushed.format, shown_endpoint, credentials_secret
    )
    if output is Output.JSON:
        _emit_json(
            {
                "ok": True,
                "uri": pushed_uri,
                "digest": pkg.digest,
                "bytes": total,
                "seconds": round(seconds, 3),
                "mlmodel": resource,
            }
        )
        return
    _warn(output, pkg.warnings)
    mib_s = total / 2**20 / max(seconds, 1e-6)
    err.print(f"pushed {pushed_uri} ({total} bytes in {seconds:.1f}s, {mib_s:.1f} MiB/s), digest {pkg.digest}")
    sys.stdout.write(yaml.safe_dump(resource, sort_keys=False))


@contextmanager
def _progress(output: Output, total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A byte-count callback: a rich transfer bar on stderr when it is a terminal (text mode)."""
    if output is Output.JSON or not err.is_terminal:
        yield lambda _n: None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


# ---------------------------------------------------------------------------------------------
# Revisions: what the operator recorded in status.history, and asking it to serve an earlier one.
# ---------------------------------------------------------------------------------------------

NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="default: the kubeconfig context's namespace", show_default=False),
]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="default: KUBECONFIG or ~/.kube/config", show_default=False)
]
OUTCOME_STYLE = {"Serving": "green", "Superseded": "dim", "Failed": "red", "RolledBack": "yellow", "RollingOut": "cyan",
                 "Canary": "cyan"}


@contextmanager
def _cluster_failures(output: Output) -> Iterator[None]:
    from mlmodel_operator.client import ModelApiError

    try:
        yield
    except ModelApiError as exc:
        _fail(output, exc.reason, exc.message, EXIT_USAGE if exc.reason == "RevisionNotInHistory" else 1)


def _seconds(value: object) -> str:
    return f"{float(value) * 1000:.3g}ms" if isinstance(value, int | float) else "-"


def canary_lines(canary: dict[str, Any]) -> list[str]:
    """status.canary in two lines: where the canary is (revision, phase, step, weights) and its last analysis."""
    achieved = canary.get("achievedWeight")
    where = (f"canary: revision {canary.get('revision')} (stable: revision {canary.get('stableRevision')}) "
             f"{canary.get('phase')}, step {canary.get('step')}/{canary.get('steps')}, weight {canary.get('weight')}% "
             f"(achieved {f'{achieved}%' if achieved is not None else '-'}, {canary.get('mode', 'ReplicaRatio')})")
    if canary.get("message"):
        where += f": {canary['message']}"
    lines = [where]
    analysis = canary.get("analysis")
    if analysis:
        lines.append(
            f"  last analysis {analysis.get('verdict')} at {analysis.get('time')}: {analysis.get('message')} "
            f"(candidate {analysis.get('candidateRequests', 0)} requests, {analysis.get('candidateErrors', 0)} failed, "
            f"p99 {_seconds(analysis.get('candidateP99Seconds'))}; stable {analysis.get('stableRequests', 0)} "
            f"requests, p99 {_seconds(analysis.get('stableP99Seconds'))})"
        )
    return lines


def _history(model: dict[str, Any]) -> list[dict[str, Any]]:
    return list((model.get("status") or {}).get("history") or [])


@app.command("history")
def history_command(
    name: Annotated[str, typer.Argument(help="the MLModel")],
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Show an MLModel's revisions (status.history): which serves, which failed and why."""
    from mlmodel_operator.client import Models
    from rich.table import Table

    with _cluster_failures(output):
        models = Models(kubeconfig)
        ns = namespace or models.default_namespace
        model = models.get(ns, name)
    status = model.get("status") or {}
    history = _history(model)
    canary = status.get("canary")
    if output is Output.JSON:
        _emit_json({"ok": True, "name": name, "namespace": ns, "revision": status.get("revision"),
                    "desiredRevision": status.get("desiredRevision"), "rollout": status.get("rollout"),
                    "history": history, "canary": canary})
        return
    table = Table(title=f"MLModel {ns}/{name}", title_justify="left")
    for column in ("REVISION", "OUTCOME", "CREATED", "DIGEST", "URI", "IMAGE"):
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    rollout = status.get("rollout")
    if rollout:  # a revision being rolled out is not in the history until it serves or fails
        in_canary = canary and canary.get("revision") == rollout.get("revision") and canary.get("phase") in (
            "Progressing", "Promoting")
        history = [*history, {**rollout, "outcome": "Canary" if in_canary else "RollingOut"}]
    for entry in history:
        outcome = str(entry.get("outcome", ""))
        serving = " *" if entry.get("revision") == status.get("revision") else ""
        table.add_row(
            f"{entry.get('revision')}{serving}",
            f"[{OUTCOME_STYLE.get(outcome, 'white')}]{outcome}[/]",
            str(entry.get("createdAt", "")),
            str(entry.get("digest", "")).removeprefix("sha256:")[:12],
            str(entry.get("uri", "")),
            str(entry.get("image") or "").rsplit("/", 1)[-1],  # name:tag; the registry is in --output json
            ": ".join(str(x) for x in (entry.get("reason"), entry.get("message")) if x),
        )
    # A pipe or a log gets whole lines, not a table squeezed to rich's 80-column default.
    (out if out.is_terminal else Console(width=200, highlight=False)).print(table)
    for line in canary_lines(canary) if canary else []:
        out.print(line, markup=False)
    if not history:
        err.print("no revisions recorded yet (the operator has not served this model)")
    else:
        err.print(f"* serving: revision {status.get('revision')}; desired: revision {status.get('desiredRevision')}")


@app.command("rollback")
def rollback_command(
    name: Annotated[str, typer.Argument(help="the MLModel")],
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", min=1, help="serve this revision from status.history")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="follow spec.source again (remove spec.rollbackTo)")] = False,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Pin an earlier revision (spec.rollbackTo) until cleared; the operator serves it without re-validating.
    Changes nothing but the MLModel's spec.rollbackTo; with GitOps, make the same change in Git."""
    from mlmodel_operator.client import ModelApiError, Models

    if (to_revision is None) == (not clear):
        _fail(output, "UsageError", "give --to-revision N or --clear", EXIT_USAGE)
    with _cluster_failures(output):
        models = Models(kubeconfig)
        ns = namespace or models.default_namespace
        model = models.get(ns, name)
        kept = [int(e["revision"]) for e in _history(model) if "revision" in e]
        if to_revision is not None and to_revision not in kept:
            raise ModelApiError(
                "RevisionNotInHistory",
                f"revision {to_revision} is not in the history of {ns}/{name} "
                f"(kept: {', '.join(map(str, kept)) or 'none'}; see `mlmodel history {name}`)",
            )
        models.set_rollback(ns, name, None if clear else to_revision)
    if output is Output.JSON:
        _emit_json({"ok": True, "name": name, "namespace": ns, "rollbackTo": to_revision})
    elif clear:
        out.print(f"{ns}/{name}: spec.rollbackTo removed; the operator follows spec.source again")
    else:
        out.print(f"{ns}/{name}: spec.rollbackTo = revision {to_revision}; follow it with "
                  f"`kubectl get mlm {name} -n {ns} -w`, undo with `mlmodel rollback {name} --clear`")


# ---------------------------------------------------------------------------------------------
# Canary (spec.rollout.strategy Canary): end the current step now, or abort. Each sets one annotation on the
# MLModel to a new value (the operator acts on a new value once; status.canary keeps the last one acted on).
# ---------------------------------------------------------------------------------------------


def _running_canary(models: Models, ns: str, name: str, verb: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The MLModel and its status.canary; NoCanaryRunning unless a canary is in phase Progressing."""
    from mlmodel_operator.client import ModelApiError

    model = models.get(ns, name)
    canary = (model.get("status") or {}).get("canary")
    if not canary:
        raise ModelApiError("NoCanaryRunning", f"{ns}/{name} has no canary (status.canary is empty): nothing to "
                                               f"{verb}; a canary starts when a new revision rolls out with "
                                               "spec.rollout.strategy Canary")
    if canary.get("phase") != "Progressing":
        raise ModelApiError("NoCanaryRunning", f"{ns}/{name}: the canary of revision {canary.get('revision')} is "
                                               f"{canary.get('phase')}, not Progressing: nothing to {verb} "
                                               f"(see `mlmodel history {name} -n {ns}`)")
    return model, canary


def _stamp() -> str:
    """A new annotation value: the time to the microsecond, so two requests a second apart are both new."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def promote_next(model: dict[str, Any], canary: dict[str, Any]) -> str:
    """What a promote of `canary` does, in words (from spec.rollout.canary.steps)."""
    step, steps, revision = int(canary.get("step", 1)), int(canary.get("steps", 1)), canary.get("revision")
    rules = ((model.get("spec") or {}).get("rollout") or {}).get("canary") or {}
    configured = rules.get("steps") or []
    if step >= steps:
        return (f"the last step ({step}/{steps}) ends at the operator's next pass and revision {revision} is "
                "promoted: the model's Deployment takes it (the old ReplicaSet is kept for a fast rollback) and the "
                "candidate's Deployment goes once it is rolled out")
    weight = configured[step].get("weight") if step < len(configured) else None
    then = f"step {step + 1}/{steps} sends {weight}% of the traffic" if weight is not None else f"step {step + 1}"
    return (f"step {step}/{steps} ends at the operator's next pass; {then} to revision {revision} "
            "(analysis windows go on: a failed one still aborts)")


def _annotate_canary(verb: str, key: str, name: str, namespace: str | None, kubeconfig: str | None,
                     output: Output) -> None:
    from mlmodel_operator.client import Models

    with _cluster_failures(output):
        models = Models(kubeconfig)
        ns = namespace or models.default_namespace
        model, canary = _running_canary(models, ns, name, verb)
        value = _stamp()
        models.set_annotation(ns, name, key, value)
    revision, stable = canary.get("revision"), canary.get("stableRevision")
    if verb == "promote":
        next_ = promote_next(model, canary)
    else:
        next_ = (f"the operator aborts the canary at its next pass: revision {revision} is recorded Failed (reason "
                 f"CanaryAborted), the candidate's Deployment is deleted and revision {stable} serves with all its "
                 "replicas; the model stays Stalled (RolledBack) until the spec changes or the annotation "
                 "serving.mlmodel.io/retry gets a new value")
    observed = (model.get("status") or {}).get("observedGeneration")
    lagging = observed is not None and observed < int((model.get("metadata") or {}).get("generation") or 0)
    if output is Output.JSON:
        _emit_json({"ok": True, "name": name, "namespace": ns, "annotation": key, "value": value,
                    "revision": revision, "step": canary.get("step"), "steps": canary.get("steps"), "next": next_,
                    "specNotYetObserved": lagging})
        return
    out.print(f"{ns}/{name}: {key}={value}", markup=False)
    out.print(f"  {next_}", markup=False)
    if lagging:
        err.print(f"[yellow]warning[/]: the operator has not yet observed the latest spec of {ns}/{name}: a new "
                  "revision starts a new canary, and a value set before it starts is not acted on")
    out.print(f"  follow it with `kubectl get mlm {name} -n {ns} -w` or `mlmodel history {name} -n {ns}`",
              markup=False)


@app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="the MLModel")],
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TEXT,
) -> None:
    """End the canary's current step now (a step waiting for promotion, or what is left of a timed one); after
    the last step the candidate revision is promoted. Sets the annotation serving.mlmodel.io/promote to a new value,
    nothing else (GitOps-safe: docs/gitops.md). Refused unless a canary is Progressing."""
    from mlmodel_operator.names import PROMOTE_ANNOTATION

    _annotate_canary("promote", PROMOTE_ANNOTATION, name, namespace, kubeconfig, output)


@app.command("abort")
def abort_command(
    name: Annotated[str, typer.Argument(help="the MLModel")],
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TEXT,
) -> None:
    """Abort the canary: the candidate revision is recorded Failed (CanaryAborted) and the stable revision serves
    alone again. Sets the annotation serving.mlmodel.io/abort to a new value, nothing else (GitOps-safe:
    docs/gitops.md). Refused unless a canary is Progressing."""
    from mlmodel_operator.names import ABORT_ANNOTATION

    _annotate_canary("abort", ABORT_ANNOTATION, name, namespace, kubeconfig, output)


def main() -> None:
    """Entry point of the `mlmodel` console script."""
    app()


if __name__ == "__main__":
    main()
