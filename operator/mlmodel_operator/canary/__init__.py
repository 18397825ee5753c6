"""Canary analysis (pure): the figures of one analysis window, read from the runtimes' own metrics, and the
verdict on a candidate revision against the stable one (docs/canary.md)."""

from mlmodel_operator.canary.analysis import Judgement, Rules, Verdict, Window, judge
from mlmodel_operator.canary.metrics import Samples, parse_samples, window_between
from mlmodel_operator.canary.steps import Action, Progress, StepRule, progress

__all__ = [
    "Action", "Judgement", "Progress", "Rules", "Samples", "StepRule", "Verdict", "Window", "judge",
    "parse_samples", "progress", "window_between",
]
