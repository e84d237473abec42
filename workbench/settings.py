"""Settings for Fusion Workbench, all read from the environment.

Two shapes:
- embedded (the default when ``DATABASE_URL`` is unset): SQLite and generated secrets under
  ``var/``, for ``make run`` on a laptop;
- production: every secret comes from the environment and a missing one stops the start.

See the configuration table in README.md.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from workbench.lib.env import (
    env_bool,
    env_database_url,
    env_fernet_keys,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    fernet_keys_error,
    secret_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FUSION_VAR_DIR", str(BASE_DIR / "var")))

EMBEDDED = env_bool("FUSION_EMBEDDED", default=not os.environ.get("DATABASE_URL"))
DEBUG = env_bool("DEBUG", default=False)


if EMBEDDED and not VAR_DIR.exists():
    # Private from the start: it holds the database and the generated secrets.
    VAR_DIR.mkdir(mode=0o700, parents=True)


def _var_secret(filename: str, make: Callable[[], str]) -> str:
    """A generated secret from var/ (mode 0600), created on first use."""
    return secret_file(VAR_DIR / filename, make)[0]


def _var_fernet_keys() -> list[str]:
    """The generated encryption key from var/, checked like the variable would be."""
    from cryptography.fernet import Fernet

    keys = [_var_secret("encryption_key", lambda: Fernet.generate_key().decode())]
    if error := fernet_keys_error(str(VAR_DIR / "encryption_key"), keys):
        raise ImproperlyConfigured(error)
    return keys


if EMBEDDED:
    SECRET_KEY = env_str("SECRET_KEY", "") or _var_secret(
        "secret_key", lambda: secrets.token_urlsafe(50)
    )
    FUSION_ENCRYPTION_KEYS = env_fernet_keys("FUSION_ENCRYPTION_KEYS") or _var_fernet_keys()
else:
    SECRET_KEY = env_str("SECRET_KEY")
    FUSION_ENCRYPTION_KEYS = env_fernet_keys("FUSION_ENCRYPTION_KEYS")
    if not FUSION_ENCRYPTION_KEYS:
        raise ImproperlyConfigured(
            "FUSION_ENCRYPTION_KEYS must be set (comma-separated Fernet keys, newest first)"
        )

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if EMBEDDED or DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "ninja",  # serves Swagger UI from its own static files instead of a CDN
    "workbench.lib",
    "workbench.accounts",
    "workbench.keys",
    "workbench.pools",
    "workbench.runs",
    "workbench.tokens",
    "workbench.gateway",
    "workbench.usage",
    "workbench.experiments",
    "workbench.curation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "workbench.lib.middleware.StaticFilesMiddleware",  # WhiteNoise, awaitable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "workbench.lib.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "workbench.lib.middleware.UserTimezoneMiddleware",
]

ROOT_URLCONF = "workbench.urls"
ASGI_APPLICATION = "workbench.asgi.application"
WSGI_APPLICATION = "workbench.wsgi.application"

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
                "workbench.accounts.context_processors.workspaces",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
# Web and worker write to SQLite at once: WAL, a busy timeout and BEGIN IMMEDIATE keep them
# from failing with "database is locked" (see DESIGN.md pitfalls).
_SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if os.environ.get("DATABASE_URL"):
    DATABASES = {
        "default": env_database_url("DATABASE_URL", conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    }
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"] = dict(_SQLITE_OPTIONS)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": dict(_SQLITE_OPTIONS),
            # A file, not memory, so a test's Celery worker process sees the same database.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis: channels, celery, cache, live run state ------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL", f"unix://{VAR_DIR / 'redis.sock'}")

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer has no per-channel capacity to overflow: a slow websocket client
        # cannot make the layer drop another client's events. Durability still comes from the
        # stored state and seq (a gap makes the consumer resend a snapshot), not from the layer.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "fw",
    }
}


def _celery_url(url: str) -> str:
    # kombu names a unix socket "redis+socket://"; redis-py names it "unix://".
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A lost broker connection (a Redis restart) must not cancel the runs in progress: they keep
# streaming and finish; Celery 6 flips this default. The worker itself survives the loss
# thanks to workbench.celery._survive_broker_restarts.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Above the longest run, so a slow run is not redelivered to a second worker meanwhile.
RUN_HARD_TIME_LIMIT_S = env_int("RUN_HARD_TIME_LIMIT_S", 1800, minimum=10)
# The run itself stops (cleanly, output kept) a little before Celery's hard limit would kill it.
RUN_TIME_LIMIT_S = env_float("RUN_TIME_LIMIT_S", RUN_HARD_TIME_LIMIT_S - 30.0, minimum=1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT_S", RUN_HARD_TIME_LIMIT_S + 600, minimum=1
    ),
    # How often a worker looks for tasks a dead worker left unacknowledged (kombu's defaults
    # make it about every 100 s).
    "unacked_restore_interval": env_int("CELERY_RESTORE_INTERVAL_S", 10, minimum=1),
    "unacked_restore_throttle": env_int("CELERY_RESTORE_THROTTLE", 10, minimum=1),
}
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-runs": {"task": "runs.reap", "schedule": env_float("REAPER_EVERY_S", 30.0)},
    # A safety net: experiments tick themselves; this restarts one whose tick was lost.
    "advance-experiments": {
        "task": "experiments.advance_all",
        "schedule": env_float("EXPERIMENTS_EVERY_S", 5.0),
    },
}
# A queued run whose task never reached the broker (a process died, or Redis was down, between
# the run's commit and the publish) is handed to a worker again after this long.
FUSION_REDISPATCH_AFTER_S = env_float("FUSION_REDISPATCH_AFTER_S", 30.0, minimum=1.0)
# A queued run whose task the broker got this long ago but no worker has claimed is sent again:
# a Redis restarted without persistence comes back empty. Duplicates are harmless (the claim).
FUSION_QUEUED_RESEND_S = env_float("FUSION_QUEUED_RESEND_S", 300.0, minimum=10.0)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- auth ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_THROTTLE_ATTEMPTS = env_int("LOGIN_THROTTLE_ATTEMPTS", 5, minimum=1)
LOGIN_THROTTLE_WINDOW_S = env_int("LOGIN_THROTTLE_WINDOW_S", 300, minimum=1)
# Reset mails per address and per client network: enough for a typo or a slow inbox, too few
# to flood someone's mailbox.
PASSWORD_RESET_THROTTLE_ATTEMPTS = env_int("PASSWORD_RESET_THROTTLE_ATTEMPTS", 5, minimum=1)
PASSWORD_RESET_THROTTLE_WINDOW_S = env_int("PASSWORD_RESET_THROTTLE_WINDOW_S", 3600, minimum=1)
INVITE_TTL_DAYS = env_int("INVITE_TTL_DAYS", 7, minimum=1)

# --- i18n, time --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request without it
# Production serves hashed, compressed files that `collectstatic` made; embedded, debug and test
# runs serve straight from static/ so no collectstatic step is needed.
STATIC_MANIFEST = env_bool("FUSION_STATIC_MANIFEST", default=not (EMBEDDED or DEBUG))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
WHITENOISE_AUTOREFRESH = DEBUG

# --- mail ------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "fusion@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)

# --- security (production) -----------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not (EMBEDDED or DEBUG))
# Health checks come over plain HTTP from inside the container or the load balancer, not
# through the TLS proxy; a redirect to https would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not (EMBEDDED or DEBUG))
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not (EMBEDDED or DEBUG))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if (EMBEDDED or DEBUG) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", default=not (EMBEDDED or DEBUG)):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- fusion ----------------------------------------------------------------------------------
# Hosts or networks (CIDR) a credential's base_url may point at although they are private.
FUSION_PRIVATE_HOSTS_ALLOWED = env_list(
    "FUSION_PRIVATE_HOSTS_ALLOWED", ["127.0.0.0/8", "::1", "localhost"] if EMBEDDED else []
)
FUSION_MAX_PROMPT_CHARS = env_int("FUSION_MAX_PROMPT_CHARS", 100_000, minimum=100)
# A running run silent this long (no heartbeat; they come every ~2 s) lost its worker: the
# reaper re-enqueues it to resume elsewhere, up to FUSION_RESUME_ATTEMPTS times, then fails it.
FUSION_REAPER_STALE_S = env_int("FUSION_REAPER_STALE_S", 120, minimum=5)
FUSION_RESUME_ATTEMPTS = env_int("FUSION_RESUME_ATTEMPTS", 2, minimum=0)
# A redelivered run is taken over only when its worker has been silent this long (heartbeats
# come every ~2 s); a fresher one is still alive and is left alone.
FUSION_TAKEOVER_AFTER_S = env_int("FUSION_TAKEOVER_AFTER_S", 10, minimum=3)
FUSION_DELTA_FLUSH_S = env_float("FUSION_DELTA_FLUSH_S", 0.05, minimum=0.0)
# Provider call timeouts (seconds): to connect, to the first token, between tokens, in all.
FUSION_CONNECT_TIMEOUT_S = env_float("FUSION_CONNECT_TIMEOUT_S", 10.0, minimum=0.1)
FUSION_FIRST_TOKEN_TIMEOUT_S = env_float("FUSION_FIRST_TOKEN_TIMEOUT_S", 60.0, minimum=0.1)
FUSION_IDLE_TIMEOUT_S = env_float("FUSION_IDLE_TIMEOUT_S", 60.0, minimum=0.1)
FUSION_CALL_TIMEOUT_S = env_float("FUSION_CALL_TIMEOUT_S", 600.0, minimum=1.0)
# Per worker process: threads (and so database connections) that write runs' progress, and
# connections of the one HTTP client all of the process's runs share.
FUSION_DB_THREADS = env_int("FUSION_DB_THREADS", 4, minimum=1)
FUSION_HTTP_MAX_CONNECTIONS = env_int("FUSION_HTTP_MAX_CONNECTIONS", 400, minimum=1)
# Redis connections one process's event loop shares among its runs or websockets.
FUSION_REDIS_CONNECTIONS = env_int("FUSION_REDIS_CONNECTIONS", 64, minimum=2)
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "workbench.runs.stats": {"level": "INFO"},
    },
}
