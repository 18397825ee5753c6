"""Where a canary goes next (pure): hold at its step, move to the next step, promote the candidate, or abort.

A step ends when it has lasted its pause and at least one analysis window in it passed; a manual step ends
only on `mlmodel promote` (which also skips what is left of a timed step). A failed window, or
`mlmodel abort`, aborts at once: the candidate's revision is then Failed with reason CanaryAborted and the
existing rollback takes over.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mlmodel_operator.canary.analysis import Judgement, Verdict


class Action(enum.Enum):
    HOLD = "Hold"
    NEXT_STEP = "NextStep"
    PROMOTE = "Promote"
    ABORT = "Abort"


@dataclass(frozen=True)
class StepRule:
    """One of spec.rollout.canary.steps."""

    weight: int
    pause_seconds: int = 0
    manual: bool = False


@dataclass(frozen=True)
class Progress:
    action: Action
    step: int  # the step the canary is at after this decision
    message: str


def progress(
    steps: Sequence[StepRule], step: int, step_age_seconds: float, passed_in_step: int,
    judgement: Judgement | None, *, promote: bool = False, abort: bool = False,
) -> Progress:
    """`judgement`: the window that just ended, None while none did; `passed_in_step` counts it already."""
    last = step >= len(steps) - 1

    def forward(why: str) -> Progress:
        if last:
            return Progress(Action.PROMOTE, step, why)
        return Progress(Action.NEXT_STEP, step + 1, f"{why}; weight {steps[step + 1].weight}%")

    if abort:
        return Progress(Action.ABORT, step, "aborted by request (mlmodel abort)")
    if judgement is not None and judgement.verdict is Verdict.FAIL:
        return Progress(Action.ABORT, step, judgement.message)
    if promote:
        return forward(f"step {step + 1} promoted by request (mlmodel promote)")
    rule = steps[step]
    if rule.manual:
        return Progress(Action.HOLD, step, f"step {step + 1} waits for mlmodel promote")
    if passed_in_step >= 1 and step_age_seconds >= rule.pause_seconds:
        return forward(f"step {step + 1} passed ({judgement.message if judgement else 'analysis passed'})")
    if passed_in_step < 1:
        return Progress(Action.HOLD, step, f"step {step + 1} waits for a passing analysis window")
    return Progress(Action.HOLD, step,
                    f"step {step + 1} pauses {rule.pause_seconds - step_age_seconds:.0f}s more")
