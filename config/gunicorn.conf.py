"""gunicorn's settings for the registry: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Each value can be set from the environment, so one file serves a laptop and a server. Threads
(gthread) keep a worker responsive while another request waits on PostgreSQL; long work never runs
in a request (it is a background job), so the timeout can stay short.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Recycle workers now and then (a leak in a library cannot grow without bound).
max_requests = 2000
max_requests_jitter = 200
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
# The proxy in front (nginx) that may set X-Forwarded-*: only it is believed.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
