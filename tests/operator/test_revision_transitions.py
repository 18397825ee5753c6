"""Revision transitions as a table (plan.advance, pure): first rollout; completion; a new revision; a crash loop
rolled back automatically (and the same decision after an operator restart, before or after the rollback was
applied); the retry annotation; autoRollback off; a failed first revision (and Kubernetes completing it later);
revision 3 after a failed 2; a revert of the spec during a rollout; spec.rollbackTo of an earlier revision
and its completion; a bad package while a rollout fails; success winning over evidence; a status written by an
older operator; and the history bound, in entries and bytes (never dropping the serving or the asked-for
revision)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from mlmodel_operator.plan import LiveTemplate, RevisionInputs, Transition, advance, trim
from mlmodel_operator.spec import HistoryEntry, MLModelStatus, RevisionRecord
from mlmodel_operator.workload import Problem

from tests.operator.factories import history_entry, record

NOW = "2026-11-22T11:00:00Z"
CRASH = Problem("CrashLoop", "pod m-2: container runtime restarted 3 times, last exit code 1 (Error)")
CODES = {"S": "Serving", "U": "Superseded", "F": "Failed", "R": "RolledBack"}


def hist(text: str) -> list[HistoryEntry]:
    """'1S 2F' -> revision 1 Serving, revision 2 Failed (CrashLoop)."""
    out = []
    for item in text.split():
        number, code = int(item[:-1]), CODES[item[-1]]
        failed = code == "Failed"
        out.append(history_entry(number, code, CRASH.reason if failed else None, CRASH.message if failed else None))  # type: ignore[arg-type]
    return out


def short(history: tuple[HistoryEntry, ...]) -> str:
    letters = {v: k for k, v in CODES.items()}
    return " ".join(f"{e.revision}{letters[e.outcome]}" for e in history)


def live(revision: int | None, complete: bool = False) -> LiveTemplate:
    return LiveTemplate(revision, f"fp-{revision}" if revision else None, complete)


@dataclass
class Case:
    history: str = ""
    rollout: int | None = None
    wanted: RevisionRecord | None = None
    live: LiveTemplate = field(default_factory=LiveTemplate)
    evidence: Problem | None = None
    auto_rollback: bool = True
    retry: bool = False
    limit: int = 10
    status: MLModelStatus | None = None
    # expected
    history_after: str = ""
    rollout_after: int | None = None
    target: int | None = None
    blocked: int | None = None
    rolled_back: bool = False
    failed_now: int | None = None
    served_now: int | None = None


CASES = {
    "first rollout starts": Case(wanted=record(1), target=1, rollout_after=1),
    "first rollout completes": Case(rollout=1, wanted=record(1), live=live(1, True), history_after="1S", target=1,
                                    served_now=1),
    "steady": Case(history="1S", wanted=record(1), live=live(1, True), history_after="1S", target=1),
    "new revision": Case(history="1S", wanted=record(2), live=live(1, True), history_after="1S", target=2,
                         rollout_after=2),
    "new revision completes": Case(history="1S", rollout=2, wanted=record(2), live=live(2, True),
                                   history_after="1U 2S", target=2, served_now=2),
    "crash loop: automatic rollback": Case(history="1S", rollout=2, wanted=record(2), live=live(2), evidence=CRASH,
                                           history_after="1S 2F", target=1, blocked=2, rolled_back=True,
                                           failed_now=2),
    "restart before the rollback was applied": Case(history="1S 2F", wanted=record(2), live=live(2),
                                                    history_after="1S 2F", target=1, blocked=2, rolled_back=True),
    "after the rollback (a restart decides the same)": Case(history="1S 2F", wanted=record(2), live=live(1, True),
                                                            history_after="1S 2F", target=1, blocked=2,
                                                            rolled_back=True),
    "retry annotation": Case(history="1S 2F", wanted=record(2), live=live(1, True), retry=True,
                             history_after="1S 2F", target=2, rollout_after=2),
    "retry under way is not blocked": Case(history="1S 2F", rollout=2, wanted=record(2), live=live(2),
                                           history_after="1S 2F", target=2, rollout_after=2),
    "autoRollback off: left as it is": Case(history="1S", rollout=2, wanted=record(2), live=live(2), evidence=CRASH,
                                            auto_rollback=False, history_after="1S 2F", target=2, blocked=2,
                                            failed_now=2),
    "first revision fails: nothing to roll back to": Case(rollout=1, wanted=record(1), live=live(1), evidence=CRASH,
                                                          history_after="1F", target=1, blocked=1, failed_now=1),
    "a failed revision Kubernetes completes after all serves": Case(history="1F", wanted=record(1),
                                                                    live=live(1, True), history_after="1S",
                                                                    target=1, served_now=1),
    "revision 3 after a failed 2": Case(history="1S 2F", wanted=record(3), live=live(1, True),
                                        history_after="1S 2F", target=3, rollout_after=3),
    "revert of the spec during a rollout": Case(history="1S", rollout=2, wanted=record(1), live=live(2),
                                                history_after="1S 2R", target=1),
    "rollbackTo an earlier revision": Case(history="1U 2F 3S", wanted=record(1), live=live(3, True),
                                           history_after="1U 2F 3S", target=1, rollout_after=1),
    "rollbackTo completes": Case(history="1U 2F 3S", rollout=1, wanted=record(1), live=live(1, True),
                                 history_after="1S 2F 3R", target=1, served_now=1),
    "rollbackTo a failed revision is refused like the spec asking for it": Case(
        history="1S 2F", wanted=record(2), live=live(1, True), history_after="1S 2F", target=1, blocked=2,
        rolled_back=True),
    "bad package while the rollout fails": Case(history="1S", rollout=2, wanted=None, live=live(2), evidence=CRASH,
                                                history_after="1S 2F", target=1, blocked=2, rolled_back=True,
                                                failed_now=2),
    "bad package while serving: leave the Deployment": Case(history="1S", wanted=None, live=live(1, True),
                                                            history_after="1S", target=None),
    "success wins over evidence": Case(history="1S", rollout=2, wanted=record(2), live=live(2, True), evidence=CRASH,
                                       history_after="1U 2S", target=2, served_now=2),
    "status from an older operator (no history)": Case(status=MLModelStatus(revision=1, desired_revision=1),
                                                       wanted=record(1), live=live(1, True), history_after="1S",
                                                       target=1, served_now=1),
    "history bound drops the oldest": Case(history="1U 2F 3U 4S", wanted=record(4), live=live(4, True), limit=2,
                                           history_after="3U 4S", target=4),
    "history bound keeps the serving and the asked-for revision": Case(
        history="1S 2F 3F", wanted=record(3), live=live(1, True), limit=2, history_after="1S 3F", target=1,
        blocked=3, rolled_back=True),
}


def _decide(case: Case) -> Transition:
    status = case.status or MLModelStatus(history=hist(case.history),
                                          rollout=record(case.rollout) if case.rollout else None)
    return advance(RevisionInputs(status=status, wanted=case.wanted, live=case.live, evidence=case.evidence,
                         auto_rollback=case.auto_rollback, retry=case.retry, history_limit=case.limit, now=NOW))


@pytest.mark.parametrize("name", list(CASES))
def test_transition(name: str) -> None:
    case = CASES[name]
    got = _decide(case)
    assert short(got.history) == case.history_after
    assert (got.rollout.revision if got.rollout else None) == case.rollout_after
    assert (got.target.revision if got.target else None) == case.target
    assert (got.blocked.revision if got.blocked else None) == case.blocked
    assert got.rolled_back == case.rolled_back
    assert (got.failed_now.revision if got.failed_now else None) == case.failed_now
    assert got.served_now == case.served_now
    assert [e.revision for e in got.history] == sorted(e.revision for e in got.history)


def test_failed_entry_keeps_the_evidence_and_a_new_rollout_its_start_time() -> None:
    got = _decide(CASES["crash loop: automatic rollback"])
    failed = got.failed_now
    assert failed is not None
    assert (failed.outcome, failed.reason, failed.message) == ("Failed", CRASH.reason, CRASH.message)
    assert failed.digest == record(2).digest
    assert failed.settings == record(2).settings  # enough to render it again
    started = _decide(CASES["new revision"])
    assert started.rollout is not None
    assert started.rollout.created_at == NOW
    retried = _decide(CASES["retry annotation"])
    assert retried.rollout is not None
    assert retried.rollout.created_at == NOW
    # An earlier revision rolled out again keeps the time it was first created.
    pinned = _decide(CASES["rollbackTo an earlier revision"])
    assert pinned.rollout is not None
    assert pinned.rollout.created_at == record(1).created_at


def test_replaced_revisions_say_by_which() -> None:
    got = _decide(CASES["revert of the spec during a rollout"])
    left = got.history[-1]
    assert (left.revision, left.outcome, left.message) == (2, "RolledBack", "replaced by revision 1 before it served")
    done = _decide(CASES["new revision completes"])
    assert done.history[0].message == "replaced by revision 2"


def test_trim_never_drops_the_serving_revision() -> None:
    history = hist("1S 2U 3U 4F")
    assert short(trim(history, 1, keep=[])) == "1S"
    assert short(trim(history, 2, keep=[4])) == "1S 4F"
    assert short(trim(history, 10, keep=[])) == "1S 2U 3U 4F"
    # Bounded in bytes too (entries carry their pod metadata): the oldest go first.
    sizes = [len(entry.model_dump_json(by_alias=True, exclude_none=True)) for entry in history]
    assert short(trim(history, 10, keep=[], max_bytes=sum(sizes) - sizes[1])) == "1S 3U 4F"
    assert short(trim(history, 10, keep=[], max_bytes=1)) == "1S"
