"""A job runner for the tests only: counts in steps, sleeping between them, and fails on request.

The worker the tests start imports this module (``celery worker --include tests.jobs.probe``).
"""

from __future__ import annotations

import time
from typing import Any

from jobs.models import Job, JobKind
from jobs.progress import Reporter
from jobs.runners import register


@register(JobKind.PROBE)
def probe(job: Job, report: Reporter) -> dict[str, Any]:
    steps = int(job.parameters.get("steps", 3))
    for step in range(steps):
        report(100 * step / steps, f"Step {step + 1} of {steps}")
        time.sleep(float(job.parameters.get("sleep", 0)))
    if job.parameters.get("fail"):
        raise ValueError(job.parameters["fail"])
    return {"url": "/", "link_text": "Back home", "steps": steps, "attempt": job.attempts}
