# One image for every control plane entry point (osm-controller, osm-injector, osm-bootstrap), the
# osm-healthcheck TCP-probe shim and the sidecar's iptables init container (which the injector runs as
# root with NET_ADMIN).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
ENTRYPOINT []
CMD ["osm-controller", "--help"]
