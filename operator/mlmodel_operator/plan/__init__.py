"""Decisions before acting, as pure functions: placement and format, which objects differ from the live ones,
revision numbers and transitions (history, rollout, rollback), whether a revision being rolled out has failed,
and how long to wait before a retry."""

from mlmodel_operator.plan.backoff import retry_delay
from mlmodel_operator.plan.changes import Action, classify, foreign
from mlmodel_operator.plan.evidence import revision_failure
from mlmodel_operator.plan.placement import Refused, resolve_format, resolve_pool
from mlmodel_operator.plan.revisions import (
    LiveTemplate,
    RevisionInputs,
    Transition,
    advance,
    find_entry,
    live_template,
    record_of,
    revision_number,
    trim,
)
from mlmodel_operator.plan.scope import WatchScope
from mlmodel_operator.spec import serving_entry
from mlmodel_operator.workload import Limits

__all__ = [
    "Action",
    "Limits",
    "LiveTemplate",
    "Refused",
    "RevisionInputs",
    "Transition",
    "WatchScope",
    "advance",
    "classify",
    "find_entry",
    "foreign",
    "live_template",
    "record_of",
    "resolve_format",
    "resolve_pool",
    "retry_delay",
    "revision_failure",
    "revision_number",
    "serving_entry",
    "trim",
]
