#!/usr/bin/env bash
# install_parquet_reader.sh: installs the independent Parquet reader the
# jobs package's read-back test runs (hyparquet, pinned in
# jobs/testdata/readparquet/package-lock.json) into .cache/readparquet, with
# npm ci from the npm registry. Needs node and npm (scripts/setup.sh
# installs npm, and with it node, from apt). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=jobs/testdata/readparquet
dst=.cache/readparquet
mkdir -p "$dst"
cp "$src/package.json" "$src/package-lock.json" "$src/read.mjs" "$dst/"
if ! cmp -s "$src/package-lock.json" "$dst/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$dst/node_modules/.package-lock.json.installed"
fi
