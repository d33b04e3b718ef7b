"""No secret is committed: the key comes from the environment, never from a file in git."""
import re
import subprocess

from django.conf import settings

SUSPICIOUS = [
    re.compile(r"""SECRET_KEY\s*=\s*['"][^'"]{8,}['"]"""),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"""(?i)(api[_-]?key|auth[_-]?token|password)\s*[:=]\s*['"][A-Za-z0-9+/_\-]{16,}['"]"""),
    re.compile(r"AKIA[0-9A-Z]{16}"),
]


def test_tracked_files_hold_no_secrets():
    files = subprocess.run(["git", "ls-files"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True).stdout.split()
    assert files, "not a git checkout"
    offenders = []
    for name in files:
        if name.startswith("tests/"):
            continue  # tests build throwaway keys on purpose
        try:
            text = (settings.BASE_DIR / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        offenders += [f"{name}: {pattern.pattern}" for pattern in SUSPICIOUS if pattern.search(text)]
    assert offenders == []


def test_generated_development_key_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "var/secret_key"], cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert ignored.returncode == 0
