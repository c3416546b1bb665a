"""How far a running job has got: a percentage and a line of text, kept in the cache.

The job's row is written only when its state changes; progress goes to the cache, which every web
process and worker shares (Redis in production, a file cache for `make run`), so a job working
inside one long transaction is still seen moving.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache

#: Progress outlives any job's run; a finished job's row says the rest.
TTL_SECONDS = 24 * 3600


def _key(job_id: object) -> str:
    return f"job-progress:{job_id}"


@dataclass(frozen=True)
class Progress:
    percent: int = 0
    message: str = ""


class Reporter:
    """Handed to a job's runner: ``report(40, "Survival curves")``."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id

    def __call__(self, percent: float, message: str = "") -> None:
        cache.set(_key(self.job_id), (max(0, min(100, round(percent))), message[:200]), TTL_SECONDS)


def progress_of(job_id: object) -> Progress:
    stored = cache.get(_key(job_id))
    return Progress(*stored) if stored else Progress()
