# Multi-stage: build and install with the toolchain, copy only the installed environment into a
# slim runtime that runs as uid 10001. Two builds from the same commit install the same files:
# every dependency (and the `fast` extra) comes from requirements/image.txt and the build backend
# from requirements/build.txt, each pinned with its hashes (pip --require-hashes). Regenerate
# them with pip-tools after changing pyproject.toml (docs/containers.md#reproducible-builds).
# For a fully pinned base too, build with --build-arg BASE=python:3.12-slim@sha256:<digest>.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY requirements/ ./requirements/
# The build backend, exactly as pinned; the wheel is then built without fetching another one.
RUN pip install --require-hashes --no-deps -r requirements/build.txt
# The runtime environment: a venv without pip, filled by this stage's pip (--python).
RUN python -m venv --without-pip /opt/snaprelabel \
 && pip --python /opt/snaprelabel/bin/python install --require-hashes --no-deps --only-binary :all: \
        -r requirements/image.txt
COPY pyproject.toml README.md LICENSE ./
COPY worker ./worker
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
 && pip --python /opt/snaprelabel/bin/python install --no-deps /tmp/wheels/snaprelabel-*.whl \
 && rm -rf /tmp/wheels

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="snaprelabel" \
      org.opencontainers.image.description="Relabel disk snapshots in bulk on Huawei Cloud EVS and OpenStack Cinder" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The user by number too (USER 10001 below): the kubelet checks runAsNonRoot only on a numeric
# user. /work is made here, owned by 10001, so every builder (BuildKit, buildah, the classic
# builder, kaniko) gives the same owner; WORKDIR alone leaves it root-owned on some.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /work --shell /usr/sbin/nologin snaprelabel \
 && install -d -o 10001 -g 10001 -m 0755 /work
COPY --from=build /opt/snaprelabel /opt/snaprelabel
COPY LICENSE /usr/share/doc/snaprelabel/LICENSE
ENV PATH=/opt/snaprelabel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /work
# Container mode: JSON log lines on stdout; credentials come from the environment or mounted
# secret files at run time, never from the image.
ENTRYPOINT ["snaprelabel"]
CMD ["--help"]
