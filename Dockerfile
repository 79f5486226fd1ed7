# syntax=docker/dockerfile:1
# One image for every process type (web, worker, release); compose and platforms choose the command.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
# Wheels for the project and every dependency, built where the compilers are.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app APP_ENV=production PORT=8000 WEB_CONCURRENCY=2 UPLOAD_DIR=/data/uploads
RUN groupadd --system tasklane && useradd --system --gid tasklane --home-dir /app --shell /usr/sbin/nologin tasklane
WORKDIR /app
# Dependencies from the wheels; the code itself runs from /app, next to the sql/ files it reads.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels tasklane && pip uninstall -y tasklane && rm -rf /root/.cache
COPY --chown=tasklane:tasklane service ./service
COPY --chown=tasklane:tasklane workers ./workers
COPY --chown=tasklane:tasklane sql ./sql
COPY --chown=tasklane:tasklane Procfile ./
RUN mkdir -p /data/uploads && chown -R tasklane:tasklane /data
USER tasklane
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/health/live', timeout=2)"]
# The Procfile's web command: uvicorn set up from the environment (HOST, PORT, WEB_CONCURRENCY, ...).
CMD ["python", "-m", "service.serve"]
