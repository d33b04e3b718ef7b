"""Settings shared by every environment.

Every environment variable the site reads is read here, and only here:
DATABASE_URL, REDIS_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS,
plus a few tuning knobs for demo limits. When DATABASE_URL / REDIS_URL are
unset, the URLs of the embedded servers that `make run` started are used
(`var/run/services.json`), so `manage.py` works in a second terminal.
"""
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from coursesite import keys
from demos.discovery import demo_apps

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("COURSESITE_VAR_DIR") or BASE_DIR / "var")
SERVICES_FILE = VAR_DIR / "run" / "services.json"


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" are yes)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated environment variable."""
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, failing loudly on junk."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    """Read a number of seconds (or any real number) from the environment, failing loudly on junk."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def embedded_service_urls() -> dict[str, str]:
    """URLs of the embedded servers a running `make run` wrote down, if any."""
    try:
        return json.loads(SERVICES_FILE.read_text())
    except (OSError, ValueError):
        return {}


_embedded = embedded_service_urls()

# DEBUG and SECRET_KEY are read here; dev.py, test.py and prod.py each state
# their own default and whether a key generated under var/ may stand in.
DEBUG_FROM_ENV: bool | None = None if os.environ.get("DEBUG", "") == "" else env_bool("DEBUG", False)
SECRET_KEY_FROM_ENV = os.environ.get("SECRET_KEY", "")
DEBUG = bool(DEBUG_FROM_ENV)
SECRET_KEY = SECRET_KEY_FROM_ENV


def local_secret_key() -> str:
    """A development key kept under var/ so sessions survive restarts; never committed."""
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


def required_secret_key() -> str:
    """SECRET_KEY from the environment; with DEBUG off there is no stand-in, and no start without it."""
    if not SECRET_KEY_FROM_ENV:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off the site refuses to start without one; "
            "set SECRET_KEY to a long random string (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    return SECRET_KEY_FROM_ENV


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

DATABASE_URL = os.environ.get("DATABASE_URL") or _embedded.get("DATABASE_URL") or "postgresql://localhost:5432/coursesite"
REDIS_URL = os.environ.get("REDIS_URL") or _embedded.get("REDIS_URL") or "redis://127.0.0.1:6379/0"

# Persistent connections: Django runs sync views in one thread under ASGI, so
# reusing its connection saves a PostgreSQL handshake on every page.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 60), conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "lessons",
    "demos",
    "learning",
    # Demo packages with tables of their own are apps too (demos/discovery.py).
    *demo_apps(),
]

MIDDLEWARE = [
    # First: nothing may answer (not even a static file or a cached page) for a foreign Host.
    "coursesite.origins.AllowedHostMiddleware",
    # Outside everything that builds a body: HTML and JSON leave gzipped (cached pages come pre-compressed).
    "coursesite.compression.CompressionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "coursesite.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # WhiteNoise, able to run on the loop: its sync-only original made every request
    # cross threads, and could hang shutdown (coursesite/static_files.py).
    "coursesite.static_files.AsyncWhiteNoiseMiddleware",
    # Cached reader pages are answered here, on the event loop; the rest is the usual stack.
    "lessons.middleware.CachedReaderPageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "coursesite.urls"
ASGI_APPLICATION = "coursesite.asgi.application"

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Admin login throttling (django-axes). AxesBackend must come first: it refuses a locked-out
# username+address pair before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many wrong passwords for one username from one address, that pair is locked out ...
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5)
# ... for this long (another wrong try meanwhile starts the wait again), or until staff unlock it.
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15))
# Per username and address together: a stranger guessing at "admin" cannot lock the real admin out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The address Daphne saw; a header a client can write (X-Forwarded-For) is never trusted here.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_VERBOSE = False

# Debug pages and error reports hide every setting that holds a server address or credential.
DEFAULT_EXCEPTION_REPORTER_FILTER = "coursesite.error_reports.CredentialSafeExceptionReporterFilter"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "coursesite.storage.ModuleAwareStaticFilesStorage"},
}

# Static files come from collectstatic's output; dev.py and test.py serve the source folders instead.
WHITENOISE_USE_FINDERS = False
WHITENOISE_AUTOREFRESH = False

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": keys.CACHE_KEY_PREFIX,
    },
    # Rendered reader pages, per process: keyed by the content version kept in
    # Redis, so every process drops them together when an author saves.
    "pages": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "reader-pages",
        "OPTIONS": {"MAX_ENTRIES": 500},
    },
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "coursesite.channel_layer.ResilientRedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": keys.CHANNEL_LAYER_PREFIX, "capacity": 500, "expiry": 30},
    }
}

# Celery: JSON only, one task reserved at a time, hard and soft limits on every task.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 75
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Runs a crashed process left "running" are swept every minute (beat runs inside
# `make run`'s demo worker; when scaling out, run exactly one beat).
CELERY_BEAT_SCHEDULE = {"sweep-stale-runs": {"task": "demos.sweep_stale_runs", "schedule": 60.0}}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Behind a TLS-terminating proxy, HTTPS=1 turns on what only TLS can make safe.
if env_bool("HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 30
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# HSTS preload is a hard-to-undo decision for whoever owns the domain, not a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Demo engine limits, per socket and site-wide per placement.
DEMO_RUNS_PER_SOCKET = env_int("DEMO_RUNS_PER_SOCKET", 2)
DEMO_MAX_LOOP_RUNS = env_int("DEMO_MAX_LOOP_RUNS", 200)
DEMO_MAX_WORKER_RUNS = env_int("DEMO_MAX_WORKER_RUNS", 8)
DEMO_SOCKETS_PER_IP = env_int("DEMO_SOCKETS_PER_IP", 20)
# Admission per web process: websockets one Daphne holds open at once; past it a new socket is told
# `busy` (retry after DEMO_BUSY_RETRY_AFTER_S to twice that) before any work (coursesite/server_limits.py).
# The default is what one Daphne on the 2-core bench machine served within its delay target.
DEMO_SOCKETS_PER_PROCESS = env_int("DEMO_SOCKETS_PER_PROCESS", 1500)
DEMO_BUSY_RETRY_AFTER_S = env_float("DEMO_BUSY_RETRY_AFTER_S", 2.0)
# ... and while its event loop has lately run this many ms late (0: no such check) it admits none
# at once: the readers it holds feel the lateness first. 50 rather than 100 (or 200): the loop is let
# in from the line only under half the bound, so the bound is about the lateness admitted readers live
# with; 50 kept a few-socket observer's event-delay p99 at 135-319 ms where 100 gave 256-388 ms, with as
# many of 2,000 readers finished (docs/adr/0025-a-lag-bound-of-50-ms.md).
DEMO_ADMIT_MAX_LAG_MS = env_int("DEMO_ADMIT_MAX_LAG_MS", 50)
# A socket arriving then waits in line, its handshake held, up to this long for the loop to catch up
# (let in oldest first, a few at a time), and is told `busy` only if it has not by then.
DEMO_ADMIT_WAIT_S = env_float("DEMO_ADMIT_WAIT_S", 3.0)
# While readers wait (in line, or in the kernel's queue while the loop is late), a connection that has
# already waited this long in the kernel's queue is told `busy` at the door, cheaply, instead of
# waiting on: past a minute clients give up on a handshake, which is a transport failure.
DEMO_ADMIT_QUEUE_MAX_S = env_float("DEMO_ADMIT_QUEUE_MAX_S", 20.0)
# Fair shares: one client address may hold this many runs of each placement at once,
# so a single reader cannot take every worker slot.
DEMO_WORKER_RUNS_PER_ADDRESS = env_int("DEMO_WORKER_RUNS_PER_ADDRESS", 2)
DEMO_LOOP_RUNS_PER_ADDRESS = env_int("DEMO_LOOP_RUNS_PER_ADDRESS", 20)
# Step mode: sockets and sessions (each a sandbox with three database connections) per address.
DEMO_STEP_SOCKETS_PER_ADDRESS = env_int("DEMO_STEP_SOCKETS_PER_ADDRESS", 4)
DEMO_STEP_SESSIONS_PER_ADDRESS = env_int("DEMO_STEP_SESSIONS_PER_ADDRESS", 4)
# Addresses (or CIDRs) of reverse proxies whose X-Forwarded-For is believed (coursesite/proxy.py).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# Where the upstream process listens (demos/upstream.py, `host:port`): the network waits of loop demos go there.
# `make run` starts it and sets this; empty means no upstream, and a run that needs one fails saying so.
DEMO_UPSTREAM_ADDRESS = os.environ.get("DEMO_UPSTREAM_ADDRESS") or _embedded.get("DEMO_UPSTREAM_ADDRESS") or ""

# Demo engine timing: every interval, silence and grace period in one block.
# A run's events go out in one batch at most this often (caps a run at ~20 messages a second).
DEMO_BATCH_INTERVAL_S = 0.05
# A worker run says "still here" this often ...
DEMO_HEARTBEAT_S = 1.0
# ... and the socket takes its worker for dead after this long without a word.
DEMO_WORKER_SILENCE_S = 5.0
# A worker gives up sending a run's last messages after this long (Redis unreachable); the socket's
# silence watchdog then ends the run for the reader.
DEMO_WORKER_FLUSH_S = 3.0
# A run ending PostgreSQL refused is written again, backing off up to this long between tries,
# until PostgreSQL takes it (docs/adr/0010-run-endings-retried-until-postgres-returns.md).
DEMO_END_RETRY_MAX_DELAY_S = env_int("DEMO_END_RETRY_MAX_DELAY_S", 10)
# How long a worker run may sit in the queue, on top of its time limit, before it is abandoned.
DEMO_QUEUE_GRACE_S = 10.0
# A run's site-wide slot expires this long after its time limit, should its process die holding it.
DEMO_SLOT_GRACE_S = 15.0
# How long the "please stop" flag of a worker run stays in Redis.
DEMO_CANCEL_FLAG_TTL_S = 120
# A socket's or step session's place in its address's cap is a lease of this length,
# renewed every third of it while it lives: a killed process's places free up within it.
DEMO_ADDRESS_LEASE_S = env_int("DEMO_ADDRESS_LEASE_S", 60)
# What Daphne buffers of one websocket message or frame; past it the protocol closes with 1009
# before reading the payload (the app's own 16 KiB cap answers `too_big` first, below this).
# Autobahn applies the same limit to what the server SENDS, so it must stay well above the
# largest events batch (2,500 events, about 160 KB for a 10,000-request run): 2 MiB.
DEMO_WS_MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# A request's headers must have arrived this long after its connection opened (or its previous response ended).
DEMO_REQUEST_HEADERS_TIMEOUT_S = env_int("DEMO_REQUEST_HEADERS_TIMEOUT_S", 5)
# A websocket handshake must be complete (and accepted) this long after its request arrived.
DEMO_WS_HANDSHAKE_TIMEOUT_S = env_int("DEMO_WS_HANDSHAKE_TIMEOUT_S", 10)
# A reader whose unsent bytes pass this bound is closed with 4408 (too slow) ...
# (above a few full events batches, which a reader that does read drains at once)
DEMO_SLOW_READER_BUFFER_BYTES = env_int("DEMO_SLOW_READER_BUFFER_BYTES", 4 * 1024 * 1024)
# ... and has this long to read what is queued (and the close) before its connection is cut.
DEMO_SLOW_READER_DRAIN_S = env_int("DEMO_SLOW_READER_DRAIN_S", 10)
# A step session ends after this long without a step (its connections hold a row, maybe a lock).
DEMO_STEP_IDLE_S = 120.0

# Predictions (learning/): posts allowed per reader token and per client address in each window.
PREDICTIONS_PER_READER = env_int("PREDICTIONS_PER_READER", 30)
PREDICTIONS_PER_ADDRESS = env_int("PREDICTIONS_PER_ADDRESS", 120)
PREDICTION_RATE_WINDOW_S = env_int("PREDICTION_RATE_WINDOW_S", 60)

# The code sandbox: readers' own programs, run under bubblewrap (docs/adr/0016). Where this path is missing
# or cannot create namespaces, the demo that uses it says it is off on this server and nothing else changes.
CODE_SANDBOX_BWRAP = os.environ.get("CODE_SANDBOX_BWRAP", "/usr/bin/bwrap")
# One run's limits: wall and CPU seconds, memory (the address space of each process, and the resident memory of
# all of them), processes plus threads, open files per process, bytes of stdout+stderr, the size of its /tmp.
CODE_SANDBOX_WALL_S = env_float("CODE_SANDBOX_WALL_S", 10.0)
CODE_SANDBOX_CPU_S = env_int("CODE_SANDBOX_CPU_S", 8)
CODE_SANDBOX_MEMORY_MB = env_int("CODE_SANDBOX_MEMORY_MB", 512)
CODE_SANDBOX_TASKS = env_int("CODE_SANDBOX_TASKS", 48)
CODE_SANDBOX_OPEN_FILES = env_int("CODE_SANDBOX_OPEN_FILES", 64)
CODE_SANDBOX_OUTPUT_BYTES = env_int("CODE_SANDBOX_OUTPUT_BYTES", 1024 * 1024)
CODE_SANDBOX_TMP_MB = env_int("CODE_SANDBOX_TMP_MB", 16)
# Readers' programs run this much nicer than the site, so a busy sandbox takes the CPU the web tier leaves.
CODE_SANDBOX_NICE = env_int("CODE_SANDBOX_NICE", 10)
# ... and, where the worker can make a CPU cgroup, all sandboxes together weigh this much against one of the
# site's sessions (1024): nice alone does not reach across the kernel's per-session autogroups. 0: no cgroup.
CODE_SANDBOX_CPU_SHARES = env_int("CODE_SANDBOX_CPU_SHARES", 64)
# When the worker runs as root, each run gets a uid of its own from this range (never a real account's), so the
# kernel's per-user process cap binds (it is not enforced for uid 0) and no run can signal another's processes.
CODE_SANDBOX_UID_BASE = env_int("CODE_SANDBOX_UID_BASE", 1_800_000)
CODE_SANDBOX_UID_COUNT = env_int("CODE_SANDBOX_UID_COUNT", 100_000)

# `make run`'s supervisor (coursesite/stack.py). It asks Daphne for /hello this often ...
SUPERVISOR_PROBE_INTERVAL_S = env_float("SUPERVISOR_PROBE_INTERVAL_S", 2.0)
# ... waits this long for an answer ...
SUPERVISOR_PROBE_TIMEOUT_S = env_float("SUPERVISOR_PROBE_TIMEOUT_S", 1.5)
# ... and after this many unanswered probes in a row takes it for wedged: SIGKILL, then a new one.
SUPERVISOR_PROBE_FAILURES = env_int("SUPERVISOR_PROBE_FAILURES", 3)
# ... or this many when the process used CPU meanwhile: busy serving a burst, not wedged (a stopped or
# hung Daphne uses none); a loop spinning for ever is still killed, later.
SUPERVISOR_BUSY_PROBE_FAILURES = env_int("SUPERVISOR_BUSY_PROBE_FAILURES", 15)
# A Daphne that has not answered once this long after it started is wedged too.
SUPERVISOR_START_TIMEOUT_S = 30.0
# A process the supervisor stops gets SIGTERM, then SIGKILL (its whole process group) this long after.
SUPERVISOR_STOP_GRACE_S = env_float("SUPERVISOR_STOP_GRACE_S", 6.0)
# An embedded Redis or PostgreSQL that died is started again this long after it was seen down
# (and again every as long, while it will not start).
SUPERVISOR_EMBEDDED_RESTART_DELAY_S = env_float("SUPERVISOR_EMBEDDED_RESTART_DELAY_S", 1.0)
# A web or worker process that exited is started again this long after (one that dies at once cannot spin).
SUPERVISOR_RESTART_DELAY_S = env_float("SUPERVISOR_RESTART_DELAY_S", 1.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"coursesite": {"level": "INFO"}, "demos": {"level": "INFO"}},
}
