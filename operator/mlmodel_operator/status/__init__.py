"""Status: observe the runtime's objects, compute conditions once per pass, and the events to post."""

from mlmodel_operator.status.compute import (
    PACKAGE_REASONS,
    Failure,
    PassFacts,
    Revisions,
    compute_status,
    human_size,
)
from mlmodel_operator.status.conditions import Verdict, find, merge_conditions
from mlmodel_operator.status.events import EventSpec, event_name, events_between
from mlmodel_operator.status.observation import Observation, observe

__all__ = [
    "PACKAGE_REASONS",
    "EventSpec",
    "Failure",
    "Observation",
    "PassFacts",
    "Revisions",
    "Verdict",
    "compute_status",
    "event_name",
    "events_between",
    "find",
    "human_size",
    "merge_conditions",
    "observe",
]
