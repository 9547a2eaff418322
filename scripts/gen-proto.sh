#!/usr/bin/env bash
# gen-proto.sh: regenerate proto/embedd/v1/*.pb.go with pinned tool versions:
# buf 1.75.0 (npm @bufbuild/buf; it compiles edition 2023, which Debian's protoc
# cannot), protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.6.2 (Go module proxy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=$(pwd)/.cache/tools
if [ ! -x "$tools/node_modules/.bin/buf" ] || [ "$("$tools/node_modules/.bin/buf" --version)" != 1.75.0 ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund --prefix . @bufbuild/buf@1.75.0 >/dev/null)
fi
GOBIN=$tools/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$tools/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
cd proto
PATH=$tools/bin:$PATH "$tools/node_modules/.bin/buf" lint
PATH=$tools/bin:$PATH "$tools/node_modules/.bin/buf" generate
echo "generated: $(ls embedd/v1/*.go | tr '\n' ' ')"
