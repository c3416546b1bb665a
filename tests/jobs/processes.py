"""Real processes for the tests of background work: Celery workers and gunicorn web processes.

Each runs against the test's own PostgreSQL database and a Redis database of the xdist worker's
own (broker and cache), as a deployment's processes do against theirs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 10 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"


def redis_up() -> bool:
    import redis  # imported here: only the tests that start processes need the client

    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


def require_redis() -> None:
    if not redis_up():
        if os.environ.get("REGISTRY_CI"):
            pytest.fail(f"Redis is not running at {BROKER}; .ci/run starts it")
        pytest.skip("Redis is not running (redis-server); CI starts it")


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Process:
    """A child process whose output is kept for the failure message."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        """Ask it to stop (several processes stop side by side: terminate each, then ``stop``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.stdout.read() if self.process.stdout else ""


class Worker(Process):
    """``celery -A config worker``, one process (solo pool), loading the tests' probe runner too."""

    def __init__(self, broker: str, env: dict[str, str] | None = None) -> None:
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING",
             "--include", "tests.jobs.probe", "--without-heartbeat", "--without-gossip", "--without-mingle"],
            {"DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker, "CACHE_URL": broker,
             "CELERY_VISIBILITY_TIMEOUT_SECONDS": "3", "CELERY_UNACKED_RESTORE_SECONDS": "1", **(env or {})},
        )  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Web(Process):
    """gunicorn with the deployment's settings file (config/gunicorn.conf.py), one worker process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            {"DATABASE_URL": database_url(), "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1",
             "GUNICORN_ACCESS_LOG": "", **env},
        )  # fmt: skip

    def wait_until_listening(self, timeout: float = 90) -> Web:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.stop()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not listen on {self.port}: {self.stop()}")
