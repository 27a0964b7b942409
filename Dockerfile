# chatapi: the production image. Build stage installs the locked dependencies into a
# virtualenv; the final stage gets that virtualenv and the source, nothing else.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# Every dependency ships a manylinux wheel, so no compiler is needed even here.
RUN /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
RUN groupadd --system --gid 10001 chatapi \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin chatapi
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY api ./api
COPY cli ./cli
COPY commands ./commands
COPY domain ./domain
COPY infrastructure ./infrastructure
COPY queries ./queries
USER 10001:10001
EXPOSE 8000
# The source is not pip-installed, so the console script is run as a module from /app.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "cli", "healthcheck"]
# Serves only, never migrates: the migration is a one-shot step of its own (Compose's
# `migrate`), so replicas never race to apply it. On a database not migrated yet it says so
# and answers 503, not ready, until the migration has run (README, "Docker Compose").
CMD ["python", "-m", "cli", "serve"]
