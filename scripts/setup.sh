#!/usr/bin/env bash
# setup.sh: everything embedd needs on a fresh Debian/Ubuntu machine, idempotent.
#
#   scripts/setup.sh          ONNX Runtime 1.29.0 (CPU) + the test model + Go modules
#                             + the default static model (trained here)
#   scripts/setup.sh --gpu    the same, plus ONNX Runtime's CUDA 13 execution provider
#
# Sources: apt (python3-onnx, python3-numpy, xz-utils, npm when missing; for the
# static model the packages scripts/train_static.py --packages lists), the npm
# registry (onnxruntime-node@1.29.0, whose linux/x64 libonnxruntime.so.1 we unpack;
# with --gpu also com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, whose CUDA
# provider libraries we unpack; no package's install script is ever run) and the Go
# module proxy. Everything lands in .cache/ (git-ignored). Set ORT_LIB to use an
# ONNX Runtime you installed yourself. Dockerfile and Dockerfile.cuda fetch the same
# files and pin the same sha256 values (scripts/check_docker.sh compares them).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/setup.sh [--gpu] [--help]

Prepares this checkout for embedd (idempotent; uses only apt, npm and the Go module proxy):
  - python3-onnx, python3-numpy, xz-utils, npm from apt when missing
  - ONNX Runtime 1.29.0 for linux/x64 (CPU) into .cache/ort/1.29.0/libonnxruntime.so.1,
    from the npm package onnxruntime-node@1.29.0, sha256-checked
  - the test model into .cache/models/minilm-l6-random/
  - the default model, a static embedding model trained here from documentation
    Debian ships (scripts/train_static.py, 2 to 6 minutes), into .cache/models/static-en/
  - the Go modules
  - bin/embedd and bin/embedctl, built from this checkout (put bin/ on PATH:
    export PATH="$PWD/bin:$PATH")

options:
  --gpu    also fetch ONNX Runtime's CUDA 13 execution provider
           (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so) from the
           npm package com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, sha256-checked, into
           the same folder as libonnxruntime.so.1 (~180 MB download, once). Running it needs
           an NVIDIA driver, CUDA 13 (cudart, cuBLAS, cuRAND) and cuDNN 9 on LD_LIBRARY_PATH.
  --help   show this text

environment:
  ORT_LIB  path of an ONNX Runtime library you installed yourself: nothing is fetched
           for ONNX Runtime (with --gpu, put the CUDA provider next to it yourself)
USAGE
}

gpu=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'setup: unknown argument %q\n\n' "$arg" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
ort_version=1.29.0
ort_dir="$cache/ort/$ort_version"
ort_lib="$ort_dir/libonnxruntime.so.1"
# sha256 of bin/napi-v6/linux/x64/libonnxruntime.so.1 in onnxruntime-node@1.29.0.
ort_sha256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
# --gpu: ONNX Runtime's CUDA 13 execution provider for the same 1.29.0 core, from
# Plugins/Linux/x64/ in the npm package below (its own core library is CPU-only, so
# the core stays onnxruntime-node's). ONNX Runtime loads provider libraries from the
# folder that holds libonnxruntime.so.1, so they go into $ort_dir too.
ort_cuda_npm=com.github.asus4.onnxruntime.linux-x64-gpu
ort_cuda_npm_version=0.4.9
ort_cuda_lib="$ort_dir/libonnxruntime_providers_cuda.so"     # 229,780,440 bytes
ort_cuda_sha256=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
ort_shared_lib="$ort_dir/libonnxruntime_providers_shared.so" # 14,632 bytes
ort_shared_sha256=c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772
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

# 2b. With --gpu: the CUDA execution provider next to the core (checked by sha256).
if [ "$gpu" -eq 1 ]; then
  if [ -n "${ORT_LIB:-}" ]; then
    log "ORT_LIB=$ORT_LIB set: not fetching the CUDA provider; put libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so of the same ONNX Runtime version next to it"
  elif sha_ok "$ort_cuda_lib" "$ort_cuda_sha256" && sha_ok "$ort_shared_lib" "$ort_shared_sha256"; then
    log "ONNX Runtime $ort_version CUDA provider present in $ort_dir"
  else
    log "fetching ONNX Runtime's CUDA provider from npm ($ort_cuda_npm@$ort_cuda_npm_version, ~180 MB)"
    gpu_tmp=$(mktemp -d)
    trap 'rm -rf "${tmp:-}" "$gpu_tmp"' EXIT
    (cd "$gpu_tmp" && npm pack --silent "$ort_cuda_npm@$ort_cuda_npm_version" >/dev/null)
    plugins=package/Plugins/Linux/x64
    tar -xzf "$gpu_tmp/$ort_cuda_npm-$ort_cuda_npm_version.tgz" -C "$gpu_tmp" \
      "$plugins/libonnxruntime_providers_cuda.so" "$plugins/libonnxruntime_providers_shared.so"
    for pair in "libonnxruntime_providers_cuda.so $ort_cuda_sha256" "libonnxruntime_providers_shared.so $ort_shared_sha256"; do
      read -r name want <<<"$pair"
      got=$(sha256sum "$gpu_tmp/$plugins/$name" | cut -d' ' -f1)
      if [ "$got" != "$want" ]; then
        log "ERROR: $name from $ort_cuda_npm@$ort_cuda_npm_version has sha256 $got, want $want; not installing it"
        exit 1
      fi
    done
    mkdir -p "$ort_dir"
    for name in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
      # Copy under a temporary name in the target folder, then rename: a reader
      # never sees half a library, and an interrupted run leaves no file whose
      # name claims it is complete.
      cp "$gpu_tmp/$plugins/$name" "$ort_dir/.$name.partial"
      mv -f "$ort_dir/.$name.partial" "$ort_dir/$name"
    done
    rm -rf "$gpu_tmp"
    log "ONNX Runtime $ort_version CUDA provider installed in $ort_dir"
  fi
  [ -n "${ORT_LIB:-}" ] ||
    log "to use it: a model with \"device\": \"cuda\" (or \"auto\"), and LD_LIBRARY_PATH with CUDA 13 and cuDNN 9 (e.g. /usr/local/cuda/lib64)"
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

# 4b. The default model: a static embedding model trained here from the
# documentation Debian ships (scripts/train_static.py; its NOTICE lists each
# source's licence). Deterministic: the sha256 below is what it gives on
# Debian 12 with its packages; another system may differ in the last bits
# (a warning, not an error). 2 minutes on 2 idle cores, 6 on busy ones.
static_dir="$cache/models/static-en"
static_sha256=622f967f83495de9c87afe760ebd1f27ea8c038058a75fefb8e21f7646bc5195
static_stamp=$(cat "$root/scripts/train_static.py" "$root/scripts/wordpiece/main.go" | sha256sum | cut -d' ' -f1)
if [ -f "$static_dir/.complete" ] && [ "$(cat "$static_dir/.complete")" = "$static_stamp" ]; then
  log "static model present at $static_dir"
else
  missing=()
  for p in $(/usr/bin/python3 "$root/scripts/train_static.py" --packages); do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    log "installing ${missing[*]} with apt (the static model's tools and training text)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # nodejs-doc is Debian's and conflicts with a Node.js from another source
    # (nodesource's), which apt then removes: put Debian's Node.js and npm
    # back for what needs npm (the OpenAI SDK and Parquet reader tests).
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
      log "installing npm with apt (the training packages replaced Node.js)"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
    fi
  fi
  log "training the static model into $static_dir (2 to 6 minutes)"
  # Into a folder beside it, renamed over the old model only once complete:
  # a failed or interrupted training leaves the model that was there.
  rm -rf "$static_dir.new"
  if ! nice /usr/bin/python3 "$root/scripts/train_static.py" "$static_dir.new" --work "$cache/static-train" --check "$static_sha256"; then
    [ -f "$static_dir.new/0_StaticEmbedding/model.safetensors" ] || { rm -rf "$static_dir.new"; exit 1; }
    log "WARNING: the static model differs from the reference bytes (another system's numerics); keeping it"
  fi
  echo "$static_stamp" > "$static_dir.new/.complete"
  rm -rf "$static_dir"
  mv "$static_dir.new" "$static_dir"
fi

# 5. The binaries the README runs: a process of its own for SIGTERM to reach
# (go run would leave its child running).
(cd "$root" && go build -o bin/ ./cmd/embedd ./cmd/embedctl)
log "built bin/embedd and bin/embedctl (export PATH=\"$root/bin:\$PATH\" to call them by name)"
log "done"
