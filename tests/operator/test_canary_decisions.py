"""Canary decisions, as tables: the verdict of an analysis window, the next step, and the figures of a window
read from two scrapes of the runtimes' /metrics."""

from __future__ import annotations

import pytest
from mlmodel_operator.canary import (
    Action,
    Rules,
    StepRule,
    Verdict,
    Window,
    judge,
    parse_samples,
    progress,
    window_between,
)
from mlmodel_operator.canary.analysis import Judgement
from mlmodel_operator.canary.metrics import quantile

RULES = Rules(min_requests=20, max_error_ratio=0.01, max_latency_ratio=1.5)
STABLE = Window(requests=600, errors=0, p99_seconds=0.040)


@pytest.mark.parametrize(
    ("candidate", "rules", "verdict", "message"),
    [
        (Window(requests=600, errors=3, p99_seconds=0.041), RULES, Verdict.PASS, "error ratio 0.5% over 600"),
        (Window(requests=600, errors=29, p99_seconds=0.041), RULES, Verdict.FAIL,
         "error ratio 4.83% > 1% over 600 requests"),
        (Window(requests=600, errors=0, p99_seconds=0.125), RULES, Verdict.FAIL,
         "p99 0.125s is 3.12x the stable revision's 0.04s (> 1.5x)"),
        (Window(requests=19, errors=19), RULES, Verdict.INCONCLUSIVE, "19 requests < 20 in the window"),
        (Window(requests=0, compared=100, disagreed=12), Rules(max_disagreement=0.05), Verdict.FAIL,
         "disagreement 12% > 5% over 100 shadowed requests"),
        (Window(requests=0, compared=100, disagreed=2), Rules(max_disagreement=0.05), Verdict.PASS,
         "disagreement 2% over 100 shadowed requests"),
        (Window(requests=0, compared=5, disagreed=5), Rules(max_disagreement=0.05), Verdict.INCONCLUSIVE,
         "0 requests < 20"),
        (Window(requests=100, errors=0, p99_seconds=0.2, compared=3), Rules(max_disagreement=0.05),
         Verdict.FAIL, "p99"),
    ],
)
def test_judge(candidate: Window, rules: Rules, verdict: Verdict, message: str) -> None:
    judgement = judge(STABLE, candidate, rules)
    assert judgement.verdict is verdict
    assert message in judgement.message


def test_latency_is_not_judged_against_a_stable_revision_without_traffic() -> None:
    idle = Window(requests=3, p99_seconds=0.001)
    assert judge(idle, Window(requests=100, p99_seconds=0.5), RULES).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("stable", "candidate", "verdict"),
    [
        # the same share of 400s on both: malformed requests, not the candidate's doing
        (Window(requests=1000, client_errors=100), Window(requests=100, client_errors=10), Verdict.PASS),
        # the candidate refuses inputs the stable revision answers (its framework fails on them): 400s in excess
        (Window(requests=1000, client_errors=0), Window(requests=100, client_errors=30), Verdict.FAIL),
        (Window(requests=1000, client_errors=100), Window(requests=100, client_errors=40), Verdict.FAIL),
    ],
)
def test_4xx_beyond_the_stable_revisions_share_are_failures(stable: Window, candidate: Window, verdict: Verdict
                                                            ) -> None:
    assert judge(stable, candidate, RULES).verdict is verdict


STEPS = [StepRule(weight=10, pause_seconds=60), StepRule(weight=50, manual=True), StepRule(weight=100)]
PASSED = Judgement(Verdict.PASS, "error ratio 0% over 600 requests")
FAILED = Judgement(Verdict.FAIL, "error ratio 4.8% > 1% over 600 requests")


@pytest.mark.parametrize(
    ("step", "age", "passed", "judgement", "flags", "action", "to"),
    [
        (0, 10, 1, PASSED, {}, Action.HOLD, 0),  # passed, still pausing
        (0, 60, 0, None, {}, Action.HOLD, 0),  # paused long enough, no passing window yet
        (0, 61, 1, PASSED, {}, Action.NEXT_STEP, 1),
        (0, 5, 0, FAILED, {}, Action.ABORT, 0),
        (1, 600, 9, PASSED, {}, Action.HOLD, 1),  # manual step: only a promote ends it
        (1, 1, 0, None, {"promote": True}, Action.NEXT_STEP, 2),
        (2, 0, 1, PASSED, {}, Action.PROMOTE, 2),  # the last step, no pause
        (2, 0, 0, None, {"promote": True}, Action.PROMOTE, 2),
        (0, 0, 0, None, {"abort": True}, Action.ABORT, 0),
        (1, 0, 0, FAILED, {"promote": True}, Action.ABORT, 1),  # a failed window wins over a promote
    ],
)
def test_progress(
    step: int, age: float, passed: int, judgement: Judgement | None, flags: dict[str, bool], action: Action, to: int
) -> None:
    decided = progress(STEPS, step, age, passed, judgement, **flags)
    assert (decided.action, decided.step) == (action, to), decided.message


def test_abort_message_carries_the_figures() -> None:
    assert progress(STEPS, 0, 5, 0, FAILED).message == "error ratio 4.8% > 1% over 600 requests"


def _scrape(revision: str, ok: int, failed: int, buckets: dict[str, int], shadow: dict[str, int] | None = None) -> str:
    lines = [
        "# TYPE mlmodel_runtime_requests counter",
        f'mlmodel_runtime_requests_total{{model="m",revision="{revision}",code="200"}} {ok}',
        f'mlmodel_runtime_requests_total{{model="m",revision="{revision}",code="500"}} {failed}',
        f'mlmodel_runtime_requests_total{{model="m",revision="{revision}",code="400"}} 7',
        "# TYPE mlmodel_runtime_request_duration_seconds histogram",
    ]
    lines += [f'mlmodel_runtime_request_duration_seconds_bucket{{model="m",revision="{revision}",le="{le}"}} {n}'
              for le, n in buckets.items()]
    total = list(buckets.values())[-1]
    lines += [f'mlmodel_runtime_request_duration_seconds_count{{model="m",revision="{revision}"}} {total}',
              f'mlmodel_runtime_request_duration_seconds_sum{{model="m",revision="{revision}"}} 1.0']
    if shadow:
        lines.append("# TYPE mlmodel_runtime_shadow_requests counter")
        lines += [f'mlmodel_runtime_shadow_requests_total{{model="m",revision="1",candidate="2",result="{r}"}} {n}'
                  for r, n in shadow.items()]
    return "\n".join(lines) + "\n"


def test_window_is_the_increase_between_two_scrapes_summed_over_pods() -> None:
    before = {"c-1": parse_samples(_scrape("2", 100, 1, {"0.01": 90, "0.1": 101, "+Inf": 101}))}
    after = {
        "c-1": parse_samples(_scrape("2", 200, 6, {"0.01": 180, "0.1": 206, "+Inf": 206})),
        # a pod that started in the window counts from zero
        "c-2": parse_samples(_scrape("2", 50, 0, {"0.01": 50, "0.1": 50, "+Inf": 50})),
    }
    window = window_between(before, after, model="m", revision="2")
    assert window.requests == 100 + 5 + 50 + 7 + 0  # 2xx, 5xx and 4xx answers alike
    assert window.errors == 5
    assert window.client_errors == 7  # the 400s of c-2, new in the window (c-1's stayed at 7)
    assert window.p99_seconds is not None
    assert 0.01 < window.p99_seconds <= 0.1


def test_a_counter_reset_counts_from_zero() -> None:
    before = {"c-1": parse_samples(_scrape("2", 900, 90, {"0.01": 990, "+Inf": 990}))}
    after = {"c-1": parse_samples(_scrape("2", 40, 2, {"0.01": 42, "+Inf": 42}))}
    window = window_between(before, after, model="m", revision="2")
    assert (window.requests, window.errors) == (40 + 2, 2)  # the 4xx series did not move


def test_shadow_comparisons_are_read_from_the_stable_pods() -> None:
    stable_before = {"s-1": parse_samples(_scrape("1", 0, 0, {"+Inf": 0}, {"agree": 10, "disagree": 1}))}
    stable_after = {"s-1": parse_samples(_scrape("1", 0, 0, {"+Inf": 0},
                                                 {"agree": 100, "disagree": 21, "error": 4, "dropped": 9}))}
    window = window_between(stable_before, stable_after, model="m", revision="2")
    assert (window.compared, window.disagreed) == (110, 20)
    assert window.requests == 0


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ([(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)], 0.198),
        ([(0.1, 100.0), (float("inf"), 100.0)], 0.099),
        ([(0.1, 0.0), (float("inf"), 10.0)], 0.1),  # beyond the last finite bound: that bound
        ([(0.1, 0.0), (float("inf"), 0.0)], None),
        ([], None),
    ],
)
def test_quantile_interpolates_like_histogram_quantile(
    buckets: list[tuple[float, float]], expected: float | None
) -> None:
    value = quantile(0.99, buckets)
    assert value == pytest.approx(expected) if expected is not None else value is None


def test_disagreement_is_judged_before_latency() -> None:
    rules = Rules(min_requests=20, max_error_ratio=0.01, max_latency_ratio=1.5, max_disagreement=0.05)
    stable = Window(requests=600, p99_seconds=0.01)
    wrong_and_slow = Window(requests=100, p99_seconds=0.05, compared=100, disagreed=40)
    judgement = judge(stable, wrong_and_slow, rules)
    assert judgement.verdict is Verdict.FAIL
    assert judgement.message.startswith("disagreement 40%")
