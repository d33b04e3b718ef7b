"""What Django's debug pages and error e-mails may show of the settings.

Django's SafeExceptionReporterFilter hides settings whose names look like
API keys, tokens, secrets or passwords. This site's credentials live in
URLs instead (DATABASE_URL, REDIS_URL, the broker and result backend, the
cache LOCATION, the channel layer's hosts, the parsed DATABASES), which the
stock pattern lets through in clear on every debug page under `make run`.
"""
from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

# Django's own words, plus every name under which a server address with its password can hide.
HIDDEN_SETTINGS = re.compile(
    "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE"
    "|URL|HOSTS|LOCATION|DATABASES|BROKER|RESULT_BACKEND",
    flags=re.IGNORECASE,
)
# Any other value that carries a user or password in a URL: scheme://user:password@host.
URL_WITH_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@]*@", flags=re.IGNORECASE)


class CredentialSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Also hide every setting that holds a server address: they carry passwords in this site."""

    hidden_settings = HIDDEN_SETTINGS

    def cleanse_setting(self, key, value):
        """Hide the setting by name as Django does, and any URL with a password in it whatever its name."""
        # type(), not isinstance(): a lazy setting (django-axes has some) passes for a str but is not one.
        if type(value) is str and URL_WITH_CREDENTIALS.search(value):
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_traceback_frame_variables(self, request, tb_frame):
        """A frame's local variables, with the same rule: a database error's frames hold the connection's settings."""
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]
