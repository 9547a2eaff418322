#!/usr/bin/env bash
# openai_sdk_test.sh: the official OpenAI Node SDK (npm openai, pinned below)
# against a real `embedd serve` on loopback: models.list(), models.retrieve() of an
# id, of an alias and of an unknown id, and embeddings.create() through an alias
# (scripts/openai_sdk_test.cjs, under node's test runner), and the Files and Batches
# API: files.create, batches.create, batches.retrieve until done, files.content,
# every vector equal to embeddings.create's (scripts/openai_batch_test.cjs). The SDK is installed
# once into .cache/openai-node/VERSION from the npm registry.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/lib/serve.sh"
openai_version=5.12.0
sdk="$root/.cache/openai-node/$openai_version"

if [ ! -f "$sdk/node_modules/openai/package.json" ]; then
  echo "openai_sdk_test: installing openai@$openai_version from npm into $sdk"
  mkdir -p "$sdk"
  npm install --prefix "$sdk" --no-audit --no-fund --ignore-scripts --silent "openai@$openai_version" >/dev/null
fi

tmp=$(mktemp -d)
embedd_cleanup_on_exit "$tmp"

(cd "$root" && go build -o "$tmp/" ./cmd/embedd)
model_dir=${EMBEDD_MODEL_DIR:-$root/.cache/models/minilm-l6-random}
cat >"$tmp/embedd.json" <<JSON
{"grpc_addr": "127.0.0.1:0", "http_addr": "127.0.0.1:0", "data_dir": "$tmp/data",
 "models": [{"id": "minilm-l6-random", "path": "$model_dir", "aliases": ["text-embedding-3-small"]}]}
JSON
embedd_start "$tmp/serve.log" "$tmp/embedd" serve --config "$tmp/embedd.json"
EMBEDD_OPENAI_BASE="http://$EMBEDD_HTTP/v1" NODE_PATH="$sdk/node_modules" node --test "$root/scripts/openai_sdk_test.cjs" "$root/scripts/openai_batch_test.cjs"
embedd_stop
