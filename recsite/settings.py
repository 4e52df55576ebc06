"""recsite settings: every value comes from the environment (see README, "Configuration").

With no environment at all the project runs on the embedded default: SQLite, kombu's
filesystem broker and a local cache, all under ``RECSITE_DATA_DIR`` (``var/``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from recsite.env import (
    env_bool,
    env_datetime,
    env_float,
    env_int,
    env_int_optional,
    env_list,
    env_str,
    env_timezone,
    parse_event_types,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("RECSITE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
# prometheus_client (multiprocess mode) opens a file there as soon as a metric without
# labels is defined, at import: a command run with the web hosts' environment (migrate,
# retrain, a Celery worker) must find the directory gunicorn otherwise creates.
if env_str("PROMETHEUS_MULTIPROC_DIR", ""):
    Path(env_str("PROMETHEUS_MULTIPROC_DIR", "")).mkdir(parents=True, exist_ok=True)

# --- Core --------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. It is required when DEBUG is off (the default): set "
            "SECRET_KEY in the environment to a long random string (for example the output "
            "of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set "
            "DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-recsite-development-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "recsite.apps.RecsiteAdminConfig",  # django.contrib.admin + the dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "recommender",
    "training",
]

MIDDLEWARE = [
    "recsite.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: turns a locked-out login into its lockout answer
    "axes.middleware.AxesMiddleware",
]

# The middlewares only the admin needs: sessions, CSRF, staff sign-in, messages, framing
# and the login lockout. The API authenticates with API keys only (REST_FRAMEWORK below)
# and the probes take no caller, so recsite/wsgi_dispatch.py runs /api/ and the probes
# through API_MIDDLEWARE: MIDDLEWARE without these, in the same order.
ADMIN_ONLY_MIDDLEWARE = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)
API_MIDDLEWARE = [path for path in MIDDLEWARE if path not in ADMIN_ONLY_MIDDLEWARE]

# --- Staff sign-in -----------------------------------------------------------------
# django-axes counts failed admin logins in the database (shared by every web host) and
# locks out a username, and separately an IP address, after too many of them.

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("RECSITE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("RECSITE_LOGIN_LOCKOUT_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "recsite.proxy.client_ip"
# Proxies in front of Django that append to X-Forwarded-For (set behind a TLS proxy).
RECSITE_PROXY_COUNT = 0
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("RECSITE_PASSWORD_MIN_LENGTH", 12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)

ROOT_URLCONF = "recsite.urls"
WSGI_APPLICATION = "recsite.wsgi.application"

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
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the busy timeout makes a
    # writer wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The INCLUDE columns of two indexes (index-only scans on PostgreSQL) are ignored by
    # SQLite, where the index still serves the lookup: nothing for a user to act on.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]

# Training may read its events from a streaming replica so a big load never competes with
# ingest on the primary (training/dataset.py); nothing is ever written through it.
RECSITE_TRAINING_DATABASE_URL = env_str("RECSITE_TRAINING_DATABASE_URL", "")
if RECSITE_TRAINING_DATABASE_URL:
    DATABASES["training"] = dj_database_url.parse(
        RECSITE_TRAINING_DATABASE_URL, conn_max_age=0, conn_health_checks=True
    )
    DATABASES["training"]["TEST"] = {"MIRROR": "default"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (and the Celery broker) -------------------------------------------------

REDIS_URL = env_str("REDIS_URL", "")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "recsite",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------------

BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
# Training runs: a soft limit (the run fails cleanly), a hard limit a little later, and
# for Redis a visibility timeout above both, so a long run is never redelivered to a
# second worker while the first is still on it (the claim in the database guards too).
RECSITE_TRAINING_SOFT_TIME_LIMIT = env_int("RECSITE_TRAINING_SOFT_TIME_LIMIT", 3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = RECSITE_TRAINING_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = RECSITE_TRAINING_SOFT_TIME_LIMIT + 300
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 600)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT} s) must exceed the hard "
        f"time limit of a training run ({CELERY_TASK_TIME_LIMIT} s = "
        "RECSITE_TRAINING_SOFT_TIME_LIMIT + 300), or Redis redelivers a run still running."
    )
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_VISIBILITY_TIMEOUT
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running run writes a heartbeat on every progress report (each phase step, each
# epoch); the reaper fails runs silent for longer than this and frees their slot.
RECSITE_RUN_STALE_AFTER_SECONDS = env_int("RECSITE_RUN_STALE_AFTER_SECONDS", 600)
# The reaper also sends again a run still queued this long after it was sent: Redis
# without persistence loses queued messages when it restarts (a run only waiting for a
# busy worker gets a redundant message, which its claim makes a no-op).
RECSITE_RUN_REQUEUE_AFTER_SECONDS = env_int("RECSITE_RUN_REQUEUE_AFTER_SECONDS", 600)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-training-runs": {
        "task": "training.tasks.reap_stale_runs",
        "schedule": env_int("RECSITE_REAPER_INTERVAL_SECONDS", 60),
    },
    # Artifact retention (every recommender's versions_kept) and the sweep of partial
    # artifacts of killed writers; each successful training run applies it as well.
    "retain-artifacts": {
        "task": "training.tasks.retain_artifacts",
        "schedule": env_int("RECSITE_RETENTION_INTERVAL_SECONDS", 3600),
    },
    # The online loop: attribute new events and served lists into the hourly aggregates;
    # delete served lists past their retention.
    "attribute-events": {"task": "training.tasks.attribute_events", "schedule": 60},
    "retain-served-lists": {"task": "training.tasks.retain_served_lists", "schedule": 3600},
    # Batch exports past RECSITE_EXPORT_RETENTION_DAYS, and uploads of killed export jobs.
    "retain-exports": {
        "task": "training.tasks.retain_exports",
        "schedule": env_int("RECSITE_RETENTION_INTERVAL_SECONDS", 3600),
    },
    # Event retention (RECSITE_EVENT_RETENTION_DAYS; a no-op while it is unset).
    "prune-events": {
        "task": "training.tasks.prune_events",
        "schedule": env_int("RECSITE_EVENT_RETENTION_INTERVAL_SECONDS", 3600),
    },
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Internationalisation ----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The time zone a new recommender's schedule is in (each recommender has its own).
RECSITE_SCHEDULE_TIMEZONE = env_timezone("RECSITE_SCHEDULE_TIMEZONE", TIME_ZONE)

# --- Static files ------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))

# --- REST API ----------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["recommender.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["recommender.auth.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_str("RECSITE_API_THROTTLE_RATE", "1000/s")},
    "DEFAULT_PARSER_CLASSES": ["recsite.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "recsite.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "recsite API",
    "DESCRIPTION": (
        "Recommendations, events and catalog in, model and training state. "
        "Authenticate with `Authorization: Api-Key <key>`; every error is "
        '`{"error": {"code", "message", "detail"}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a ``status``: name each choice set rather than by a hash.
    "ENUM_NAME_OVERRIDES": {"TrainingRunStatusEnum": "training.models.RunStatus"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recsite.openapi.add_error_responses",
    ],
}

API_KEY_CUSTOM_HEADER = "HTTP_AUTHORIZATION"
# Validated API keys are kept per process this long (0: ask the database every request).
# A change to a key reaches every process through Redis within ~0.5 s; without Redis,
# within this time.
RECSITE_API_KEY_CACHE_SECONDS = env_float("RECSITE_API_KEY_CACHE_SECONDS", 5.0)

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"

# --- recsite -----------------------------------------------------------------------

# Event types and their default weights ("type:weight,..."). An event's effective
# weight in training is its type weight times its own weight (1 when not sent).
RECSITE_EVENT_TYPES = parse_event_types(
    env_str("RECSITE_EVENT_TYPES", "view:1,click:2,like:3,rating:1,purchase:5")
)
RECSITE_EVENT_BATCH_MAX = env_int("RECSITE_EVENT_BATCH_MAX", 1000)
RECSITE_ITEM_BATCH_MAX = env_int("RECSITE_ITEM_BATCH_MAX", 1000)
RECSITE_MAX_BODY_BYTES = env_int("RECSITE_MAX_BODY_BYTES", 2 * 1024 * 1024)
RECSITE_EVENT_FUTURE_TOLERANCE_SECONDS = env_float("RECSITE_EVENT_FUTURE_TOLERANCE_SECONDS", 300)
# Events dated before this are refused at ingest (a wrong unit, e.g. days sent as seconds).
RECSITE_EVENT_MIN_TIMESTAMP = env_datetime("RECSITE_EVENT_MIN_TIMESTAMP", "1990-01-01T00:00:00Z")
# An event's own weight must lie in (0, max]; training skips stored rows outside it.
RECSITE_EVENT_WEIGHT_MAX = env_float("RECSITE_EVENT_WEIGHT_MAX", 100.0)
if not 0 < RECSITE_EVENT_WEIGHT_MAX < 1e30:
    raise ImproperlyConfigured(
        f"RECSITE_EVENT_WEIGHT_MAX={RECSITE_EVENT_WEIGHT_MAX!r} must be above 0 and below 1e30."
    )
RECSITE_STRICT_CATALOG = env_bool("RECSITE_STRICT_CATALOG", False)
# The artifact store (recommender/artifact_store/): file:///path (a directory; the
# default is $RECSITE_DATA_DIR/artifacts, or RECSITE_ARTIFACT_DIR, its older spelling) or
# s3://bucket/prefix (any S3-compatible store; credentials and region from the standard
# AWS_* variables, read by boto3 itself).
RECSITE_ARTIFACT_STORE = env_str("RECSITE_ARTIFACT_STORE", "")
RECSITE_ARTIFACT_DIR = Path(env_str("RECSITE_ARTIFACT_DIR", str(DATA_DIR / "artifacts")))
if RECSITE_ARTIFACT_STORE:
    _store = urlparse(RECSITE_ARTIFACT_STORE)
    if _store.scheme not in ("file", "s3"):
        raise ImproperlyConfigured(
            f"RECSITE_ARTIFACT_STORE={RECSITE_ARTIFACT_STORE!r} must be file:///path or "
            "s3://bucket/prefix."
        )
    if _store.scheme == "file":
        if env_str("RECSITE_ARTIFACT_DIR", ""):
            raise ImproperlyConfigured(
                "Set RECSITE_ARTIFACT_STORE=file://... or RECSITE_ARTIFACT_DIR, not both."
            )
        RECSITE_ARTIFACT_DIR = Path(unquote(_store.path))
# Serving hosts keep the artifacts they fetched from an s3:// store here (by the
# manifest's sha256), at most this many versions (least recently used go first).
RECSITE_ARTIFACT_CACHE_DIR = Path(
    env_str("RECSITE_ARTIFACT_CACHE_DIR", str(DATA_DIR / "artifact-cache"))
)
RECSITE_ARTIFACT_CACHE_MAX_VERSIONS = env_int("RECSITE_ARTIFACT_CACHE_MAX_VERSIONS", 4)
if RECSITE_ARTIFACT_CACHE_MAX_VERSIONS < 1:
    raise ImproperlyConfigured("RECSITE_ARTIFACT_CACHE_MAX_VERSIONS must be at least 1.")
# Connect and read timeout of each request to an s3:// store (3 attempts each).
RECSITE_ARTIFACT_STORE_TIMEOUT_SECONDS = env_float("RECSITE_ARTIFACT_STORE_TIMEOUT_SECONDS", 5.0)
# django-storages' name for boto3's endpoint (MinIO, Ceph, moto: http://host:9000);
# such stores usually need path-style addressing, AWS itself virtual-hosted ("auto").
AWS_S3_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL", "") or None
AWS_S3_ADDRESSING_STYLE = env_str(
    "AWS_S3_ADDRESSING_STYLE", "path" if AWS_S3_ENDPOINT_URL else "auto"
)
# EASE inverts a dense items x items matrix (float32: ~8 bytes x items^2 at the peak, 3.2 GB
# at 20,000): a run of that family with more items fails saying so (training/families/ease.py).
RECSITE_EASE_MAX_ITEMS = env_int("RECSITE_EASE_MAX_ITEMS", 20_000)
# A run evaluates at most this many holdout users (a fixed-seed sample): scoring every
# item for every user grows with users x items, the square of the data (training/pipeline/
# metrics.py).
RECSITE_EVAL_MAX_USERS = env_int("RECSITE_EVAL_MAX_USERS", 10_000)

# Serving (recommender/serving/): each process checks the cache key that promote /
# rollback bump every CHECK seconds and polls the database (active versions, catalog
# changes) every POLL seconds, which also covers an unreachable or per-process cache.
RECSITE_SERVING_CHECK_SECONDS = env_float("RECSITE_SERVING_CHECK_SECONDS", 0.5)
RECSITE_SERVING_POLL_SECONDS = env_float("RECSITE_SERVING_POLL_SECONDS", 2.0)
RECSITE_SERVING_WATCH = env_bool("RECSITE_SERVING_WATCH", True)
RECSITE_SEEN_EVENTS_MAX = env_int("RECSITE_SEEN_EVENTS_MAX", 500)
# Each serving process caches users' recent items, checked per request against a token in
# Redis that event writes replace (recommender/serving/seen.py); 0 turns the cache off.
RECSITE_SEEN_CACHE_USERS = env_int("RECSITE_SEEN_CACHE_USERS", 10000)
RECSITE_SEEN_CACHE_SECONDS = env_float("RECSITE_SEEN_CACHE_SECONDS", 300.0)
RECSITE_RECOMMENDATIONS_MAX_OFFSET = env_int("RECSITE_RECOMMENDATIONS_MAX_OFFSET", 1000)
# Batch exports started from the admin go to the artifact store under exports/; beat
# deletes them after RETENTION_DAYS (0: never). With an s3:// store the download link
# redirects to a presigned URL, or, with PROXY_DOWNLOAD, the web host streams the file
# (for a store the staff's browsers cannot reach).
RECSITE_EXPORT_RETENTION_DAYS = env_int("RECSITE_EXPORT_RETENTION_DAYS", 7)
RECSITE_EXPORT_PROXY_DOWNLOAD = env_bool("RECSITE_EXPORT_PROXY_DOWNLOAD", False)

# The online loop (recommender/online/): each serving process buffers at most BUFFER_MAX
# served lists (more are dropped and counted) and writes them every FLUSH seconds; an
# event is attributed to a list shown at most WINDOW seconds before it; served lists are
# deleted after RETENTION days.
# Off: serving records nothing (responses still carry a recommendation_id); for measuring
# what recording costs, or to stop it without a deploy.
RECSITE_SERVED_RECORDING = env_bool("RECSITE_SERVED_RECORDING", True)
RECSITE_SERVED_BUFFER_MAX = env_int("RECSITE_SERVED_BUFFER_MAX", 10_000)
RECSITE_SERVED_FLUSH_SECONDS = env_float("RECSITE_SERVED_FLUSH_SECONDS", 1.0)
RECSITE_SERVED_RETENTION_DAYS = env_int("RECSITE_SERVED_RETENTION_DAYS", 30)
RECSITE_ATTRIBUTION_WINDOW_SECONDS = env_int("RECSITE_ATTRIBUTION_WINDOW_SECONDS", 24 * 3600)

# Event retention (recommender/services/events_retention.py): events older than DAYS are
# deleted by beat, but never one a recommender's training window still reads (the cutoff
# is the older of the two). Unset = keep every event. A recommender training on all
# history (no window) blocks deletion unless LIMITS_ALL_HISTORY says it may train on
# what retention keeps.
RECSITE_EVENT_RETENTION_DAYS = env_int_optional("RECSITE_EVENT_RETENTION_DAYS")
if RECSITE_EVENT_RETENTION_DAYS is not None and RECSITE_EVENT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(
        f"RECSITE_EVENT_RETENTION_DAYS={RECSITE_EVENT_RETENTION_DAYS} must be at least 1 "
        "(leave it unset to keep every event)."
    )
RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY = env_bool(
    "RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY", False
)

# The admin dashboard shows a recommender's active version in a warning colour once it
# is older than this (the schedule may have stopped, or every run since was rejected).
RECSITE_MODEL_STALE_AFTER_HOURS = env_float("RECSITE_MODEL_STALE_AFTER_HOURS", 48)

DATA_UPLOAD_MAX_MEMORY_SIZE = RECSITE_MAX_BODY_BYTES

# --- Logging -----------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Production hardening (active when DEBUG is off) -------------------------------

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    if env_bool("RECSITE_BEHIND_TLS_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
        # Load balancers probe and Prometheus scrapes over plain HTTP inside the network,
        # and expect the answer, not a redirect.
        SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
        SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
        SECURE_HSTS_INCLUDE_SUBDOMAINS = True
        SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
        RECSITE_PROXY_COUNT = env_int("RECSITE_PROXY_COUNT", 1)

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
