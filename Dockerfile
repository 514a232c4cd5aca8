# syntax=docker/dockerfile:1
# The Atalaia image: every service of compose.yaml is `atalaia <command>` in it.
# Two stages: the build stage compiles the scoring hot path (mypyc, needs a C compiler) into
# a virtual environment; the runtime stage copies only that environment onto a slim Python
# and runs as an unprivileged user. No chDB, matplotlib or embedded broker: the image talks
# to Kafka and a ClickHouse server (the `analytics`, `reports`, `embedded` extras are for
# laptops and tests).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/atalaia \
 && /opt/atalaia/bin/pip install 'setuptools>=77' 'mypy>=2.4'
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY agents agents
COPY atalaia atalaia
COPY config config
COPY engine engine
COPY schemas schemas
COPY sinks sinks
COPY streams streams
# The dependencies first, then the package compiled against them (mypyc reads their types).
RUN /opt/atalaia/bin/pip install . \
 && ATALAIA_COMPILE=1 /opt/atalaia/bin/pip install --no-build-isolation --no-deps --force-reinstall . \
 && /opt/atalaia/bin/pip uninstall -y mypy \
 && /opt/atalaia/bin/atalaia --version

FROM python:${PYTHON_VERSION}-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 atalaia \
 && useradd --system --uid 10001 --gid atalaia --home-dir /var/lib/atalaia --create-home atalaia
COPY --from=build /opt/atalaia /opt/atalaia
ENV PATH=/opt/atalaia/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ATALAIA_DATA_DIR=/var/lib/atalaia \
    ATALAIA_METRICS_HOST=0.0.0.0 \
    ATALAIA_METRICS_PORT=9100
USER 10001:10001
WORKDIR /var/lib/atalaia
VOLUME ["/var/lib/atalaia"]
# 8088: api; 8089: sink; 9100: metrics and health of every other service.
EXPOSE 8088 8089 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=8 \
  CMD ["atalaia", "health"]
ENTRYPOINT ["atalaia"]
CMD ["--help"]
