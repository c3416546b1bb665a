"""Which function does each kind of job: the apps that own the work register it here.

``jobs`` sits low in the house (beside registry); the report runs, imports, exports and the quality
sweep belong to apps above it. Each of them registers its runner in its ``AppConfig.ready()``, as
``contrib.admin`` lets apps register their models, so this app never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .models import Job, JobKind
from .progress import Reporter

#: A runner does the work and returns what it made (stored as ``Job.result``); it raises to fail.
Runner = Callable[[Job, Reporter], dict[str, Any]]

_RUNNERS: dict[str, Runner] = {}


def register(kind: JobKind) -> Callable[[Runner], Runner]:
    def decorate(runner: Runner) -> Runner:
        _RUNNERS[kind] = runner
        return runner

    return decorate


def runner_for(kind: str) -> Runner:
    try:
        return _RUNNERS[kind]
    except KeyError:
        raise LookupError(f"No runner is registered for jobs of kind {kind!r}.") from None
