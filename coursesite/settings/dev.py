"""Development settings: what `make run` uses. Everything that differs from base is set here."""
from .base import *  # noqa: F401,F403
from .base import DEBUG_FROM_ENV, SECRET_KEY_FROM_ENV, local_secret_key, required_secret_key

# On unless DEBUG=0 (the benchmarks run `make run` that way, with a key of their own).
DEBUG = True if DEBUG_FROM_ENV is None else DEBUG_FROM_ENV
# With DEBUG on, a key generated under var/ will do; with it off, a real one is required.
SECRET_KEY = SECRET_KEY_FROM_ENV or (local_secret_key() if DEBUG else required_secret_key())
# While debugging, serve static files straight from the source folders and pick up edits.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
