"""Wharf settings: one module, every value from the environment.

Nothing set gives the embedded mode: SQLite and package files under ``WHARF_DATA_DIR``
(``./var``), Celery tasks executed in-process. ``DATABASE_URL`` switches to PostgreSQL,
``REDIS_URL`` to a Redis broker consumed by separate Celery workers.
``WHARF_PRODUCTION=1`` turns on what a public deployment needs (see SECURITY.md).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from registry import logs, security

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name, default=()):
    value = os.environ.get(name)
    if not value:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
DATA_DIR = Path(env_str("WHARF_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# Served to the public over HTTPS: secure cookies, HSTS, a redirect to HTTPS, and a refusal
# to start with DEBUG or without a real SECRET_KEY. Explicit rather than guessed from
# DEBUG or the database, because the embedded mode may be deployed too.
WHARF_PRODUCTION = env_bool("WHARF_PRODUCTION", False)

# The embedded mode must run with no configuration, so it gets a key of its own that is
# written once under the data directory; production sets SECRET_KEY.
SECRET_KEY = env_str("SECRET_KEY")
if WHARF_PRODUCTION:
    security.check_secret_key(SECRET_KEY)
    if DEBUG:
        raise ImproperlyConfigured("WHARF_PRODUCTION is on: DEBUG must be off.")
if not SECRET_KEY:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        from django.utils.crypto import get_random_string

        key_file.write_text(get_random_string(64))
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "registry.adminsite.WharfAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "accounts",
    "channels_app",
    "packages_app",
]

MIDDLEWARE = [
    # HEAD answers keep their headers and lose their body, whichever middleware or view
    # made them.
    "registry.head.HeadWithoutBodyMiddleware",
    # /healthz, /readyz and /metrics, answered before the HTTPS redirect and ALLOWED_HOSTS;
    # every other request is counted and logged here.
    "registry.operations.OperationsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "registry.security.ContentSecurityPolicyMiddleware",
    # 400 for control characters (NUL, newlines) in a path, query string, header or web
    # form, before anything looks them up; the refusal is still logged and carries the
    # headers above.
    "registry.hygiene.InputHygieneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # 429 for an address past its limit of failed authentications, conda files included.
    "accounts.authentication.FailureLimitMiddleware",
    # Conda file requests (token or anonymous GET/HEAD) leave the chain here.
    "packages_app.conda.routes.ChannelFileMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "registry.urls"
WSGI_APPLICATION = "registry.wsgi.application"
# Channel URLs such as /<channel>/noarch/repodata.json must not be redirected.
APPEND_SLASH = False

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
                "registry.context.site",
            ],
        },
    },
]

SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "wharf.sqlite3",
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    }
# The conda file lookup (packages_app.conda.lookup) runs as a prepared statement on PostgreSQL;
# off for a pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
WHARF_DB_PREPARED_STATEMENTS = env_bool("WHARF_DB_PREPARED_STATEMENTS", True)
if WHARF_DB_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Prepared on first use; applies only to cursors that bind on the server (Django's
    # own bind on the client and never prepare).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 0
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that a live server process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-wharf.sqlite3")}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Accounts (django-allauth): sign-up and log-in by username or e-mail. E-mail goes to the
# console unless EMAIL_HOST is set (SMTP).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "optional")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
# Off: only administrators create accounts (manage.py createsuperuser, the admin).
WHARF_ALLOW_SIGNUP = env_bool("WHARF_ALLOW_SIGNUP", True)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
# GitHub log-in appears once GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are set.
GITHUB_CLIENT_ID = env_str("GITHUB_CLIENT_ID")
SOCIALACCOUNT_PROVIDERS = {
    "github": {
        "SCOPE": ["read:user", "user:email"],
        "APPS": [
            {"client_id": GITHUB_CLIENT_ID, "secret": env_str("GITHUB_CLIENT_SECRET"), "key": ""}
        ]
        if GITHUB_CLIENT_ID
        else [],
    }
}
SOCIALACCOUNT_ONLY = False
# allauth's own limits, per client address ("ip"), account ("user") or login ("key"); a
# failed sign-in also counts towards WHARF_AUTH_FAILURE_LIMIT.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
    "confirm_email": "1/3m/key",
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "wharf@localhost")
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time into its own folder (Dockerfile).
STATIC_ROOT = Path(env_str("WHARF_STATIC_ROOT", str(DATA_DIR / "static"))).resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Package files and published index files go through Django's storage API only: a
# directory, or with S3_BUCKET an S3-compatible bucket (AWS, MinIO, SeaweedFS, ...).
STORAGE_DIR = Path(env_str("WHARF_STORAGE_DIR", str(DATA_DIR / "storage"))).resolve()
S3_BUCKET = env_str("S3_BUCKET")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")
# Where clients reach the bucket when that is another address than Wharf's (a container
# network inside, a public name outside): download URLs are signed for this host.
S3_PUBLIC_ENDPOINT_URL = env_str("S3_PUBLIC_ENDPOINT_URL")
# How package downloads are answered: "redirect" to a presigned URL of the bucket, so the
# bytes do not pass through Wharf, or "stream" them through Wharf. Index files are always
# streamed (their ETag and Cache-Control come from Wharf).
WHARF_DOWNLOAD_MODE = env_str("WHARF_DOWNLOAD_MODE", "redirect" if S3_BUCKET else "stream")
# A presigned URL is checked when its request arrives; a client that retries later asks
# Wharf again, which checks its credentials again.
WHARF_PRESIGNED_URL_SECONDS = env_int("WHARF_PRESIGNED_URL_SECONDS", 300)
if WHARF_DOWNLOAD_MODE not in ("redirect", "stream"):
    raise ImproperlyConfigured(
        f"WHARF_DOWNLOAD_MODE is '{WHARF_DOWNLOAD_MODE}': use 'redirect' or 'stream'."
    )
if WHARF_DOWNLOAD_MODE == "redirect" and not S3_BUCKET:
    raise ImproperlyConfigured(
        "WHARF_DOWNLOAD_MODE=redirect needs S3_BUCKET: files in a directory have no URL to "
        "redirect to. Use 'stream', or WHARF_ACCEL_REDIRECT_PREFIX behind nginx."
    )


def s3_storage(endpoint_url):
    """django-storages' S3 backend on S3_BUCKET, reached at ``endpoint_url``."""
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": endpoint_url or None,
            "access_key": env_str("S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("S3_REGION") or None,
            "client_config": Config(
                # Path-style (endpoint/bucket/key): MinIO and SeaweedFS need no DNS per bucket.
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                # Checksums only where S3 requires them: not every S3-compatible store
                # takes the ones newer boto3 sends by default.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # A store that hangs fails the request within seconds, not minutes.
                connect_timeout=5,
                retries={"mode": "standard", "max_attempts": 3},
            ),
            # Objects are private: clients get them through Wharf or a presigned URL.
            "default_acl": None,
            "querystring_auth": True,
            # save() never replaces an object: it picks another name, as in a directory.
            "file_overwrite": False,
            # Not guessed from the name: a .tar.bz2 would get Content-Encoding: bzip2.
            "object_parameters": {"ContentType": "application/octet-stream"},
        },
    }


STORAGES = {
    "default": s3_storage(S3_ENDPOINT_URL)
    if S3_BUCKET
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": STORAGE_DIR},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
if S3_BUCKET:
    # The same bucket as clients reach it; used only to sign download URLs.
    STORAGES["downloads"] = s3_storage(S3_PUBLIC_ENDPOINT_URL or S3_ENDPOINT_URL)
# WhiteNoise serves static files straight from the apps and static/ as well, so that pages
# are styled without a collectstatic step (make run still collects them).
WHITENOISE_USE_FINDERS = True
FILE_UPLOAD_TEMP_DIR = env_str("WHARF_UPLOAD_TEMP_DIR") or None
# Upload temporary files (wharf-upload-*) are locked by the process writing them; one
# left unlocked was left by a killed process. The cleanup deletes them, and the stored
# objects such processes left unrecorded, when a process starts and every
# WHARF_UPLOAD_CLEANUP_SECONDS (0: only at start and by `manage.py clean_uploads`).
WHARF_UPLOAD_CLEANUP_SECONDS = env_int("WHARF_UPLOAD_CLEANUP_SECONDS", 60)
# An upload through the anaconda.org API (/api/anaconda/) comes in three requests: stage,
# the bytes, commit. The bytes must be sent within this many seconds of the stage, and
# committed within as many seconds of their arrival; bytes never committed are deleted
# by the next cleanup after that (packages_app/intake/anaconda.py).
WHARF_STAGED_UPLOAD_SECONDS = env_int("WHARF_STAGED_UPLOAD_SECONDS", 3600)
# Download counts buffered in Redis reach the database every WHARF_STATS_FLUSH_SECONDS
# (Celery beat; 0: only by `manage.py flush_download_counts`).
WHARF_STATS_FLUSH_SECONDS = env_int("WHARF_STATS_FLUSH_SECONDS", 60)

# Wharf's own settings.
WHARF_MAX_UPLOAD_SIZE = env_int("WHARF_MAX_UPLOAD_SIZE", 2 * 1024**3)
# An upload is refused (422) as soon as its archives have unpacked to more than this many
# bytes, while they are streamed through once: a small decompression bomb cannot exhaust
# memory, disk or time. The largest packages on conda-forge (CUDA builds) unpack to a few
# GiB; every byte counts, also for tar headers and padding.
WHARF_MAX_UNPACKED_SIZE = env_int("WHARF_MAX_UNPACKED_SIZE", 16 * 1024**3)
# Bytes of package files a channel may hold (0: no limit). A site administrator sets
# another quota per channel in the admin (0 there: no limit for that channel).
WHARF_CHANNEL_QUOTA_BYTES = env_int("WHARF_CHANNEL_QUOTA_BYTES", 0)
# Days an invitation to an organisation may be accepted.
WHARF_INVITATION_DAYS = env_int("WHARF_INVITATION_DAYS", 7)
WHARF_TOKEN_PREFIX = "wharf-"  # noqa: S105 - a public prefix, not a secret
# Leases (an index rebuild's hold on its subdir, an upload's on the object it is storing)
# last this long from their last renewal; the holder's process renews them every third of
# it, so what a killed process held is free again this many seconds later
# (packages_app/leases.py).
WHARF_LEASE_SECONDS = env_int("WHARF_LEASE_SECONDS", 10)
# Index work whose task was lost (broker down, worker killed) is sent again this often
# (seconds): by Celery beat with a broker, after a change in embedded mode. 0: never. A
# rebuild that finds a lease held sends itself again for when the lease lapses; this is
# the last resort, and one query.
WHARF_RECONCILE_SECONDS = env_int("WHARF_RECONCILE_SECONDS", 15)
# zstd level of repodata.json.zst, rebuilt on every change: on 39 MB of repodata level 1
# takes 0.05 s for 6.2 MB, level 16 7 s for 6.0 MB (measured, see docs/benchmarks.md).
WHARF_ZSTD_LEVEL = env_int("WHARF_ZSTD_LEVEL", 1)
# A replaced index folder stays in storage this long (seconds) for requests, and nginx
# after X-Accel-Redirect, that looked it up just before; measured under load, two rebuilds
# can pass between a request's lookup and its open().
WHARF_RETIRED_INDEX_SECONDS = env_int("WHARF_RETIRED_INDEX_SECONDS", 60)
# repodata.json.bz2 follows the other index files at most this often (seconds).
WHARF_BZ2_DELAY_SECONDS = env_int("WHARF_BZ2_DELAY_SECONDS", 30)
# Proxy and mirror channels (channels_app/sources.py, packages_app/upstream/). Wharf
# fetches from upstream hosts on its users' behalf, so hosts that resolve to loopback,
# private or link-local addresses are refused unless this is on (a site whose upstream is
# on its own network, and the tests, turn it on).
WHARF_UPSTREAM_PRIVATE_NETWORKS = env_bool("WHARF_UPSTREAM_PRIVATE_NETWORKS", False)
# Who creates proxy and mirror channels: "admins" (site administrators) or "org-owners"
# (also an organisation's owners and admins, for the organisation's channels).
WHARF_UPSTREAM_CREATORS = env_str("WHARF_UPSTREAM_CREATORS") or "admins"
# Seconds a client's first request for a proxied subdir waits for the upstream's index
# before it is answered 504 (the fetch goes on; later requests get the copy).
WHARF_UPSTREAM_FIRST_FETCH_SECONDS = env_int("WHARF_UPSTREAM_FIRST_FETCH_SECONDS", 20)
# Timeouts of a connection to an upstream (connect, read; seconds).
WHARF_UPSTREAM_TIMEOUT_SECONDS = env_int("WHARF_UPSTREAM_TIMEOUT_SECONDS", 30)
# Package files a mirror run downloads at once from its upstream.
WHARF_MIRROR_DOWNLOADS = env_int("WHARF_MIRROR_DOWNLOADS", 4)
# Package files a mirror run commits together (what a killed run may have to fetch again).
WHARF_MIRROR_BATCH = env_int("WHARF_MIRROR_BATCH", 50)
# How long a mirror run may take on a worker before it is stopped (the next run goes on).
WHARF_MIRROR_RUN_SECONDS = env_int("WHARF_MIRROR_RUN_SECONDS", 6 * 3600)
# Records of recently built subdirs kept in each worker process for incremental rebuilds.
WHARF_INDEX_CACHE_BYTES = env_int("WHARF_INDEX_CACHE_BYTES", 256 * 1024**2)
# Conda file requests may reuse a token this process read from the database in the last
# N seconds (0: never); a revocation made elsewhere takes effect within that bound.
WHARF_TOKEN_CACHE_SECONDS = env_int("WHARF_TOKEN_CACHE_SECONDS", 5)
# Clients may reuse index files (repodata, the shard index, channeldata.json) this many
# seconds without asking (Cache-Control: max-age). 0: "no-cache", they revalidate on every
# command (a 304 when nothing changed) and see an upload as soon as it is indexed.
WHARF_INDEX_MAX_AGE = env_int("WHARF_INDEX_MAX_AGE", 0)
if WHARF_INDEX_MAX_AGE < 0:
    raise ImproperlyConfigured("WHARF_INDEX_MAX_AGE is in seconds: 0 or more.")
# Behind nginx: e.g. "/_protected/", an `internal` location aliased to WHARF_STORAGE_DIR.
# Wharf then authorizes each conda file request and nginx sends the bytes
# (X-Accel-Redirect). Empty: Wharf sends them itself.
WHARF_ACCEL_REDIRECT_PREFIX = env_str("WHARF_ACCEL_REDIRECT_PREFIX")
# With it, nginx may cache Wharf's X-Accel-Redirect answers (X-Accel-Expires) for that many
# seconds per credential and URL, if its configuration says so (docs/deploy-serving.md):
# a revocation or a lost membership then takes effect within that bound. 0: never.
WHARF_ACCEL_CACHE_SECONDS = env_int("WHARF_ACCEL_CACHE_SECONDS", 0)
if WHARF_ACCEL_REDIRECT_PREFIX and S3_BUCKET:
    raise ImproperlyConfigured(
        "WHARF_ACCEL_REDIRECT_PREFIX has nginx send files from WHARF_STORAGE_DIR, but with "
        "S3_BUCKET they are in the bucket: unset one (WHARF_DOWNLOAD_MODE chooses how "
        "package files leave the bucket)."
    )

# Security ------------------------------------------------------------------------------

# Failed authentications (unknown token secrets, wrong passwords) per client address:
# past the limit within a window, that address gets 429 until the window ends. 0: no limit.
WHARF_AUTH_FAILURE_LIMIT = env_int("WHARF_AUTH_FAILURE_LIMIT", 20)
WHARF_AUTH_FAILURE_WINDOW_SECONDS = env_int("WHARF_AUTH_FAILURE_WINDOW_SECONDS", 300)
# Reverse proxies in front of Wharf that append to X-Forwarded-For and set
# X-Forwarded-Proto (docs/deploy-serving.md): the client address is then read from
# X-Forwarded-For, and HTTPS from X-Forwarded-Proto. 0: REMOTE_ADDR, and no proxy headers
# are believed.
WHARF_TRUSTED_PROXY_COUNT = env_int("WHARF_TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_PROXY_COUNT = WHARF_TRUSTED_PROXY_COUNT
if WHARF_TRUSTED_PROXY_COUNT > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Page URLs name private channels and packages: never send them to other sites.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Pages load scripts and styles from Wharf only (registry/security.py); the API docs page
# relaxes it for itself (registry/urls.py).
WHARF_CONTENT_SECURITY_POLICY = env_str("WHARF_CONTENT_SECURITY_POLICY", security.policy())

SESSION_COOKIE_SECURE = WHARF_PRODUCTION
CSRF_COOKIE_SECURE = WHARF_PRODUCTION
# A CSRF refusal under /api/ is JSON like the API's other errors (registry/errors.py).
CSRF_FAILURE_VIEW = "registry.errors.csrf_failure"
# Behind a proxy that terminates TLS, set WHARF_TRUSTED_PROXY_COUNT so that HTTPS requests
# are recognised (else every request is redirected again).
SECURE_SSL_REDIRECT = WHARF_PRODUCTION and env_bool("WHARF_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("WHARF_HSTS_SECONDS", 365 * 24 * 3600) if WHARF_PRODUCTION else 0
# Both reach beyond Wharf's own host name, so the deployment opts in; until then
# `check --deploy` is told not to ask for them.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WHARF_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("WHARF_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = []
if not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    SILENCED_SYSTEM_CHECKS.append("security.W005")
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# Celery: with REDIS_URL the broker is Redis and separate workers consume the queue;
# without it tasks run in the calling process (embedded mode).
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
# Celery's default, named here because /metrics reads this queue's length from Redis
# (registry/broker.py) without the Celery app.
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Mirror runs take minutes to hours: a queue of their own, so that they never hold the
# workers that build indexes (docker-compose.yml runs a worker for each; `make worker`
# consumes both).
MIRROR_QUEUE = "mirrors"
CELERY_TASK_ROUTES = {"packages_app.tasks.run_mirror": {"queue": MIRROR_QUEUE}}
# A Redis that hangs (rather than refusing connections) fails a send within seconds
# instead of holding the request; the reconciler sends the task later.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The cache holds short-lived counters (failed authentications, allauth's rate limits).
# Without Redis it is each process's own memory: limits then count per process.
# WHARF_CACHE_URL may name another Redis database than the broker's.
WHARF_CACHE_URL = env_str("WHARF_CACHE_URL", REDIS_URL)
if WHARF_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": WHARF_CACHE_URL,
            "KEY_PREFIX": "wharf",
            # A Redis that hangs must not hold requests: fail within seconds.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "EXCEPTION_HANDLER": "registry.api.exception_handler",
    # DRF's own, refusing control characters in what they parse (registry/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "registry.parsers.JSONParser",
        "registry.parsers.FormParser",
        "registry.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Wharf API",
    "DESCRIPTION": "Self-hosted conda package channels.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Channel roles and organisation roles are both "role" fields.
    "ENUM_NAME_OVERRIDES": {
        "ChannelRoleEnum": "channels_app.models.Role",
        "OrganizationRoleEnum": "accounts.models.OrgRole",
    },
}

# Operations ----------------------------------------------------------------------------

# "text" for people, "json" (one object per line) for log collectors; on stdout either way.
try:
    WHARF_LOG_FORMAT = logs.log_format(env_str("WHARF_LOG_FORMAT"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
LOGGING_CONFIG = "registry.logs.configure"
LOGGING = logs.config(WHARF_LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))
# /metrics (and a worker's metrics port) for those who send this bearer token; empty: for
# clients on loopback and private addresses only, and never through a proxy.
WHARF_METRICS_TOKEN = env_str("WHARF_METRICS_TOKEN")
# A Celery worker serves its metrics on this port (0: it does not); it needs
# PROMETHEUS_MULTIPROC_DIR, a folder of its own, to add up its pool processes.
WHARF_WORKER_METRICS_PORT = env_int("WHARF_WORKER_METRICS_PORT", 0)
