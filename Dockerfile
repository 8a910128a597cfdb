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
# nothing may be written at run time. pip and setuptools are of no use at run time.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --constraint constraints.txt . \
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
# No proxy is trusted by default (SELFCHECK_TRUSTED_PROXIES empty): the deployment
# names its proxy's address (deploy/compose.yaml). A default such as 127.0.0.1
# would let anything arriving through a local tunnel choose its own address.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SELFCHECK_INDEX_PATH=/data/index.bin

USER ${APP_UID}:${APP_UID}
# An empty directory: uvicorn puts the working directory first on sys.path.
WORKDIR /srv
EXPOSE 8000

# Liveness, not readiness: uvicorn answers only once the index and pepper are
# loaded, and a Redis outage (which /readyz reports) must not get every replica
# restarted. Python's urllib, because the image has no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# The one launcher (app/cli.py): preflight (index, key, store) in one line, then
# uvicorn with a head deadline and size cap (httptools), no access log, its own
# X-Forwarded-For handling off (the app's walk over SELFCHECK_TRUSTED_PROXIES is
# the only one), no --limit-concurrency (the app answers overload with its padded
# 503). One worker per container: scale with replicas.
CMD ["selfcheck", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
