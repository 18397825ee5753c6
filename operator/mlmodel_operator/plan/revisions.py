"""Revisions: their numbers, the history and the transitions between them, as pure functions.

A revision is a distinct pod template (package digest, format, runtime settings, resources, pool, pod
metadata). `advance` takes what a pass found (the status so far, the revision the spec asks for, the live
Deployment's revision and whether its rollout is complete, evidence that it failed) and returns the new
history, the revision being rolled out, and the one to render: the spec's, or, after a failure, the last
one that served. Everything it needs lives in the status and the objects, so a restarted operator
decides the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlmodel_operator.spec import HistoryEntry, MLModelStatus, Outcome, RevisionRecord, serving_entry
from mlmodel_operator.workload import Deployment, Problem


@dataclass(frozen=True)
class LiveTemplate:
    """The live Deployment's pod template: its revision and fingerprint; whether its rollout is complete."""

    revision: int | None = None
    fingerprint: str | None = None
    complete: bool = False


def live_template(deployment: Mapping[str, Any] | None, complete: bool) -> LiveTemplate:
    if deployment is None:
        return LiveTemplate(complete=complete)
    view = Deployment.of(deployment)
    return LiveTemplate(view.revision, view.fingerprint, complete)


# -- numbers --------------------------------------------------------------------------------------


def revision_number(fingerprint: str, live: LiveTemplate, status: MLModelStatus) -> int:
    """The number of the pod template with `fingerprint`.

    The live template keeps its number; a template recorded before (a revert of the spec to an earlier
    package and settings) gets that revision's number back; any other template gets the next number
    after every one seen, so numbers never repeat.
    """
    if live.fingerprint == fingerprint and live.revision is not None:
        return live.revision
    if status.rollout is not None and status.rollout.fingerprint == fingerprint:
        return status.rollout.revision
    for entry in reversed(status.history):
        if entry.fingerprint == fingerprint:
            return entry.revision
    seen = [live.revision, status.revision, status.desired_revision]
    seen += [status.rollout.revision if status.rollout else None]
    seen += [entry.revision for entry in status.history]
    return max((n for n in seen if n is not None), default=0) + 1


# -- history --------------------------------------------------------------------------------------


def find_entry(history: Iterable[HistoryEntry], revision: int | None) -> HistoryEntry | None:
    return next((entry for entry in history if entry.revision == revision), None)


def entry_of(
    record: RevisionRecord, outcome: Outcome, reason: str | None = None, message: str | None = None
) -> HistoryEntry:
    return HistoryEntry(**dict(record_of(record)), outcome=outcome, reason=reason, message=message)


def record_of(entry: RevisionRecord) -> RevisionRecord:
    """The revision without its outcome."""
    return RevisionRecord(**{name: getattr(entry, name) for name in RevisionRecord.model_fields})


def put(history: Sequence[HistoryEntry], entry: HistoryEntry) -> tuple[HistoryEntry, ...]:
    """`history` with `entry` in place of the entry of the same number, ordered by revision."""
    kept = [e for e in history if e.revision != entry.revision]
    return tuple(sorted([*kept, entry], key=lambda e: e.revision))


def replaced_outcome(old: int, new: int) -> Outcome:
    """A revision replaced by a later one is Superseded; by an earlier one (a rollback, a revert), RolledBack."""
    return "RolledBack" if new < old else "Superseded"


def serve(history: Sequence[HistoryEntry], record: RevisionRecord) -> tuple[HistoryEntry, ...]:
    """`record` serves now; the one that served before was Superseded or RolledBack by it."""
    out = tuple(history)
    before = serving_entry(out)
    if before is not None and before.revision != record.revision:
        out = put(out, entry_of(before, replaced_outcome(before.revision, record.revision),
                                message=f"replaced by revision {record.revision}"))
    kept = find_entry(out, record.revision)
    created = kept.created_at if kept is not None else record.created_at
    return put(out, entry_of(record.model_copy(update={"created_at": created}), "Serving"))


# The history lives in the MLModel's status, and an object must fit in etcd (1.5 MiB by default): entries
# carry their pod metadata, which may be large, so the history is bounded in bytes too.
MAX_HISTORY_BYTES = 256 * 1024


def trim(
    history: Sequence[HistoryEntry], limit: int, keep: Iterable[int | None], max_bytes: int = MAX_HISTORY_BYTES
) -> tuple[HistoryEntry, ...]:
    """At most `limit` entries and about `max_bytes` of JSON: the oldest go first, never the serving one nor
    those in `keep`."""
    protected = {n for n in keep if n is not None}
    serving = serving_entry(history)
    if serving is not None:
        protected.add(serving.revision)
    sizes = {entry.revision: len(entry.model_dump_json(by_alias=True, exclude_none=True)) for entry in history}
    out = list(history)
    for entry in list(out):
        if len(out) <= limit and sum(sizes[e.revision] for e in out) <= max_bytes:
            break
        if entry.revision not in protected:
            out.remove(entry)
    return tuple(out)


# -- transitions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionInputs:
    """What one pass knows about the revisions."""

    status: MLModelStatus  # as stored: history, rollout, last retry
    wanted: RevisionRecord | None  # the revision the spec asks for; None when it cannot be known (bad package)
    live: LiveTemplate
    evidence: Problem | None  # the rolling-out revision's failure, seen on its pods or Deployment
    auto_rollback: bool
    retry: bool  # a new value of the retry annotation
    history_limit: int
    now: str
    canary: int | None = None  # the rolling-out revision runs as a canary beside the live one: evidence is its own


@dataclass(frozen=True)
class Transition:
    """The revisions after this pass, and the one to render."""

    history: tuple[HistoryEntry, ...]
    rollout: RevisionRecord | None  # the revision being rolled out
    target: RevisionRecord | None  # the revision to render and apply; None: leave the Deployment alone
    blocked: HistoryEntry | None = None  # the spec asks for this failed revision: not retried
    rolled_back: bool = False  # ... and the target is the last revision that served
    failed_now: HistoryEntry | None = None  # a revision that failed in this pass
    served_now: int | None = None  # a revision that completed its rollout in this pass

    @property
    def serving(self) -> HistoryEntry | None:
        return serving_entry(self.history)


def _known(
    number: int | None, *records: RevisionRecord | None, history: Sequence[HistoryEntry]
) -> RevisionRecord | None:
    for record in records:
        if record is not None and record.revision == number:
            return record
    return find_entry(history, number)


def advance(inp: RevisionInputs) -> Transition:
    """The next state of the revisions and the one to render (see the module's docstring)."""
    live_record = _known(inp.live.revision, inp.status.rollout, inp.wanted, history=inp.status.history)
    history, rollout, failed_now, served_now = _settle_live(inp, live_record)
    history, rollout = _drop_replaced(inp.wanted, history, rollout)
    target, rollout, blocked = _choose_target(inp, history, rollout, live_record)
    serving = serving_entry(history)
    rolled_back = False
    if blocked is not None and inp.auto_rollback and serving is not None and serving.revision != blocked.revision:
        target = record_of(serving)
        rolled_back = True
    keep = [inp.wanted.revision if inp.wanted else None, rollout.revision if rollout else None]
    return Transition(
        history=trim(history, inp.history_limit, keep=keep),
        rollout=rollout,
        target=target,
        blocked=blocked,
        rolled_back=rolled_back,
        failed_now=failed_now,
        served_now=served_now,
    )


History = tuple[HistoryEntry, ...]


def _settle_live(
    inp: RevisionInputs, live_record: RevisionRecord | None
) -> tuple[History, RevisionRecord | None, HistoryEntry | None, int | None]:
    """1. The live revision's rollout: complete -> it serves (even one recorded Failed, when Kubernetes completed
    it after all); failing evidence while it rolls out -> Failed. Success wins a tie.
    Returns (history, rollout, failed now, served now)."""
    live, history, rollout = inp.live, tuple(inp.status.history), inp.status.rollout
    served_now = None
    if live.revision is not None and live.complete and live_record is not None:
        current = serving_entry(history)
        if current is None or current.revision != live.revision:
            history = serve(history, record_of(live_record))
            served_now = live.revision
        if rollout is not None and rollout.revision == live.revision:
            return history, None, None, served_now
        if rollout is None or rollout.revision != inp.canary:
            return history, rollout, None, served_now
    if rollout is not None and rollout.revision in (live.revision, inp.canary) and inp.evidence is not None:
        failed_now = entry_of(rollout, "Failed", inp.evidence.reason, inp.evidence.message)
        return put(history, failed_now), None, failed_now, served_now
    return history, rollout, None, served_now


def _drop_replaced(
    wanted: RevisionRecord | None, history: History, rollout: RevisionRecord | None
) -> tuple[History, RevisionRecord | None]:
    """2. A rollout the spec no longer asks for was replaced before it served."""
    if wanted is None or rollout is None or rollout.revision == wanted.revision:
        return history, rollout
    left = find_entry(history, rollout.revision)
    if left is None or left.outcome == "Failed":
        history = put(history, entry_of(rollout, replaced_outcome(rollout.revision, wanted.revision),
                                        message=f"replaced by revision {wanted.revision} before it served"))
    return history, None


def _choose_target(
    inp: RevisionInputs, history: History, rollout: RevisionRecord | None, live_record: RevisionRecord | None
) -> tuple[RevisionRecord | None, RevisionRecord | None, HistoryEntry | None]:
    """3. The revision to render, before any rollback. Returns (target, rollout, blocked): `blocked` is a failed
    revision the spec asks for (not retried; a retried one rolls out anew, created now)."""
    wanted = inp.wanted
    if wanted is None:
        # Nothing valid to roll out: leave the Deployment, unless its revision failed and one can go back.
        failed_live = find_entry(history, inp.live.revision)
        blocked = failed_live if failed_live is not None and failed_live.outcome == "Failed" else None
        return None, rollout, blocked
    earlier = find_entry(history, wanted.revision)
    in_progress = rollout is not None and rollout.revision == wanted.revision
    if earlier is not None and earlier.outcome == "Failed" and not in_progress and not inp.retry:
        return live_record, rollout, earlier
    retried = earlier is not None and earlier.outcome == "Failed" and not in_progress
    serving = serving_entry(history)
    if serving is not None and serving.revision == wanted.revision:
        rollout = None
    elif not in_progress:
        created = inp.now if retried or earlier is None else earlier.created_at
        rollout = wanted.model_copy(update={"created_at": created})
    return wanted, rollout, None
