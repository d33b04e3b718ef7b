# The two commands that matter: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
BWRAP ?= /usr/bin/bwrap
NGINX ?= /usr/sbin/nginx

.PHONY: run test lint superuser browser bubblewrap nginx wrk bench lighthouse clean-data help jscheck jstest node

# $(call debian_package,CHECK,PACKAGES,FOR,HINT): nothing when the shell test CHECK passes; otherwise Debian's
# PACKAGES are installed when this runs as root with apt-get, or HINT says what to do and the target fails.
define debian_package
if $(1); then exit 0; fi; \
if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
  echo "Installing Debian's $(2) for $(3)..."; \
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2)) >/dev/null || exit 1; \
else \
  echo "$(4)"; \
  exit 1; \
fi
endef

help:
	@echo "make run        start the site (PostgreSQL, Redis, Daphne, Celery) on http://127.0.0.1:$${PORT:-8000}/"
	@echo "                WEB_PROCESSES=N runs N Daphnes on that one port (default: one per core)"
	@echo "make test       run the whole test suite against real throwaway servers (ARGS=... passes pytest options)"
	@echo "make lint       ruff and mypy over the Python code (make test runs it first)"
	@echo "make superuser  create an admin login (while 'make run' is running)"
	@echo "make bench      load a running copy of the site and write docs/benchmarks.md"
	@echo "make lighthouse Lighthouse scores of every lesson page, written to docs/lighthouse.md"

# requirements.txt is the hashed lock compiled from requirements.in; a changed lock reinstalls.
$(INSTALLED): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	@touch $@

# WEB_PROCESSES=N: N Daphne processes sharing the one listening socket (empty: one per core).
run: $(INSTALLED)
	WEB_PROCESSES=$(WEB_PROCESSES) $(PY) -m coursesite.stack run

# One pytest session, with pytest ARGS. SPLIT=1: the whole suite as two sessions at once, each with servers of
# its own (about 12.5 instead of 19 minutes; not the default yet: docs/adr/0020-the-suite-in-two-sessions.md).
test: $(INSTALLED) browser bubblewrap nginx wrk lint jscheck jstest
	$(PY) -m coursesite.stack test $(if $(SPLIT),--split,$(ARGS))

# Any ruff or mypy finding fails the target (and so `make test`); settings in pyproject.toml.
# LINT_PATHS="lessons bench" checks only those (mypy still reads what they import, but reports only on them).
lint: $(INSTALLED)
	$(PY) -m ruff check $(or $(LINT_PATHS),.)
	$(PY) -m mypy $(if $(LINT_PATHS),--follow-imports=silent $(LINT_PATHS))

# Front end: type-check static/js with tsc --checkJs (no build step) and run the pure modules' node tests.
node:
	@$(call debian_package,command -v node >/dev/null && command -v npm >/dev/null,nodejs npm,the front-end checks,The front-end checks need Node.js 20+ and npm: run 'sudo apt-get install nodejs npm' (Debian/Ubuntu).)

node_modules/.package-lock.json: package-lock.json | node
	npm ci --no-audit --no-fund
	@touch $@

jscheck: node_modules/.package-lock.json
	npx --no-install tsc --noEmit -p .

jstest: node
	node --test tests/js/

superuser: $(INSTALLED)
	$(PY) manage.py createsuperuser

# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
browser:
	@$(call debian_package,[ -x "$(CHROMIUM)" ],chromium,the browser tests,The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (Debian/Ubuntu) or set CHROMIUM=/path/to/chromium.)

# Readers' own code runs under Debian's bubblewrap (docs/adr/0016); without it that demo says it is off
# and the rest of the site works, but its tests need it.
bubblewrap:
	@$(call debian_package,[ -x "$(BWRAP)" ],bubblewrap,the code sandbox,The code sandbox needs bubblewrap at $(BWRAP): run 'sudo apt-get install bubblewrap' (Debian/Ubuntu) or set BWRAP=/path/to/bwrap and CODE_SANDBOX_BWRAP to the same.)

# The test behind a real proxy (tests/test_behind_nginx.py) runs Debian's nginx as a child of its own.
nginx:
	@$(call debian_package,[ -x "$(NGINX)" ],nginx,the reverse-proxy test,The reverse-proxy test needs nginx at $(NGINX): run 'sudo apt-get install nginx' (Debian/Ubuntu) or set NGINX=/path/to/nginx.)

# Benchmarks: a site started as `make run` starts it, loaded, results in docs/benchmarks.md.
bench: $(INSTALLED) wrk
	$(PY) -m bench

# Lighthouse scores of every lesson page (installs Lighthouse from npm into var/lighthouse on first use).
lighthouse: $(INSTALLED) browser node
	$(PY) -m bench.lighthouse

wrk:
	@$(call debian_package,command -v wrk >/dev/null,wrk,the benchmarks,The benchmarks need wrk: run 'sudo apt-get install wrk' (Debian/Ubuntu).)

clean-data:
	rm -rf var/
