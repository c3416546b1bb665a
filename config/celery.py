"""The Celery application of the registry's background worker (`celery -A config worker`).

Settings come from Django's (the ``CELERY_`` ones, see config/settings.py); tasks are found in each
app's ``tasks`` module. Each app registers its job runners in its ``ready()``, which Django's setup
here runs in the worker as in the web process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
