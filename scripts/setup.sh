#!/usr/bin/env bash
# setup.sh: everything embedd needs on a fresh Debian/Ubuntu machine, idempotent.
#
#   scripts/setup.sh          ONNX Runtime 1.29.0 (CPU) + the test model + Go modules
#
# Sources: apt (python3-onnx, python3-numpy, xz-utils, npm when missing), the npm
# registry (onnxruntime-node@1.29.0, whose linux/x64 libonnxruntime.so.1 we unpack;
# its own install script is never run) and the Go module proxy. Everything lands in
# .cache/ (git-ignored). Set ORT_LIB to use an ONNX Runtime you installed yourself.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
ort_version=1.29.0
ort_dir="$cache/ort/$ort_version"
ort_lib="$ort_dir/libonnxruntime.so.1"
# sha256 of bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.29.0.
ort_sha256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
model_dir="$cache/models/minilm-l6-random"

log() { printf 'setup: %s\n' "$*" >&2; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# 1. System packages (only what is missing; apt needs root).
need=()
/usr/bin/python3 -c 'import onnx, numpy' 2>/dev/null || need+=(python3-onnx python3-numpy)
command -v xz >/dev/null || need+=(xz-utils)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  log "installing ${need[*]} with apt"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. ONNX Runtime for linux/x64 from the npm package (checked by sha256).
if [ -n "${ORT_LIB:-}" ]; then
  log "ORT_LIB=$ORT_LIB set: not fetching ONNX Runtime"
elif sha_ok "$ort_lib" "$ort_sha256"; then
  log "ONNX Runtime $ort_version present at $ort_lib"
else
  log "fetching ONNX Runtime $ort_version from npm (onnxruntime-node@$ort_version)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-"$ort_version".tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  got=$(sha256sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)
  if [ "$got" != "$ort_sha256" ]; then
    log "ERROR: libonnxruntime.so.1 has sha256 $got, want $ort_sha256; not installing it"
    exit 1
  fi
  mkdir -p "$ort_dir"
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort_lib"
  log "ONNX Runtime $ort_version installed at $ort_lib"
fi

# 3. The test model: all-MiniLM-L6-v2's shape with random weights (deterministic).
if [ -f "$model_dir/model.onnx" ] && [ -f "$model_dir/.complete" ] &&
   [ "$(cat "$model_dir/.complete")" = "$(sha256sum "$root/scripts/gen_test_model.py" | cut -d' ' -f1)" ]; then
  log "test model present at $model_dir"
else
  log "generating the test model into $model_dir"
  rm -rf "$model_dir"
  /usr/bin/python3 "$root/scripts/gen_test_model.py" "$model_dir" >&2
  sha256sum "$root/scripts/gen_test_model.py" | cut -d' ' -f1 > "$model_dir/.complete"
fi

# 4. Go modules.
(cd "$root" && go mod download)
log "done"
