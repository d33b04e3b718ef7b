"""Production settings: DEBUG off unless DEBUG=1 says otherwise. Everything that differs from base is set here."""
from .base import *  # noqa: F401,F403
from .base import DEBUG_FROM_ENV, SECRET_KEY_FROM_ENV, local_secret_key, required_secret_key

DEBUG = bool(DEBUG_FROM_ENV)
# No generated stand-in for the key unless someone turned DEBUG on deliberately.
SECRET_KEY = SECRET_KEY_FROM_ENV or (local_secret_key() if DEBUG else required_secret_key())
