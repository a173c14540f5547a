# Wharf: `make run` serves a registry at http://127.0.0.1:8000, `make test` runs the tests.
# Both create the virtualenv in .venv and install what is needed on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What serving needs (`make run`, workers), and on top of it the dev extra (`make test`):
# tests, lint, py-rattler-build, playwright and the S3 server the tests start.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2
export DJANGO_SETTINGS_MODULE := registry.settings

.PHONY: run test lint format worker beat migrate install clean bench browser screenshots \
	compose-check nginx

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput

# gunicorn reads gunicorn.conf.py from here: its workers share a metrics folder, and Wharf
# logs one line per request itself (with tokens masked), so gunicorn's access log stays off.
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "Wharf is starting at http://$(HOST):$(PORT)/"
	@echo "Create the first account with:  $(BIN)/python manage.py createsuperuser"
	@echo "then a token with:              $(BIN)/python manage.py create_token USERNAME --name laptop"
	@echo
	$(BIN)/gunicorn registry.wsgi --bind $(HOST):$(PORT) --workers $(WEB_WORKERS) \
		--threads 4 --timeout 600

# Services mode only (REDIS_URL set): a Celery worker that builds channel indexes (and runs
# mirror channels' copies, queue "mirrors"; docker-compose.yml gives them a worker of their own). Its pool
# processes count metrics in a folder of its own (served on WHARF_WORKER_METRICS_PORT).
worker: migrate
	PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$$(mktemp -d -t wharf-worker-metrics.XXXXXX)} \
		$(BIN)/celery -A registry worker --loglevel INFO --concurrency 2 --queues celery,mirrors

# Services mode only, one per deployment: every WHARF_RECONCILE_SECONDS (15) it sends the
# reconciler, which sends again index work whose task was lost (broker down, worker killed).
beat: migrate
	mkdir -p var
	$(BIN)/celery -A registry beat --loglevel INFO --schedule $(CURDIR)/var/celerybeat-schedule

test: $(STAMP) browser nginx
	WHARF_DATA_DIR=$${WHARF_DATA_DIR:-$(CURDIR)/var/test} $(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium; Playwright's own browser download is not used.
CHROMIUM ?= /usr/bin/chromium
export WHARF_CHROMIUM := $(CHROMIUM)
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

# docker-compose.yml (and the local-storage override) validated by `docker compose config`,
# where a docker client is installed; without the compose plugin, Debian's docker-compose.
COMPOSE_FILES := -f docker-compose.yml -f docker/compose.local-storage.yml --profile nginx
compose-check:
	@if docker compose version >/dev/null 2>&1; then \
		docker compose config -q && docker compose $(COMPOSE_FILES) config -q; \
	elif command -v docker >/dev/null; then \
		command -v docker-compose >/dev/null || ($(SUDO) apt-get update && \
			$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose); \
		docker-compose config -q && docker-compose $(COMPOSE_FILES) config -q; \
	else echo "no docker client: docker-compose.yml not validated"; fi
	@echo "docker-compose.yml: valid"

browser:
	test -x $(CHROMIUM) || ($(SUDO) apt-get update && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# tests/ops/test_deploy_nginx.py runs docker/nginx.conf in Debian's nginx.
nginx:
	test -x /usr/sbin/nginx || ($(SUDO) apt-get update && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light)

# docs/screenshots/*.png for the README, taken on the test database with made-up data.
screenshots: $(STAMP) browser
	WHARF_DATA_DIR=$${WHARF_DATA_DIR:-$(CURDIR)/var/screenshots} $(BIN)/python -m pytest \
		tests/screenshots.py -p no:cacheprovider -q

# Benchmarks against rattler-index and nginx; results appended to docs/benchmarks.md.
# Needs PostgreSQL and Redis (as `make test` in CI) and, for serving, nginx and wrk.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
