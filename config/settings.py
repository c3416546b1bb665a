"""Settings for the intrathecal therapy registry.

One module driven by environment variables: SQLite in the project folder by default so a fresh
checkout just works; ``DATABASE_URL`` selects PostgreSQL (the production database).

Secure by default: without ``DEBUG=true`` the settings are production settings — they refuse to
start without ``SECRET_KEY`` and a separate ``DATE_SHIFT_KEY``, and turn on Secure cookies, HSTS and
the HTTPS redirect. ``make run`` and ``make test`` write a development ``.env`` (``DEBUG=true`` and
random keys of this checkout) the first time; variables in the environment win over the file.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "testserver"]),
    TIME_ZONE=(str, "UTC"),
    SESSION_IDLE_SECONDS=(int, 30 * 60),
    SESSION_TOUCH_SECONDS=(int, 60),
)
# ENV_FILE names another file (or /dev/null for none); the default is .env in the project folder.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DEBUG = env("DEBUG")
SECRET_KEY = env.str("SECRET_KEY", default="")
# Date shifts of de-identified exports are keyed apart from SECRET_KEY (analytics/deidentify.py), so
# whoever knows one key (a session forger, say) cannot undo the shifts.
DATE_SHIFT_KEY = env.str("DATE_SHIFT_KEY", default="")
if not DEBUG:
    missing = [
        name for name, value in (("SECRET_KEY", SECRET_KEY), ("DATE_SHIFT_KEY", DATE_SHIFT_KEY)) if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off, so these are production settings: set {' and '.join(missing)} in the environment "
            "(long random values, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'). "
            "For development, set DEBUG=true (make run writes a .env that does)."
        )
    if DATE_SHIFT_KEY == SECRET_KEY:
        raise ImproperlyConfigured("DATE_SHIFT_KEY must differ from SECRET_KEY.")
elif not SECRET_KEY or not DATE_SHIFT_KEY:
    # DEBUG on without keys (a bare `DEBUG=true manage.py ...`): throwaway keys for this process only.
    SECRET_KEY = SECRET_KEY or secrets.token_urlsafe(50)
    DATE_SHIFT_KEY = DATE_SHIFT_KEY or secrets.token_urlsafe(50)
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

# --- HTTPS (production) ---------------------------------------------------------------------------
# Behind a TLS-terminating proxy (nginx, a load balancer) set BEHIND_TLS_PROXY=true: the proxy must
# set X-Forwarded-Proto, and Django then knows a request came in over HTTPS.
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp), in every mode so the browser tests check it -----------
# Scripts only from this server (no inline script, no eval: htmx and the page scripts are files).
# Inline *styles* are allowed: the report figures are matplotlib SVG with style attributes, and
# Swagger UI sets styles from script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "django_htmx",
    "csp",
    "accounts",
    "registry",
    "analytics",
    "casebook",
    "audit",
    "review",
    "protocols",
    "api",
    "exchange",
    "jobs",
    "demo",
]

# History is never rewritten from the admin: no "revert to this version".
SIMPLE_HISTORY_REVERT_DISABLED = True
# Reasons are kept whole: a typed reason may be 200 characters and the registry's own reasons quote
# it (simple-history's default column is varchar(100), which PostgreSQL would refuse).
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Inside the session middleware: idle expiry with a session write at most once a minute.
    "accounts.sessions.IdleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # An edit URL of a locked section answers with the section, read-only (casebook/middleware.py).
    "casebook.middleware.LockedSectionMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: counts failed sign-ins and locks out after AXES_FAILURE_LIMIT.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, the session's user read by a statement (accounts/sessions.py).
    "accounts.sessions.SignInBackend",
    # Model permissions (the admin's) come from the user's roles; see accounts/roles.py.
    "accounts.roles.RoleBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "accounts.throttling.axes_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The database handler plus a limit per address across all accounts (password spraying).
AXES_HANDLER = "accounts.throttling.RegistryAxesHandler"
SIGN_IN_ADDRESS_FAILURE_LIMIT = env.int("SIGN_IN_ADDRESS_FAILURE_LIMIT", default=30)

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    },
]

# Form widgets through Jinja2 where Django ships the template for it (a third less CPU on the LP page).
FORM_RENDERER = "config.forms.FormRenderer"

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# Production keeps each thread's connection open between requests (seconds; 0 = a connection per
# request, the development default) and checks it before reuse after a database restart.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait instead of failing when the demo loader and the dev server touch the file together.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
else:
    # No JIT compilation on the registry's connections: a dataset or export statement over 10,000
    # patients is costed above jit_above_cost, and compiling it took 0.9-1.4 s where running it took
    # 0.1-0.3 s (PostgreSQL 15, 100,000 patients). Set once per connection, not per statement.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()

# PostgreSQL deployment: the role the web server connects as (audit/database_roles.py). When set,
# every migrate (run as the tables' owner) renews its grants for new tables.
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"  # never served publicly: uploaded imports are read back by the import page only

# Imports are bounded before anything is expanded (exchange/limits.py says what each limit does).
# Data-quality rules (review/rules.py): how many days before the index admission a lumbar puncture (or
# another dated record) may lie before it raises a query. A query, never a refusal.
QUALITY_DAYS_BEFORE_ADMISSION = env.int("QUALITY_DAYS_BEFORE_ADMISSION", default=3)
# CAR-T dose plausibility (review/rules.py): labelled doses per kg (×10⁶ CAR-positive viable T cells/kg)
# from the US prescribing information, as (names the product is entered as, lowest, highest). Products
# dosed as a flat total (lisocabtagene, idecabtagene) and investigational ones fall back to
# CAR_T_PLAUSIBLE_PER_KG, beyond every licensed per-kg dose. A site may override both here.
CAR_T_LABELLED_DOSE_PER_KG = [
    (("tisagenlecleucel", "kymriah"), "0.2", "5.0"),
    (("axicabtagene", "yescarta"), "1.0", "2.0"),
    (("brexucabtagene", "tecartus"), "0.5", "2.0"),
    (("ciltacabtagene", "carvykti"), "0.5", "1.0"),
]
CAR_T_PLAUSIBLE_PER_KG = ("0.1", "10")
# Missing-data codes offered beside every optional field of the case record (code → meaning), stored
# apart from the value (registry.missing). Codes already used stay readable if one is removed here.
MISSING_DATA_CODES = {
    "NA": "Not applicable",
    "UNK": "Unknown",
    "NASK": "Not asked",
    "ND": "Not done",
}
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_MEMBER_BYTES = env.int("IMPORT_MAX_MEMBER_BYTES", default=200 * 1024 * 1024)
IMPORT_MAX_COMPRESSION_RATIO = env.float("IMPORT_MAX_COMPRESSION_RATIO", default=100.0)
IMPORT_MAX_ROWS_PER_TABLE = env.int("IMPORT_MAX_ROWS_PER_TABLE", default=1_000_000)
IMPORT_PAGE_MAX_ROWS = env.int("IMPORT_PAGE_MAX_ROWS", default=20_000)
# A running import older than this is taken as interrupted (exchange/batches.py).
IMPORT_STALE_HOURS = env.int("IMPORT_STALE_HOURS", default=12)

# --- Background jobs and the cache -----------------------------------------------------------------
# Long work (report runs, large imports, exports, the quality sweep) runs in a Celery worker when a
# broker is set (production: Redis, e.g. redis://127.0.0.1:6379/0). Without one (tests, a bare
# checkout) jobs run in the request through the same code (jobs/services.py). `make run` starts a
# worker on the filesystem transport, so it needs no service.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a long job does not hold the next one hostage
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    # A message a dead worker never acknowledged goes back to the queue after this long (Redis).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600),
    # How often a worker looks for such messages. kombu 5.7 scans only every 10th sweep of 10 s (one
    # scan in 100 s); one cheap scan per sweep keeps the hand-back within a sweep of the timeout.
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_SECONDS", default=10),
    "unacked_restore_throttle": 1,
}
if CELERY_BROKER_URL.startswith("filesystem"):
    _queue = Path(env.str("CELERY_QUEUE_DIR", default=str(BASE_DIR / "var" / "celery")))
    for _folder in ("in", "processed"):
        (_queue / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_queue / "in"),
        "data_folder_out": str(_queue / "in"),
        "processed_folder": str(_queue / "processed"),
        "store_processed": False,
    }
# Shared by every web process and worker (job progress, throttling): Redis in production
# (CACHE_URL=redis://127.0.0.1:6379/1), a file cache for `make run`, process memory by default.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Django's database sessions, the session row read by a statement (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
SESSION_COOKIE_AGE = env("SESSION_IDLE_SECONDS")
# Idle expiry: a request in use pushes the deadline forward, saving the session at most once per
# SESSION_TOUCH_SECONDS (accounts/sessions.py) instead of on every request.
SESSION_TOUCH_SECONDS = env("SESSION_TOUCH_SECONDS")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Tokens first, so a refused token answers 401 with WWW-Authenticate (DRF takes the first class's).
        "api.authentication.RegistryTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Record bodies are JSON only: no endpoint takes a file, and a form encoding cannot carry an LP's
    # CSF and doses or the missing-data codes except as text that DRF parses after its own checks
    # (a null there once reached a NOT NULL column). The token endpoint also reads forms (curl -d).
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",  # APIClient sends what the API reads
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "api.pagination.RegistryPagination",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}

# API tokens (django-rest-knox, stored hashed): an idle lifetime that each use extends, capped at an
# absolute lifetime from creation; at most this many live tokens per person.
REST_KNOX = {
    "TOKEN_TTL": timedelta(minutes=env.int("API_TOKEN_IDLE_MINUTES", default=60)),
    "AUTO_REFRESH": True,
    "AUTO_REFRESH_MAX_TTL": timedelta(hours=env.int("API_TOKEN_MAX_HOURS", default=12)),
    "MIN_REFRESH_INTERVAL": 60,
    "TOKEN_LIMIT_PER_USER": env.int("API_TOKENS_PER_USER", default=10),
    "AUTH_HEADER_PREFIX": "Token",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Intrathecal therapy registry API",
    "DESCRIPTION": "Case records of NPSLE, LM and ICANS studies, scoped to your sites. Writes need a reason once "
    "a section is submitted for review; updates need If-Match with the record's ETag.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The interactive page's assets come from drf-spectacular-sidecar: nothing loads from the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Each registry code list keeps its own name in the schema, however many fields share it.
    "ENUM_NAME_OVERRIDES": {
        name: f"registry.choices.{name}"
        for name in (
            "DiseaseArea",
            "Sex",
            "DeathCause",
            "NpsleSyndrome",
            "TestResult",
            "BilagGrade",
            "NsclcHistology",
            "DriverMutation",
            "Specimen",
            "CsfCytology",
            "EanoEsmoType",
            "LmMriPattern",
            "HaematologicalMalignancy",
            "CarTTarget",
            "Consciousness",
            "SeizureFinding",
            "MotorFinding",
            "RaisedIcpFinding",
            "Hypotension",
            "Hypoxia",
            "LpRoute",
            "IntrathecalDrug",
            "DoseTiming",
            "Diluent",
            "PathogenTestType",
            "SystemicTherapyCategory",
            "CtcaeVersion",
            "CtcaeTerm",
            "Attribution",
            "DischargeOutcomeCode",
            "NeurologicalChange",
            "MriChange",
            "CytologyResponse",
            "ClinicalResponse",
            "FollowUpEventType",
        )
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"registry": {"handlers": ["console"], "level": "INFO"}},
}
