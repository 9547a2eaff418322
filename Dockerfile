# syntax=docker/dockerfile:1
# embedd on the CPU (linux/amd64: the ONNX Runtime library is x64).
#
#   docker build -t embedd .
#   docker run -p 50051:50051 -p 8080:8080 -v "$PWD/models:/models" -v embedd-data:/data embedd
#
# See README.md, "Docker". No Docker engine runs where embedd is built:
# scripts/check_docker.sh checks this file (sources, pinned hashes, the build
# and fetch steps run here) instead of building it.

# ---- the Go binaries ----------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/embedd ./cmd/embedd \
 && CGO_ENABLED=1 go build -trimpath -o /out/embedctl ./cmd/embedctl

# ---- ONNX Runtime 1.29.0 (CPU), fetched the way scripts/setup.sh does ---------
# npm pack only downloads the package; none of its scripts run. The version and
# sha256 equal scripts/setup.sh's (scripts/check_docker.sh compares them).
FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION=1.29.0
ARG ORT_SHA256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
WORKDIR /ort
RUN npm pack --silent "onnxruntime-node@${ORT_VERSION}" >/dev/null \
 && tar -xzf "onnxruntime-node-${ORT_VERSION}.tgz" --strip-components=5 \
      package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
 && echo "${ORT_SHA256}  libonnxruntime.so.1" | sha256sum -c - \
 && rm "onnxruntime-node-${ORT_VERSION}.tgz"

# ---- the image -----------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 embedd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin embedd \
 && mkdir -p /data /models \
 && chown embedd:embedd /data
COPY --from=build /out/embedd /out/embedctl /usr/local/bin/
COPY --from=ort /ort/libonnxruntime.so.1 /usr/local/lib/embedd/libonnxruntime.so.1
# The default config: one model, mounted at /models (see README.md, "Docker").
# Addresses and the data folder come from the EMBEDD_* variables below, which
# override a config file's.
COPY <<EOF /etc/embedd/embedd.json
{
  "default_model": "minilm",
  "models": [
    {"id": "minilm", "path": "/models/all-MiniLM-L6-v2",
     "aliases": ["text-embedding-3-small"], "device": "cpu"}
  ]
}
EOF
ENV ORT_LIB=/usr/local/lib/embedd/libonnxruntime.so.1 \
    EMBEDD_GRPC_ADDR=0.0.0.0:50051 \
    EMBEDD_HTTP_ADDR=0.0.0.0:8080 \
    EMBEDD_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
EXPOSE 50051 8080
VOLUME /data
# SERVING only once the models are loaded; the health service needs no API key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD embedctl --addr "127.0.0.1:${EMBEDD_GRPC_ADDR##*:}" --timeout 3s health || exit 1
ENTRYPOINT ["embedd"]
CMD ["serve", "--config", "/etc/embedd/embedd.json"]
