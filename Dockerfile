# restreamer's container image: docker build -t restreamer:latest .
# (README, "Deploying"). The first stage builds the wheel from this checkout,
# the second installs only it and its dependencies, and runs as a user
# without privileges.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.txt README.md ./
COPY restreamer ./restreamer
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin restreamer
# The config the image serves unless another is mounted over it: the bundled
# demo stream on every interface, with its health API for the check below.
COPY deploy/container/restreamer.yaml /etc/restreamer/restreamer.yaml
USER 10001
EXPOSE 8000
ENV RESTREAMER_CONFIG=/etc/restreamer/restreamer.yaml
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
ENTRYPOINT ["restreamer"]
CMD ["--log-format", "json", "/etc/restreamer/restreamer.yaml"]
