"""The verdict of one analysis window: is the candidate revision as good as the stable one?

A window holds what each revision's runtimes answered in it (requests, server errors, the p99 latency) and,
with shadow traffic, how many of the candidate's answers the stable runtime compared with its own and how many
differed beyond the tolerance. Too few requests make a window inconclusive, never a pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Window:
    """One revision's figures over one analysis window (deltas of its runtimes' counters)."""

    requests: float = 0.0
    errors: float = 0.0  # answered with a 5xx: the runtime or the model failed
    client_errors: float = 0.0  # answered with a 4xx (but 429 and 499): a bad request, or a model refusing an input
    p99_seconds: float | None = None
    compared: float = 0.0  # shadow: candidate answers compared with the stable revision's
    disagreed: float = 0.0  # shadow: of those, outside the tolerance

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def client_error_ratio(self) -> float:
        return self.client_errors / self.requests if self.requests else 0.0

    def failures_beside(self, stable: Window) -> float:
        """This revision's failed answers: its 5xx, and its 4xx beyond the stable revision's 4xx ratio. The Service
        splits the same clients' requests between both, so malformed requests reach both alike; a model that
        refuses inputs the stable one answers (the framework fails on them: 400) shows as the excess."""
        return self.errors + max(0.0, self.client_errors - stable.client_error_ratio * self.requests)

    @property
    def disagreement(self) -> float:
        return self.disagreed / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class Rules:
    """spec.rollout.canary.analysis."""

    min_requests: int = 20
    max_error_ratio: float = 0.01
    max_latency_ratio: float = 1.5
    max_disagreement: float | None = None  # only with shadow traffic


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str  # the figures, e.g. "error ratio 4.8% > 1% over 600 requests"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.3g}%"


def judge(stable: Window, candidate: Window, rules: Rules) -> Judgement:
    """Fail on the first bound the candidate exceeds: errors, then (with shadow traffic) disagreement, then
    latency (a wrong answer is worse than a slow one); pass when it exceeds none with enough requests;
    inconclusive otherwise."""
    if candidate.requests < rules.min_requests and candidate.compared < rules.min_requests:
        return Judgement(Verdict.INCONCLUSIVE,
                         f"{candidate.requests:.0f} requests < {rules.min_requests} in the window")
    figures: list[str] = []
    answered = candidate.requests >= rules.min_requests
    if answered:
        ratio = candidate.failures_beside(stable) / candidate.requests
        if ratio > rules.max_error_ratio:
            return Judgement(Verdict.FAIL, f"error ratio {_pct(ratio)} > {_pct(rules.max_error_ratio)} "
                                           f"over {candidate.requests:.0f} requests")
        figures.append(f"error ratio {_pct(ratio)} over {candidate.requests:.0f} requests")
    if rules.max_disagreement is not None:
        if candidate.compared >= rules.min_requests:
            share = candidate.disagreement
            if share > rules.max_disagreement:
                return Judgement(Verdict.FAIL, f"disagreement {_pct(share)} > {_pct(rules.max_disagreement)} "
                                               f"over {candidate.compared:.0f} shadowed requests")
            figures.append(f"disagreement {_pct(share)} over {candidate.compared:.0f} shadowed requests")
        elif not answered:
            return Judgement(Verdict.INCONCLUSIVE,
                             f"{candidate.compared:.0f} shadowed requests < {rules.min_requests} in the window")
    if answered and stable.requests >= rules.min_requests and stable.p99_seconds and candidate.p99_seconds is not None:
        slower = candidate.p99_seconds / stable.p99_seconds
        if slower > rules.max_latency_ratio:
            return Judgement(Verdict.FAIL, f"p99 {candidate.p99_seconds:.3g}s is {slower:.2f}x the stable "
                                           f"revision's {stable.p99_seconds:.3g}s (> {rules.max_latency_ratio:g}x)")
        figures.append(f"p99 {slower:.2f}x the stable revision's")
    return Judgement(Verdict.PASS, "; ".join(figures))
