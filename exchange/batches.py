"""Import batches whose process died: an import killed mid-way never commits its rows, but the batch
row (written first, outside the import's transaction) would say "running" for ever. A running batch
is interrupted when its process no longer exists on its machine, or when it started more than
``IMPORT_STALE_HOURS`` ago (a process on another machine cannot be looked at from here)."""

from __future__ import annotations

import datetime as dt
import os
import socket

from django.conf import settings
from django.utils import timezone

from .models import ImportBatch, ImportStatus


def this_host() -> str:
    return socket.gethostname()[:255]


def _process_gone(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def batches_mark_interrupted(*, now: dt.datetime | None = None) -> int:
    """Mark running batches whose import can no longer finish; returns how many."""
    now = now or timezone.now()
    stale_before = now - dt.timedelta(hours=settings.IMPORT_STALE_HOURS)
    marked = 0
    for batch in ImportBatch.objects.filter(status=ImportStatus.RUNNING):
        here = batch.host == this_host()
        if batch.started_at < stale_before or (here and _process_gone(batch.process_id)):
            batch.status = ImportStatus.INTERRUPTED
            batch.finished_at = now
            batch.errors = [
                f"The import stopped before it finished (process {batch.process_id} on {batch.host or 'unknown'} "
                "ended, or it ran too long); nothing was written. Run it again."
            ]
            batch.save(update_fields=["status", "finished_at", "errors"])
            marked += 1
    return marked
