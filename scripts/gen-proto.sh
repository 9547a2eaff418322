#!/usr/bin/env bash
# gen-proto.sh: regenerate proto/embedd/v1/*.pb.go with pinned tool versions.
# protoc comes from Debian (protobuf-compiler); the Go plugins from the module proxy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v protoc >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get update -qq && $sudo apt-get install -y -qq protobuf-compiler >/dev/null; }
bin=$(pwd)/.cache/bin
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PATH=$bin:$PATH protoc -I proto \
  --go_out=proto --go_opt=paths=source_relative \
  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
  proto/embedd/v1/*.proto
echo "generated: $(ls proto/embedd/v1/*.go | tr '\n' ' ')"
