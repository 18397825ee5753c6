"""Conditions with kstatus semantics: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from mlmodel_operator.spec import Condition, ConditionType

CONDITION_ORDER: tuple[ConditionType, ...] = get_args(ConditionType)


@dataclass(frozen=True)
class Verdict:
    """A condition's status, reason and message before its transition time is known."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


def merge_conditions(
    previous: Sequence[Condition], verdicts: dict[str, Verdict], generation: int, now: str
) -> list[Condition]:
    """New conditions in a fixed order, keeping each previous lastTransitionTime when status is the same."""
    before = {cond.type: cond for cond in previous}
    out: list[Condition] = []
    for kind in sorted(verdicts, key=lambda k: (CONDITION_ORDER.index(k) if k in CONDITION_ORDER else 99, k)):
        verdict = verdicts[kind]
        old = before.get(kind)
        changed = old is None or old.status != verdict.status
        out.append(
            Condition(
                type=kind,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message,
                last_transition_time=now if changed or old is None else old.last_transition_time,
                observed_generation=generation,
            )
        )
    return out


def find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((cond for cond in conditions if cond.type == kind), None)
