"""Configuration comes from the environment, and production refuses unsafe defaults."""
import os
import re
import subprocess
import sys

from django.conf import settings

BASE_DIR = settings.BASE_DIR
# Warnings that only TLS in front of the site can fix; HTTPS=1 turns their settings on.
TLS_ONLY_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016"}


def _manage(*args, **env):
    full_env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=full_env, capture_output=True, text=True, timeout=60)


def test_debug_off_without_secret_key_refuses_to_start():
    result = _manage("check", DJANGO_SETTINGS_MODULE="coursesite.settings.prod", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert result.stderr.count("\n") < 40 or "ImproperlyConfigured" in result.stderr


def test_check_deploy_reports_only_what_tls_fixes():
    result = _manage(
        "check", "--deploy", "--fail-level", "ERROR",
        DJANGO_SETTINGS_MODULE="coursesite.settings.prod", DEBUG="0", SECRET_KEY="k" * 20 + "-Zq8#x!vR2@mN5$pL7^wT1&yB4*cE6(hJ9)",
        ALLOWED_HOSTS="course.example.com",
    )
    assert result.returncode == 0, result.stderr
    reported = set(re.findall(r"\((security\.\w+)\)", result.stderr))
    assert reported <= TLS_ONLY_WARNINGS, result.stderr


def test_check_deploy_is_clean_behind_tls():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_SETTINGS_MODULE="coursesite.settings.prod", DEBUG="0", SECRET_KEY="k" * 20 + "-Zq8#x!vR2@mN5$pL7^wT1&yB4*cE6(hJ9)",
        ALLOWED_HOSTS="course.example.com", HTTPS="1",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_environment_sets_hosts_and_origins():
    result = subprocess.run(
        [sys.executable, "-c", "import django;django.setup();from django.conf import settings as s;print(s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, s.DEBUG)"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "coursesite.settings.prod", "SECRET_KEY": "x" * 60, "DEBUG": "1",
             "ALLOWED_HOSTS": "a.example,b.example", "CSRF_TRUSTED_ORIGINS": "https://a.example"},
    )
    assert result.stdout.strip() == "['a.example', 'b.example'] ['https://a.example'] True", result.stderr
