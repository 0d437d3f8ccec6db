# Multi-stage: build a wheel with the toolchain, run it on a slim base as a non-root user.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 snaprelabel
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER snaprelabel
WORKDIR /work
# Container mode: JSON log lines on stdout; credentials come from the environment or mounted
# secret files at run time, never from the image.
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["snaprelabel"]
CMD ["--help"]
