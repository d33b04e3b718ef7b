"""Test settings: the same real PostgreSQL and Redis as `make run`."""
from .base import *  # noqa: F401,F403
from .base import DEBUG_FROM_ENV, SECRET_KEY_FROM_ENV, STORAGES, env_int, local_secret_key

# Off unless DEBUG=1, as in production: tests see what readers see.
DEBUG = bool(DEBUG_FROM_ENV)
# Throwaway databases only: a key generated under var/ is fine.
SECRET_KEY = SECRET_KEY_FROM_ENV or local_secret_key()

# Tests render templates without running collectstatic first.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Serve static files from the source folders: the suite never runs collectstatic.
# (base sets a Path; None is Django's own "no root", hence the ignore)
STATIC_ROOT = None  # type: ignore[assignment]
WHITENOISE_USE_FINDERS = True
# Fast hashing: the admin login in tests need not resist brute force.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Small demos of the suite's own, e.g. a worker demo that blocks its own loop.
DEMO_EXTRA_MODULES = ["tests.sample_demos.blocking_worker", "tests.sample_demos.failing", "tests.sample_demos.failing_worker",
                      "tests.sample_demos.slow_worker",
                      "tests.sample_demos.long_worker", "tests.sample_demos.firehose"]
# The loop-lag admission check is off in the suite: on a busy test machine it would turn tests' own sockets away.
# tests/test_admission.py turns it on for its own Daphne.
DEMO_ADMIT_MAX_LAG_MS = env_int("DEMO_ADMIT_MAX_LAG_MS", 0)
