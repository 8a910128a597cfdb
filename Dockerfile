# syntax=docker/dockerfile:1
# The patient breach self-check API: one uvicorn worker per container, non-root,
# read-only root filesystem. The index and the pepper are never in the image:
# mount them read-only at run time (deploy/compose.yaml, docs/OPERATIONS.md).
#
#   docker build -t selfcheck-api .
#
# Checked without a Docker engine by tests/deploy/test_dockerfile.py (hadolint,
# the build context, and this CMD and HEALTHCHECK run as local processes).

# Pin the digest in production (`python:3.11-slim-bookworm@sha256:...`); the tag
# keeps this file readable and rebuilds pick up Debian security fixes.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtualenv with the project and its pinned dependencies --------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency has a binary wheel, so no compiler is needed even here.
COPY deploy/constraints.txt pyproject.toml README.md ./
COPY lookup_index ./lookup_index
COPY app ./app
# Not editable: the code lands in site-packages with its .pyc compiled now, since
# nothing may be written at run time. The log configuration is app.logging_setup's
# (no access log, slowapi quiet), written as the file uvicorn's --log-config reads.
# pip and setuptools are of no use at run time.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --constraint constraints.txt . \
    && /opt/venv/bin/python -c "import json, app.logging_setup as m; print(json.dumps(m.log_config('info')))" \
       > /opt/venv/selfcheck-logging.json \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- runtime: the slim base, the venv, a fixed non-root user; nothing else -----
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
LABEL org.opencontainers.image.title="patient-breach-selfcheck" \
      org.opencontainers.image.description="Patient breach self-check API (index and pepper mounted at run time)"
# The base image's own pip/setuptools are of no use to the service: less to patch.
RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
    && groupadd --system --gid "${APP_UID}" selfcheck \
    && useradd --system --no-log-init --uid "${APP_UID}" --gid selfcheck \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin selfcheck
COPY --from=builder /opt/venv /opt/venv

# The pepper is read from /run/secrets/selfcheck.key (the defaults of
# SELFCHECK_SECRETS_DIR and SELFCHECK_KEY_FILE), where Docker, Compose and
# Kubernetes mount secrets as files.
# FORWARDED_ALLOW_IPS is uvicorn's --forwarded-allow-ips (read from the
# environment: an exec-form CMD cannot expand variables). It must always equal
# SELFCHECK_TRUSTED_PROXIES; set both to the reverse proxy's address.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SELFCHECK_INDEX_PATH=/data/index.bin \
    SELFCHECK_WORKERS=1 \
    SELFCHECK_TRUSTED_PROXIES=127.0.0.1/32 \
    FORWARDED_ALLOW_IPS=127.0.0.1/32

USER ${APP_UID}:${APP_UID}
# An empty directory: uvicorn puts the working directory first on sys.path.
WORKDIR /srv
EXPOSE 8000

# Liveness, not readiness: uvicorn answers only once the index and pepper are
# loaded, and a Redis outage (which /readyz reports) must not get every replica
# restarted. Python's urllib, because the image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# One worker per container (scale with replicas). Keep-alive 75 s outlives the
# proxy's upstream keepalive_timeout (60 s in deploy/nginx), so the proxy, not
# uvicorn, closes idle connections and never reuses one being closed. No access
# log: it would print client addresses. The app applies its own
# SELFCHECK_TRUSTED_PROXIES walk on top of uvicorn's.
CMD ["uvicorn", "--factory", "app.main:create_app", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--workers", "1", \
     "--proxy-headers", \
     "--no-server-header", \
     "--no-access-log", \
     "--log-config", "/opt/venv/selfcheck-logging.json", \
     "--timeout-keep-alive", "75", \
     "--timeout-graceful-shutdown", "10", \
     "--limit-concurrency", "128"]
