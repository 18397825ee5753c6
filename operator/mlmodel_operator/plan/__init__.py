"""Decisions before acting, as pure functions: placement and format, what to apply, revision numbers and
transitions (history, rollout, rollback), and whether a revision being rolled out has failed."""

from mlmodel_operator.plan.apply import Action, classify, retry_delay
from mlmodel_operator.plan.evidence import Limits, pod_failure, revision_failure
from mlmodel_operator.plan.placement import Refused, resolve_format, resolve_pool
from mlmodel_operator.plan.revisions import (
    Decision,
    Inputs,
    LiveTemplate,
    RevisionFailure,
    decide,
    find_entry,
    live_template,
    revision_number,
    serving_entry,
    trim,
)
from mlmodel_operator.plan.scope import WatchScope

__all__ = [
    "Action",
    "Decision",
    "Inputs",
    "Limits",
    "LiveTemplate",
    "Refused",
    "RevisionFailure",
    "WatchScope",
    "classify",
    "decide",
    "find_entry",
    "live_template",
    "pod_failure",
    "resolve_format",
    "resolve_pool",
    "retry_delay",
    "revision_failure",
    "revision_number",
    "serving_entry",
    "trim",
]
