"""The whole status of an MLModel, computed once per reconcile pass from what the pass found."""

from __future__ import annotations

from dataclasses import dataclass

from mlmodel_operator import gates, names
from mlmodel_operator.spec import (
    CanaryStatus,
    HistoryEntry,
    MLModelStatus,
    PackageStatus,
    RevisionRecord,
    serving_entry,
)
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
        "QualityGateFailed",  # the package's training metrics miss spec.qualityGate (mlmodel_operator.gates)
    }
)


@dataclass(frozen=True)
class Failure:
    """A problem that will not go away without a change to the spec, the package or the config."""

    reason: str
    message: str


@dataclass(frozen=True)
class Revisions:
    """What the pass decided about revisions (plan.advance), as the status needs it."""

    history: tuple[HistoryEntry, ...] = ()
    rollout: RevisionRecord | None = None  # the revision being rolled out
    desired: int | None = None  # the revision the spec asks for; None: not known in this pass
    failed_revision: int | None = None  # the revision the spec asks for that failed (not retried)
    rolled_back: Failure | None = None  # ... why, when the last serving revision is back
    failed: Failure | None = None  # ... why, when nothing was rolled back
    auto_rollback: bool = True
    in_rollout: bool = False  # the live template is the revision being rolled out
    pinned: bool = False  # spec.rollbackTo chose the desired revision
    last_retry: str | None = None

    @property
    def serving_revision(self) -> int | None:
        serving = serving_entry(self.history)
        return serving.revision if serving is not None else None


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
    applied_revision: int | None = None  # the revision the Deployment was rendered at (the target)
    revisions: Revisions = Revisions()
    quality_gate: bool = False  # spec.qualityGate was checked for the desired revision (mlmodel_operator.gates)
    canary: CanaryStatus | None = None  # status.canary after this pass (mlmodel_operator.canary.rollout)


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


def _retry_hint(revision: int | None) -> str:
    return (
        f"change the spec, or set the annotation {names.RETRY_ANNOTATION} to a new value to try revision "
        f"{revision} again"
    )


def _rolled_back(facts: PassFacts, failure: Failure) -> tuple[Verdict, Verdict, Verdict]:
    obs, rev, target = facts.observation, facts.revisions, facts.applied_revision
    failed = rev.failed_revision
    message = (
        f"revision {failed} failed ({failure.reason}: {failure.message}); rolled back to revision {target}; "
        + _retry_hint(failed)
    )
    stalled = Verdict("True", "RolledBack", message)
    if obs.complete and obs.revision == target:
        serving = (
            f"revision {target} serving (rolled back from revision {failed}), "
            f"{obs.available}/{obs.desired} replicas available"
        )
        return Verdict("True", "Serving", serving), Verdict("False", "RolledBack", message), stalled
    progress = f"rolling back to revision {target}: {obs.available}/{obs.desired} replicas available"
    return Verdict("False", "RollingBack", progress), Verdict("True", "RollingBack", progress), stalled


def _failed(facts: PassFacts, failure: Failure) -> tuple[Verdict, Verdict, Verdict]:
    rev = facts.revisions
    why = "spec.rollout.autoRollback is off" if not rev.auto_rollback else "no earlier revision served to roll back to"
    message = f"revision {rev.failed_revision} failed: {failure.message}; {why}; {_retry_hint(rev.failed_revision)}"
    stalled = Verdict("True", failure.reason, message)
    return Verdict("False", failure.reason, message), Verdict("False", "Stalled"), stalled


def _scaling(facts: PassFacts) -> bool:
    """Only the replica count of the serving revision differs: no rollout, every pod of the current template,
    at least one available."""
    obs = facts.observation
    return (not facts.revisions.in_rollout and obs.exists and obs.up_to_date and obs.updated == obs.replicas
            and obs.available >= 1 and not obs.problems)


def _progress(facts: PassFacts) -> tuple[Verdict, Verdict, Verdict]:
    """(Ready, Reconciling, Stalled)."""
    obs = facts.observation
    rev = facts.revisions
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
    if rev.rolled_back is not None:
        return _rolled_back(facts, rev.rolled_back)
    if rev.failed is not None:
        return _failed(facts, rev.failed)
    revision = facts.applied_revision
    stalled: Verdict | None = None
    # While a revision rolls out, its pods' problems are evidence with grace periods (plan.evidence);
    # afterwards (a serving revision whose pods go wrong) they stall the model at once.
    if not rev.in_rollout:
        if obs.deadline_exceeded and not obs.complete:
            stalled = Verdict("True", "ProgressDeadlineExceeded", f"revision {revision}: {obs.deadline_exceeded}")
        elif obs.problems:
            problem = obs.problems[0]
            more = f" (and {len(obs.problems) - 1} more pods)" if len(obs.problems) > 1 else ""
            detail = f"revision {revision}: {problem.message}{more}"
            stalled = Verdict("True", problem.reason, detail)
    if stalled is not None:
        return Verdict("False", stalled.reason, stalled.message), Verdict("False", "Stalled"), stalled
    if facts.canary is not None and facts.canary.phase in ("Progressing", "Promoting"):
        return _canary(facts, facts.canary)
    pinned = " (spec.rollbackTo)" if rev.pinned else ""
    if obs.complete:
        msg = f"revision {revision}{pinned} serving, {obs.available}/{obs.desired} replicas available"
        return Verdict("True", "Serving", msg), Verdict("False", "Reconciled"), Verdict("False", "Reconciled")
    if _scaling(facts):
        # The serving revision's replica count changes (kubectl scale, an HPA): it keeps serving, so Ready
        # stays True; Reconciling says the Deployment has not reached the new count yet.
        msg = (f"revision {revision}{pinned} serving, {obs.available}/{obs.desired} replicas available; "
               f"scaling from {obs.replicas} to {obs.desired} replicas")
        return Verdict("True", "Serving", msg), Verdict("True", "Scaling", msg), Verdict("False", "Progressing")
    if not obs.up_to_date or obs.updated < obs.desired or obs.replicas > obs.desired:
        reason = "RollingOut"
        msg = (
            f"rolling out revision {revision}: {obs.updated}/{obs.desired} replicas updated, "
            f"{obs.replicas - obs.updated} old remaining, {obs.available} available"
        )
    else:
        reason = "WaitingForModelReady"
        msg = f"revision {revision}: {obs.ready}/{obs.desired} replicas have the model loaded and ready"
    if obs.problems:
        problem = obs.problems[0]
        msg += f"; {problem.message}"
    return Verdict("False", reason, msg), Verdict("True", reason, msg), Verdict("False", "Progressing")


def _canary(facts: PassFacts, canary: CanaryStatus) -> tuple[Verdict, Verdict, Verdict]:
    """A canary runs: the stable revision serves (Ready while it has a replica available) and the rollout of the
    candidate is in progress (Reconciling, kstatus InProgress) until it is promoted or aborted."""
    obs = facts.observation
    achieved = f"{canary.achieved_weight}%" if canary.achieved_weight is not None else "none yet"
    if canary.phase == "Promoting":
        # The model's Deployment takes the candidate's revision pod by pod; the candidate serves meanwhile.
        msg = (f"promoting revision {canary.revision}: {obs.updated}/{obs.desired} replicas of the model's "
               f"Deployment updated, the canary's {canary.candidate_replicas} serving meanwhile")
        serving = f"revisions {canary.stable_revision} and {canary.revision} serving; {msg}"
    else:
        msg = (f"canary of revision {canary.revision}: step {canary.step}/{canary.steps}, weight {canary.weight}% "
               f"({achieved} achieved, {canary.candidate_replicas} candidate and {canary.stable_replicas} stable "
               "replicas)")
        serving = f"revision {canary.stable_revision} serving, {obs.available}/{obs.desired} replicas available; {msg}"
    ready = (Verdict("True", "Serving", serving) if obs.available >= 1 or canary.achieved_weight
             else Verdict("False", "MinimumReplicasUnavailable", serving))
    return ready, Verdict("True", "Canary", msg), Verdict("False", "Progressing")


def _rolled_back_verdict(rev: Revisions) -> Verdict:
    if rev.rolled_back is None:
        return Verdict("False", "NotRolledBack")
    f = rev.rolled_back
    message = f"revision {rev.failed_revision} failed: {f.message}; revision {rev.serving_revision} serves"
    return Verdict("True", f.reason, message)


def compute_status(previous: MLModelStatus, facts: PassFacts, now: str) -> MLModelStatus:
    """The status to write; equal to `previous` when nothing changed (then nothing is written)."""
    obs = facts.observation
    rev = facts.revisions
    ready, reconciling, stalled = _progress(facts)
    verdicts = {
        "Ready": ready,
        "Reconciling": reconciling,
        "Stalled": stalled,
        "PackageValid": _package_verdict(facts),
        "Available": _available_verdict(obs),
        "RolledBack": _rolled_back_verdict(rev),
    }
    known = rev.desired is not None
    return MLModelStatus(
        observed_generation=facts.generation,
        conditions=merge_conditions(previous.conditions, verdicts, facts.generation, now),
        replicas=obs.replicas,
        available_replicas=obs.available,
        updated_replicas=obs.updated,
        availability=f"{obs.available}/{facts.desired_replicas}",
        selector=facts.selector,
        url=facts.url,
        revision=rev.serving_revision if obs.exists else None,
        desired_revision=rev.desired if known else previous.desired_revision,
        package=facts.package if known and facts.package else previous.package,
        history=list(rev.history),
        rollout=rev.rollout,
        last_retry=rev.last_retry,
        quality=gates.quality_view(facts.quality_gate, facts.failure.reason if facts.failure else None,
                                   facts.package, rev.desired, rev.history, previous.quality),
        autoscaling=previous.autoscaling,  # written by the pass's autoscaler step (reconcile.autoscale)
        canary=facts.canary,
    )
