# syntax=docker/dockerfile:1
# exsync's image: `docker build -t REGISTRY/exsync:VERSION .` (k8s/ overlays set REGISTRY and VERSION).
# The build stage installs the locked dependencies (requirements.lock, every file's hash checked) into a
# venv; the runtime stage gets that venv, the ODBC driver manager and drivers, and no compiler.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# A compiler and the ODBC headers, for a dependency without a wheel for this platform (pyodbc).
# Debian's security updates replace exact versions, so the packages follow the base image's release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential unixodbc-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/exsync
WORKDIR /src
COPY requirements.lock ./
RUN /opt/exsync/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY setup.cfg pyproject.toml README.md ./
COPY exsync ./exsync
# The project itself, without its dependencies: they came from the lock above.
RUN /opt/exsync/bin/pip install --no-deps . \
    && /opt/exsync/bin/exsync --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="exsync" \
      org.opencontainers.image.description="WooCommerce <-> Advanced Exchequer integration" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Proprietary" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The ODBC driver manager and the drivers exsync's DSNs name: psqlODBC (the state database on
# PostgreSQL) and FreeTDS (Exchequer's SQL edition on SQL Server). No compiler, no headers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends unixodbc odbc-postgresql tdsodbc \
    && rm -rf /var/lib/apt/lists/*
COPY docker/odbcinst.ini /etc/odbcinst.ini
# A fixed uid and gid, the ones k8s/ runs as (runAsUser / runAsGroup / fsGroup).
RUN groupadd --system --gid 10001 exsync \
    && useradd --system --uid 10001 --gid exsync --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin exsync
COPY --from=build /opt/exsync /opt/exsync
ENV PATH=/opt/exsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The root filesystem is read-only in k8s/ (/tmp and the metrics directory are emptyDir volumes):
# a relative path written by mistake fails here rather than landing in the container.
WORKDIR /opt/exsync
USER 10001:10001
EXPOSE 8000 9100
ENTRYPOINT ["exsync"]
CMD ["--help"]
