"""Wharf settings: one module, every value from the environment.

Nothing set gives the embedded mode: SQLite and package files under ``WHARF_DATA_DIR``
(``./var``), Celery tasks executed in-process. ``DATABASE_URL`` switches to PostgreSQL,
``REDIS_URL`` to a Redis broker consumed by separate Celery workers.
"""

import os
from pathlib import Path

import dj_database_url

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

# The embedded mode must run with no configuration, so it gets a key of its own that is
# written once under the data directory; production sets SECRET_KEY.
SECRET_KEY = env_str("SECRET_KEY")
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
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Conda file requests (token or anonymous GET/HEAD) leave the chain here.
    "packages_app.serving.ChannelFileMiddleware",
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
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Package files and published index files go through Django's storage API only, so that
# an S3 bucket can replace the directory without code changes.
STORAGE_DIR = Path(env_str("WHARF_STORAGE_DIR", str(DATA_DIR / "storage"))).resolve()
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": STORAGE_DIR},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
# WhiteNoise serves static files straight from the apps and static/ as well, so that pages
# are styled without a collectstatic step (make run still collects them).
WHITENOISE_USE_FINDERS = True
FILE_UPLOAD_TEMP_DIR = env_str("WHARF_UPLOAD_TEMP_DIR") or None

# Wharf's own settings.
WHARF_MAX_UPLOAD_SIZE = env_int("WHARF_MAX_UPLOAD_SIZE", 2 * 1024**3)
WHARF_TOKEN_PREFIX = "wharf-"  # noqa: S105 - a public prefix, not a secret
# How long an index rebuild may hold its (channel, subdir) before another worker may take
# over; a rebuild renews it between rounds.
WHARF_INDEX_LEASE_SECONDS = env_int("WHARF_INDEX_LEASE_SECONDS", 600)
# zstd level of repodata.json.zst, rebuilt on every change: on 39 MB of repodata level 1
# takes 0.05 s for 6.2 MB, level 16 7 s for 6.0 MB (measured, see docs/benchmarks.md).
WHARF_ZSTD_LEVEL = env_int("WHARF_ZSTD_LEVEL", 1)
# repodata.json.bz2 follows the other index files at most this often (seconds).
WHARF_BZ2_DELAY_SECONDS = env_int("WHARF_BZ2_DELAY_SECONDS", 30)
# Records of recently built subdirs kept in each worker process for incremental rebuilds.
WHARF_INDEX_CACHE_BYTES = env_int("WHARF_INDEX_CACHE_BYTES", 256 * 1024**2)
# Conda file requests may reuse a token this process read from the database in the last
# N seconds (0: never); a revocation made elsewhere takes effect within that bound.
WHARF_TOKEN_CACHE_SECONDS = env_int("WHARF_TOKEN_CACHE_SECONDS", 5)
# Behind nginx: e.g. "/_protected/", an `internal` location aliased to WHARF_STORAGE_DIR.
# Wharf then authorizes each conda file request and nginx sends the bytes
# (X-Accel-Redirect). Empty: Wharf sends them itself.
WHARF_ACCEL_REDIRECT_PREFIX = env_str("WHARF_ACCEL_REDIRECT_PREFIX")
# With it, nginx may cache Wharf's X-Accel-Redirect answers (X-Accel-Expires) for that many
# seconds per credential and URL, if its configuration says so (docs/deploy-serving.md):
# a revocation or a lost membership then takes effect within that bound. 0: never.
WHARF_ACCEL_CACHE_SECONDS = env_int("WHARF_ACCEL_CACHE_SECONDS", 0)

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
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

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
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Wharf API",
    "DESCRIPTION": "Self-hosted conda package channels.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
