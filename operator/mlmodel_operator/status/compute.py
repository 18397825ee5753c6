"""The whole status of an MLModel, computed once per reconcile pass from what the pass found."""

from __future__ import annotations

from dataclasses import dataclass

from mlmodel_operator.spec import MLModelStatus, PackageStatus
from mlmodel_operator.status.conditions import Verdict, merge_conditions
from mlmodel_operator.status.observation import Observation

# Reasons that describe the package itself (they set PackageValid=False); see docs/contracts.md.
PACKAGE_REASONS = frozenset(
    {
        "PackageNotFound",
        "AccessDenied",
        "ManifestInvalid",
        "MetadataInvalid",
        "SizeMismatch",
        "DigestMismatch",
        "PackageDigestMismatch",
        "UnsafeArchive",
        "FormatUnsupported",
        "FormatNotAllowed",
        "FormatMismatch",
        "CredentialsNotFound",
        "InvalidSource",
    }
)


@dataclass(frozen=True)
class Failure:
    """A problem that will not go away without a change to the spec, the package or the config."""

    reason: str
    message: str


@dataclass(frozen=True)
class PassFacts:
    """What one reconcile pass found and did."""

    generation: int
    desired_replicas: int
    url: str
    selector: str
    observation: Observation
    package: PackageStatus | None = None  # validated in this pass (or carried over, see reconcile)
    failure: Failure | None = None  # found before applying: the Deployment was left alone
    pending: str | None = None  # validation could not run (object store unavailable): retrying
    applied_revision: int | None = None  # the revision the Deployment now carries, when applied


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _package_verdict(facts: PassFacts) -> Verdict:
    if facts.failure and facts.failure.reason in PACKAGE_REASONS:
        return Verdict("False", facts.failure.reason, facts.failure.message)
    if facts.package:
        pkg = facts.package
        return Verdict("True", "PackageVerified", f"{pkg.format} package {pkg.digest}, {human_size(pkg.size)}")
    return Verdict("Unknown", "ValidatingPackage", facts.pending or "the package has not been validated yet")


def _available_verdict(obs: Observation) -> Verdict:
    if not obs.exists:
        return Verdict("False", "NotDeployed", "the runtime Deployment does not exist (yet)")
    counts = f"{obs.available} of {obs.desired} replicas available"
    if obs.available > 0 and obs.minimum_available:
        return Verdict("True", "MinimumReplicasAvailable", counts)
    if obs.desired == 0:
        return Verdict("False", "ScaledToZero", "replicas is 0")
    return Verdict("False", "MinimumReplicasUnavailable", counts)


def _progress(facts: PassFacts) -> tuple[Verdict, Verdict, Verdict]:
    """(Ready, Reconciling, Stalled)."""
    obs = facts.observation
    if facts.failure:
        f = facts.failure
        return Verdict("False", f.reason, f.message), Verdict("False", "Stalled"), Verdict("True", f.reason, f.message)
    if facts.pending is not None:
        msg = f"waiting to validate the package: {facts.pending}"
        return (
            Verdict("False", "ValidatingPackage", msg),
            Verdict("True", "ValidatingPackage", msg),
            Verdict("False", "Progressing"),
        )
    revision = facts.applied_revision
    stalled: Verdict | None = None
    if obs.deadline_exceeded and not obs.complete:
        stalled = Verdict("True", "ProgressDeadlineExceeded", f"revision {revision}: {obs.deadline_exceeded}")
    elif obs.problems:
        problem = obs.problems[0]
        more = f" (and {len(obs.problems) - 1} more pods)" if len(obs.problems) > 1 else ""
        stalled = Verdict("True", problem.reason, f"revision {revision}: pod {problem.pod}: {problem.message}{more}")
    if stalled is not None:
        return Verdict("False", stalled.reason, stalled.message), Verdict("False", "Stalled"), stalled
    if obs.complete:
        msg = f"revision {revision} serving, {obs.available}/{obs.desired} replicas available"
        return Verdict("True", "Serving", msg), Verdict("False", "Reconciled"), Verdict("False", "Reconciled")
    if not obs.up_to_date or obs.updated < obs.desired or obs.replicas > obs.desired:
        reason = "RollingOut"
        msg = (
            f"rolling out revision {revision}: {obs.updated}/{obs.desired} replicas updated, "
            f"{obs.replicas - obs.updated} old remaining, {obs.available} available"
        )
    else:
        reason = "WaitingForModelReady"
        msg = f"revision {revision}: {obs.ready}/{obs.desired} replicas have the model loaded and ready"
    return Verdict("False", reason, msg), Verdict("True", reason, msg), Verdict("False", "Progressing")


def compute_status(previous: MLModelStatus, facts: PassFacts, now: str) -> MLModelStatus:
    """The status to write; equal to `previous` when nothing changed (then nothing is written)."""
    obs = facts.observation
    ready, reconciling, stalled = _progress(facts)
    verdicts = {
        "Ready": ready,
        "Reconciling": reconciling,
        "Stalled": stalled,
        "PackageValid": _package_verdict(facts),
        "Available": _available_verdict(obs),
    }
    applied = facts.applied_revision is not None
    if not obs.exists:
        serving = None
    elif obs.complete:
        serving = obs.revision
    else:
        serving = previous.revision
    return MLModelStatus(
        observed_generation=facts.generation,
        conditions=merge_conditions(previous.conditions, verdicts, facts.generation, now),
        replicas=obs.replicas,
        available_replicas=obs.available,
        updated_replicas=obs.updated,
        availability=f"{obs.available}/{facts.desired_replicas}",
        selector=facts.selector,
        url=facts.url,
        revision=serving,
        desired_revision=facts.applied_revision if applied else previous.desired_revision,
        package=facts.package if applied else previous.package,
    )
