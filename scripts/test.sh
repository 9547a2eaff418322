#!/usr/bin/env bash
# test.sh: every check CI runs, from a fresh clone: set-up, formatting, vet,
# staticcheck, the tests (with the race detector where it is cheap) and a
# short fuzz run of the tokenizer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
scripts/install_parquet_reader.sh # hyparquet, the jobs tests' independent Parquet reader
export EMBEDD_REQUIRE_ORT=1 # a missing fixture fails the tests instead of skipping them
export EMBEDD_REQUIRE_NODE=1 # and so does a missing Parquet reader

echo "== test-model generator"
scripts/test_gen_test_model.sh
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  printf 'gofmt would change:\n%s\n' "$unformatted"
  exit 1
fi
echo "== go vet"
go vet ./...
GOARCH=arm64 go vet ./gpu/ ./index/gpusearch/ # the GPU bindings build for linux/arm64 (Grace Hopper)
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== go test"
go test -count=1 ./...
echo "== the README on a fresh clone (scripts/walkthrough.sh)"
scripts/walkthrough.sh
echo "== the official OpenAI Node SDK against the server (scripts/openai_sdk_test.sh)"
scripts/openai_sdk_test.sh
echo "== go test -race (the packages whose own goroutines and locks matter most)"
go test -count=1 -race ./models/tokenizer/ ./core/... ./jobs/ ./batches/ ./server/ratelimit/ ./client/ ./index/... ./gpu/
echo "== fuzz (tokenizer: Encode 15s, WordPiece 10s)"
go test -run='^$' -fuzz='^FuzzEncode$' -fuzztime=15s ./models/tokenizer/
go test -run='^$' -fuzz='^FuzzWordPiece$' -fuzztime=10s ./models/tokenizer/
