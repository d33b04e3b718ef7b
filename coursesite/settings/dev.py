"""Development settings: what `make run` uses; DEBUG defaults on (see base)."""
from .base import *  # noqa: F401,F403
