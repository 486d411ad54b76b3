# syntax=docker/dockerfile:1
# initserve: one replica of the service (see docker-compose.yml for several behind nginx).
#
#   docker build -t initserve .
#   docker run -p 8000:8000 -e INITSERVE_WORKERS=4 initserve
#
# Every INITSERVE_* setting (service/initserve/api/settings.py) can be given with -e: workers,
# INITSERVE_MAX_ELEMENTS, INITSERVE_MAX_JSON_ELEMENTS, INITSERVE_MAX_DENSE_SIDE,
# INITSERVE_MAX_MODEL_ELEMENTS, INITSERVE_MAX_UPLOAD_BYTES, INITSERVE_MAX_PROPAGATION_WORK.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: a C compiler for the sampling kernel (initserve.core._kernel, compiled by
# `pip install` with the flags pyproject.toml fixes), and a virtual environment to copy out.
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY service ./service
# A regular (not editable) install without the test extras: the venv holds everything it runs.
RUN /opt/venv/bin/pip install .

# Final stage: the same Python, the venv, no compiler, no source tree.
FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 initserve \
    && useradd --uid 10001 --gid initserve --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin initserve
COPY --from=build /opt/venv /opt/venv
# Listen on every interface of the container (the CLI's own default is loopback only); two
# workers per container, more replicas for more; the limits keep the service's defaults.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    INITSERVE_HOST=0.0.0.0 \
    INITSERVE_PORT=8000 \
    INITSERVE_WORKERS=2
# A numeric user, so that runtimes enforcing "run as non-root" can check it.
USER 10001:10001
EXPOSE 8000
# The slim image has no curl: ask /healthz with the venv's Python, on the port the service uses.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INITSERVE_PORT', '8000'), timeout=4)"]
CMD ["initserve", "serve"]
