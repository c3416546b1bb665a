"""The project: settings, URLs, WSGI, and the Celery application the background worker runs."""

from .celery import app as celery_app

__all__ = ["celery_app"]
