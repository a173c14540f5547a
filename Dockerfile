# One image for every Wharf process: web (the default command), Celery worker and beat
# (docker-compose.yml chooses). Build: docker build -t wharf .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=registry.settings \
    WHARF_DATA_DIR=/data \
    WHARF_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN pip install .

COPY manage.py gunicorn.conf.py ./
COPY registry ./registry
COPY accounts ./accounts
COPY channels_app ./channels_app
COPY packages_app ./packages_app
COPY templates ./templates
COPY static ./static

# Static files are part of the image; WhiteNoise serves them compressed.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 --home-dir /data wharf \
    && mkdir -p /data && chown wharf /data

USER wharf
VOLUME ["/data"]
EXPOSE 8000

CMD ["gunicorn", "registry.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", \
     "--threads", "4", "--timeout", "600", "--keep-alive", "30"]
