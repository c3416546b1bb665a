"""The broker (and cache) of the tests that start real processes: Redis, a database per xdist worker."""

from __future__ import annotations

import pytest

from tests.jobs.processes import BROKER, require_redis


@pytest.fixture
def broker(settings):
    require_redis()
    import redis  # imported here: only the tests that start processes need the client

    redis.Redis.from_url(BROKER).flushdb()
    settings.CELERY_BROKER_URL = BROKER
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": BROKER}
    }
    from config.celery import app

    app.conf.broker_url = BROKER  # the app read its settings at import, before this override
    yield BROKER
    redis.Redis.from_url(BROKER).flushdb()
