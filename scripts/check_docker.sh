#!/usr/bin/env bash
# check_docker.sh: checks Dockerfile, Dockerfile.cuda and .dockerignore where no Docker
# engine runs (the development machines and CI have none). Exit status 0 only when every
# check passes; each check prints one line.
#
#   scripts/check_docker.sh
#
#  1. Lint: buildkit's own Dockerfile parser and lint rules (the rules `docker build
#     --check` runs), from the Go module proxy at a pinned version, in a helper this
#     script writes and builds in .cache/check_docker/ (source at the end of this file);
#     a self-test first shows that the rules fire on a known-bad Dockerfile. hadolint is
#     used too when installed (neither Debian nor the Go module proxy has it).
#  2. Pins: the ONNX Runtime versions and sha256 values in both Dockerfiles equal
#     scripts/setup.sh's, and ORT's version equals models.ORTVersion.
#  3. The build context (.dockerignore applied by Docker's own matcher) leaves out
#     .cache, .git, .gpu, embedd-data, bin and test binaries.
#  4. Each Dockerfile's build, emulated here: every COPY source must be in the build
#     context or made by an earlier stage; the Go build stage and the ONNX Runtime
#     stage run their RUN commands as written (sh, the stage's ARGs, absolute paths
#     moved under a temporary root), so `go build` with the image's flags and the npm
#     fetch with its `sha256sum -c` really run; the last stage's COPYs assemble the
#     image's files. Base images are not pulled and the last stage's RUN (apt-get,
#     useradd) only passes `sh -n`.
#  5. The CPU image's files, run with the image's ENV, ENTRYPOINT and CMD (addresses
#     moved to free loopback ports, the data folder to a temporary one, /models/... to
#     the test model of scripts/setup.sh): `embedd --help`, `embedd config check` of
#     the image's default config, `serve` reaching SERVING (embedctl health), the
#     image's HEALTHCHECK command, an Embed call, /readyz, then SIGTERM and exit 0.
#  6. The CUDA image's files: the three libraries in one folder on LD_LIBRARY_PATH,
#     the default config (device cuda) valid, ldd missing only CUDA's own libraries
#     (which the nvidia/cuda base image and the driver bring), ONNX Runtime finding the
#     CUDA provider next to its core (without a GPU it then stops at the missing CUDA
#     libraries, as it must), and "device": "auto" falling back to the CPU.
#
# It takes a minute or two (a Go build, ~300 MB of npm packages from npm's cache or
# the registry); for timings, run it as `flock /tmp/embedd-bench.lock scripts/check_docker.sh`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
buildkit_version=v0.33.1 # v0.34.x needs a tonistiigi/fsutil version the Go module proxy here does not serve
tool_dir="$root/.cache/check_docker"
tool="$tool_dir/dockercheck"
test_model="$root/.cache/models/minilm-l6-random"
image_model=/models/all-MiniLM-L6-v2 # the model path in the images' default configs

passed=0
failed=0
server_pid=""
work=$(mktemp -d)
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

section() { printf '== %s\n' "$*"; }
ok() {
  passed=$((passed + 1))
  printf '   ok    %s\n' "$*"
}
bad() {
  failed=$((failed + 1))
  printf '   FAIL  %s\n' "$*"
}
note() { printf '   note  %s\n' "$*"; }
# check DESCRIPTION COMMAND...: runs the command, its output into a log; on failure
# shows the log's last lines.
check() {
  local what=$1 log
  shift
  log=$(mktemp -p "$work")
  if "$@" >"$log" 2>&1; then
    ok "$what"
  else
    bad "$what (exit status $?)"
    tail -n 25 "$log" | sed 's/^/         | /'
  fi
}

# value_of FILE NAME: the value of NAME=... (a shell variable or a Dockerfile ARG) in FILE.
value_of() {
  sed -n -E "s/^(ARG )?$2=\"?([^\" #]*)\"?.*/\\2/p" "$1" | head -n 1
}

free_ports() {
  /usr/bin/python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

build_tool() {
  local src="$tool_dir/src" stamp
  stamp=$( (write_tool_source /dev/stdout; printf '%s\n' "$buildkit_version") | sha256sum | cut -d' ' -f1)
  if [ -x "$tool" ] && [ "$(cat "$tool_dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  rm -rf "$src"
  mkdir -p "$src"
  write_tool_source "$src/main.go"
  cat >"$src/go.mod" <<EOF
module dockercheck

go 1.26

require (
	github.com/moby/buildkit $buildkit_version
	github.com/moby/patternmatcher v0.6.1
	github.com/opencontainers/go-digest v1.0.0
)
EOF
  (cd "$src" && go mod tidy && go build -o "$tool" .) || return 1
  printf '%s\n' "$stamp" >"$tool_dir/.stamp"
}

# image_env OUT IMG: the image's ENV (OUT/image.env) as NAME=VALUE words, with the
# paths in ORT_LIB and LD_LIBRARY_PATH moved under IMG, the addresses on free loopback
# ports and the data folder in $work.
image_env() {
  local out=$1 img=$2 name value entry moved
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    name=${line%%=*}
    value=$(eval "printf '%s' ${line#*=}")
    case $name in
      ORT_LIB) value="$img$value" ;;
      LD_LIBRARY_PATH)
        moved=""
        IFS=: read -ra entries <<<"$value"
        for entry in "${entries[@]}"; do moved="${moved:+$moved:}$img$entry"; done
        value=$moved
        ;;
      EMBEDD_GRPC_ADDR) value="127.0.0.1:$grpc_port" ;;
      EMBEDD_HTTP_ADDR) value="127.0.0.1:$http_port" ;;
      EMBEDD_DATA_DIR) value="$work/data-$(basename "$out")" ;;
    esac
    printf '%s=%s\n' "$name" "$value"
  done <"$out/image.env"
}

# env_value OUT NAME: NAME's value in the image's ENV, as written in the Dockerfile.
env_value() {
  local line
  line=$(grep -E "^$2=" "$1/image.env" | tail -n 1) || return 1
  eval "printf '%s' ${line#*=}"
}

# local_config OUT DEST: the image's default config with the test model in place of
# the model mounted at /models.
local_config() {
  sed "s#\"$image_model\"#\"$test_model\"#" "$1/image/etc/embedd/embedd.json" >"$2"
  grep -q "$test_model" "$2"
}

lint_both() {
  for f in Dockerfile Dockerfile.cuda; do
    check "$f: buildkit $buildkit_version parser and lint rules, no findings" "$tool" lint "$f"
  done
  if command -v hadolint >/dev/null; then
    # DL3008 (pin apt package versions): ca-certificates should follow security updates.
    check "hadolint $(hadolint --version 2>/dev/null | head -n 1)" hadolint --ignore DL3008 Dockerfile Dockerfile.cuda
  else
    note "hadolint: not installed, and neither Debian's archive nor the Go module proxy has it (a Haskell program); skipped, buildkit's rules stand in"
  fi
}

check_pins() {
  local ver sha cuda_npm cuda_ver cuda_sha shared_sha go_ver f name want got stray
  ver=$(value_of scripts/setup.sh ort_version)
  sha=$(value_of scripts/setup.sh ort_sha256)
  cuda_npm=$(value_of scripts/setup.sh ort_cuda_npm)
  cuda_ver=$(value_of scripts/setup.sh ort_cuda_npm_version)
  cuda_sha=$(value_of scripts/setup.sh ort_cuda_sha256)
  shared_sha=$(value_of scripts/setup.sh ort_shared_sha256)
  go_ver=$(sed -n -E 's/^const ORTVersion = "([^"]*)".*/\1/p' models/ortlib.go)
  if [ -n "$ver" ] && [ "$ver" = "$go_ver" ]; then
    ok "ONNX Runtime $ver: scripts/setup.sh equals models.ORTVersion"
  else
    bad "ONNX Runtime version: scripts/setup.sh says '$ver', models/ortlib.go '$go_ver'"
  fi
  for f in Dockerfile Dockerfile.cuda; do
    local pairs=("ORT_VERSION=$ver" "ORT_SHA256=$sha")
    if [ "$f" = Dockerfile.cuda ]; then
      pairs+=("ORT_CUDA_NPM=$cuda_npm" "ORT_CUDA_NPM_VERSION=$cuda_ver" "ORT_CUDA_SHA256=$cuda_sha" "ORT_SHARED_SHA256=$shared_sha")
    fi
    local mismatches=()
    for p in "${pairs[@]}"; do
      name=${p%%=*}
      want=${p#*=}
      got=$(value_of "$f" "$name")
      if [ -z "$want" ] || [ "$got" != "$want" ]; then mismatches+=("$name: '$got', setup.sh '$want'"); fi
    done
    # Every sha256 in the file must be one of setup.sh's.
    stray=$(grep -oE '\b[0-9a-f]{64}\b' "$f" | grep -vxF -e "$sha" -e "$cuda_sha" -e "$shared_sha" || true)
    [ -z "$stray" ] || mismatches+=("sha256 not in setup.sh: $stray")
    if [ ${#mismatches[@]} -eq 0 ]; then
      ok "$f: ${#pairs[@]} pinned versions and sha256 values equal scripts/setup.sh's"
    else
      bad "$f: $(printf '%s; ' "${mismatches[@]}")"
    fi
  done
}

check_context() {
  local out=$1 leaked
  leaked=$(grep -E '^(\.cache|\.git|\.gpu|embedd-data|bin)(/|$)|\.(test|prof)$' "$out/context" || true)
  if [ -z "$leaked" ]; then
    ok "build context: $(wc -l <"$out/context") files; no .cache, .git, .gpu, embedd-data, bin or test binaries"
  else
    bad "build context holds what .dockerignore should leave out: $(echo "$leaked" | head -n 5 | tr '\n' ' ')"
  fi
}

# emulate FILE OUT: the emulated build (COPY sources, build and fetch stages).
emulate() {
  local log="$2.log"
  if "$tool" emulate "$root" "$2" "$1" >"$log" 2>&1; then
    ok "$1: emulated build: every COPY source present, go build and the ONNX Runtime fetch (sha256 -c) ran; $(grep -c '^  COPY' "$log") COPYs, $(grep -c '^  RUN' "$log") RUNs"
    sed -n -E 's/^(  (COPY|RUN).*)/         \1/p; s/^(stage .*)/         \1/p; s/^(.*: OK)$/           \1/p' "$log"
    return 0
  fi
  bad "$1: emulated build"
  tail -n 30 "$log" | sed 's/^/         | /'
  return 1
}

# image_basics FILE OUT: what both images must have.
image_basics() {
  local f=$1 out=$2 img=$2/image problems=() ort_lib
  ort_lib=$(env_value "$out" ORT_LIB || true)
  [ "$ort_lib" = /usr/local/lib/embedd/libonnxruntime.so.1 ] || problems+=("ORT_LIB is '$ort_lib'")
  [ -f "$img$ort_lib" ] || problems+=("no file at ORT_LIB $ort_lib")
  for b in embedd embedctl; do [ -x "$img/usr/local/bin/$b" ] || problems+=("no /usr/local/bin/$b"); done
  [ -f "$img/etc/embedd/embedd.json" ] || problems+=("no /etc/embedd/embedd.json")
  [ "$(env_value "$out" EMBEDD_GRPC_ADDR || true)" = 0.0.0.0:50051 ] || problems+=("EMBEDD_GRPC_ADDR is not 0.0.0.0:50051")
  [ "$(env_value "$out" EMBEDD_HTTP_ADDR || true)" = 0.0.0.0:8080 ] || problems+=("EMBEDD_HTTP_ADDR is not 0.0.0.0:8080")
  [ "$(env_value "$out" EMBEDD_DATA_DIR || true)" = /data ] || problems+=("EMBEDD_DATA_DIR is not /data")
  grep -qx 'expose 50051 8080' "$out/settings" || problems+=("EXPOSE is not 50051 8080")
  grep -qx 'volume /data' "$out/settings" || problems+=("VOLUME is not /data")
  local user
  user=$(sed -n 's/^user //p' "$out/settings" | tail -n 1)
  case ${user%%:*} in "" | 0 | root) problems+=("runs as root (USER '$user')") ;; esac
  [ "$(tr '\n' ' ' <"$out/argv")" = "embedd serve --config /etc/embedd/embedd.json " ] ||
    problems+=("ENTRYPOINT+CMD is '$(tr '\n' ' ' <"$out/argv")'")
  if [ ${#problems[@]} -eq 0 ]; then
    ok "$f: image files and settings: binaries in /usr/local/bin, $ort_lib, default config, ENV, EXPOSE 50051 8080, VOLUME /data, USER $user, ENTRYPOINT+CMD"
  else
    bad "$f: $(printf '%s; ' "${problems[@]}")"
  fi
  local cfg
  cfg="$work/$(basename "$out")-config.json"
  if local_config "$out" "$cfg"; then
    check "$f: its default config passes \`embedd config check\` (model $image_model → the test model)" \
      "$img/usr/local/bin/embedd" config check "$cfg"
  else
    bad "$f: its default config does not name $image_model"
  fi
}

serve_cpu_image() {
  local out=$1 img=$1/image cfg="$work/cpu-config.json" log="$work/serve.log" status
  local -a env_words argv
  mapfile -t env_words < <(image_env "$out" "$img")
  mapfile -t argv <"$out/argv"
  check "Dockerfile: \`embedd --help\` exits 0" "$img/usr/local/bin/embedd" --help
  # ENTRYPOINT+CMD as the image runs them: embedd from /usr/local/bin, the config
  # (with the test model) in place of /etc/embedd/embedd.json.
  argv[0]="$img/usr/local/bin/${argv[0]}"
  for i in "${!argv[@]}"; do [ "${argv[$i]}" != /etc/embedd/embedd.json ] || argv[i]=$cfg; done
  env "${env_words[@]}" "${argv[@]}" >"$log" 2>&1 &
  server_pid=$!
  status=""
  for _ in $(seq 1 240); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if status=$("$img/usr/local/bin/embedctl" --addr "127.0.0.1:$grpc_port" --timeout 2s health 2>/dev/null) &&
      [ "$status" = SERVING ]; then break; fi
    sleep 0.25
  done
  if [ "$status" != SERVING ]; then
    bad "Dockerfile: \`${argv[*]}\` with the image's ENV did not reach SERVING"
    tail -n 20 "$log" | sed 's/^/         | /'
    return
  fi
  ok "Dockerfile: ENTRYPOINT+CMD with the image's ENV and ORT_LIB serves; embedctl health: SERVING"
  check "Dockerfile: the HEALTHCHECK command exits 0 (EMBEDD_GRPC_ADDR=0.0.0.0:$grpc_port)" \
    env PATH="$img/usr/local/bin:$PATH" EMBEDD_GRPC_ADDR="0.0.0.0:$grpc_port" sh -c "$(cat "$out/healthcheck")"
  check "Dockerfile: an Embed call through the image's ONNX Runtime" \
    "$img/usr/local/bin/embedctl" --addr "127.0.0.1:$grpc_port" embed "Docker, checked without Docker"
  check "Dockerfile: HTTP /readyz answers 200 on the image's HTTP address" /usr/bin/python3 -c \
    "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$http_port/readyz', timeout=5).status == 200 else 1)"
  kill -TERM "$server_pid"
  local waited=0
  while kill -0 "$server_pid" 2>/dev/null && [ $waited -lt 160 ]; do
    sleep 0.25
    waited=$((waited + 1))
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    bad "Dockerfile: serve still running 40s after SIGTERM"
    return
  fi
  if wait "$server_pid"; then status=0; else status=$?; fi
  server_pid=""
  if [ "$status" -eq 0 ]; then
    ok "Dockerfile: SIGTERM (what docker stop sends): serve drained and exited 0"
  else
    bad "Dockerfile: serve exited $status after SIGTERM"
    tail -n 20 "$log" | sed 's/^/         | /'
  fi
}

cuda_image() {
  local out=$1 img=$1/image lib ld cfg="$work/cuda-config.json" missing unexpected log="$work/cuda.log"
  local -a env_words
  local expected_missing="libcublasLt.so.13 libcublas.so.13 libcurand.so.10 libcudart.so.13 libcuda.so.1"
  lib=$(dirname "$(env_value "$out" ORT_LIB)")
  ld=$(env_value "$out" LD_LIBRARY_PATH || true)
  local problems=()
  for f in libonnxruntime.so.1 libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
    [ -f "$img$lib/$f" ] || problems+=("no $lib/$f")
  done
  case ":$ld:" in *":$lib:"*) ;; *) problems+=("LD_LIBRARY_PATH '$ld' lacks $lib") ;; esac
  case ":$ld:" in *":/usr/local/cuda/lib64:"*) ;; *) problems+=("LD_LIBRARY_PATH '$ld' lacks /usr/local/cuda/lib64") ;; esac
  grep -q '"device": "cuda"' "$img/etc/embedd/embedd.json" || problems+=('the default config has no "device": "cuda"')
  if [ ${#problems[@]} -eq 0 ]; then
    ok "Dockerfile.cuda: the ONNX Runtime core and both CUDA provider libraries in $lib, on LD_LIBRARY_PATH with /usr/local/cuda/lib64; default config on \"cuda\""
  else
    bad "Dockerfile.cuda: $(printf '%s; ' "${problems[@]}")"
  fi
  mapfile -t env_words < <(image_env "$out" "$img")
  missing=$(env "${env_words[@]}" ldd "$img$lib/libonnxruntime_providers_cuda.so" | awk '/not found/ {print $1}' | sort | tr '\n' ' ')
  unexpected=""
  for m in $missing; do
    case " $expected_missing " in *" $m "*) ;; *) unexpected="$unexpected $m" ;; esac
  done
  if [ -z "$unexpected" ]; then
    ok "Dockerfile.cuda: ldd of the CUDA provider misses only CUDA's own libraries (${missing:-none}), which the nvidia/cuda base image and the driver bring"
  else
    bad "Dockerfile.cuda: the CUDA provider needs libraries neither the image nor CUDA brings:$unexpected"
  fi
  local_config "$out" "$cfg"
  if env "${env_words[@]}" "$img/usr/local/bin/embedd" embed --config "$cfg" "hello" >"$log" 2>&1; then
    ok "Dockerfile.cuda: embedd embed ran on \"device\": \"cuda\" with the image's libraries (this machine has CUDA)"
  elif grep -q "$img$lib/libonnxruntime_providers_cuda.so" "$log" && grep -qE 'lib(cublas|cublasLt|cudart|curand|cuda|cudnn)[^ ]*\.so[.0-9]*: cannot open' "$log"; then
    ok "Dockerfile.cuda: ONNX Runtime loads the CUDA provider from next to its core and stops only at CUDA's missing libraries (no CUDA here): $(grep -oE 'lib[a-zA-Z]+\.so[.0-9]*: cannot open shared object file' "$log" | head -n 1)"
  else
    bad "Dockerfile.cuda: embedd embed on \"cuda\" failed for another reason than missing CUDA libraries"
    tail -n 10 "$log" | sed 's/^/         | /'
  fi
  sed -i 's/"device": "cuda"/"device": "auto"/' "$cfg"
  check "Dockerfile.cuda: with \"device\": \"auto\" the image's files embed (on the CPU where CUDA is missing)" \
    env "${env_words[@]}" "$img/usr/local/bin/embedd" embed --config "$cfg" "hello"
}

main() {
  echo "check_docker: Dockerfile, Dockerfile.cuda and .dockerignore, checked without a Docker engine"
  section "set-up (scripts/setup.sh: ONNX Runtime, the test model) and the checker"
  check "scripts/setup.sh" scripts/setup.sh
  check "dockercheck built (buildkit $buildkit_version, Go module proxy) in .cache/check_docker" build_tool
  if [ ! -x "$tool" ]; then
    echo "check_docker: $passed passed, $failed failed"
    exit 1
  fi
  check "lint self-test: buildkit's rules flag a known-bad Dockerfile" "$tool" selftest

  section "lint"
  lint_both

  section "pinned versions and sha256 (Dockerfiles vs scripts/setup.sh)"
  check_pins

  read -r grpc_port http_port < <(free_ports)

  section "Dockerfile (CPU): emulated build"
  if emulate Dockerfile "$work/cpu"; then
    check_context "$work/cpu"
    section "Dockerfile (CPU): the image's files, run"
    image_basics Dockerfile "$work/cpu"
    serve_cpu_image "$work/cpu"
  fi
  rm -rf "$work/cpu/stages"

  section "Dockerfile.cuda: emulated build"
  if emulate Dockerfile.cuda "$work/cuda"; then
    section "Dockerfile.cuda: the image's files"
    image_basics Dockerfile.cuda "$work/cuda"
    cuda_image "$work/cuda"
  fi

  section "not checked here"
  note "no image was built and no base image pulled: $(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile Dockerfile.cuda | sort -u | tr '\n' ' ')"
  note "the last stages' RUN (apt-get, groupadd, useradd, chown) only passed sh -n; USER, VOLUME and file ownership are not exercised"
  note "the CUDA image on a GPU (docker run --gpus all) is not run"
  echo "check_docker: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# write_tool_source FILE: the Go source of dockercheck (a checker for this script,
# not part of embedd; it is built in .cache/check_docker/ against buildkit's parser).
write_tool_source() {
  cat >"$1" <<'GO'
// dockercheck checks a Dockerfile where no Docker engine runs; scripts/check_docker.sh
// writes, builds and runs it (it is not part of embedd).
//
//	dockercheck lint FILE                      buildkit's lint rules (docker build --check)
//	dockercheck selftest                       the linter flags a known-bad Dockerfile
//	dockercheck emulate CONTEXT OUT FILE       run FILE's build here (see emulate)
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch {
	case os.Args[1] == "lint" && len(os.Args) == 3:
		err = lintCmd(os.Args[2])
	case os.Args[1] == "selftest" && len(os.Args) == 2:
		err = selftest()
	case os.Args[1] == "emulate" && len(os.Args) == 5:
		err = emulate(os.Args[2], os.Args[3], os.Args[4])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockercheck: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dockercheck lint FILE | selftest | emulate CONTEXT OUT FILE")
	os.Exit(2)
}

// offlineResolver answers buildkit's base-image look-ups without a registry:
// a linux/amd64 image with only PATH set. (Lint rules that need the real base
// image's config, such as its environment, see only that.)
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

// lint runs every buildkit lint rule (experimental ones too) over dt and
// returns the findings, one line each.
func lint(name string, dt []byte) ([]string, error) {
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		SourceMap:    &llb.SourceMap{Filename: name, Language: "Dockerfile", Data: dt, Definition: &llb.Definition{}},
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, fmt.Errorf("%s: %s", name, res.Error.Message)
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("%s:%d: %s: %s", name, line, w.RuleName, w.Detail))
	}
	return out, nil
}

func lintCmd(file string) error {
	dt, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ws, err := lint(file, dt)
	if err != nil {
		return err
	}
	for _, w := range ws {
		fmt.Println(w)
	}
	if len(ws) > 0 {
		return fmt.Errorf("%s: %d lint findings", file, len(ws))
	}
	return nil
}

// selftest makes sure the linter is live: a Dockerfile with known faults
// must be flagged for each of them.
func selftest() error {
	bad := "FROM debian:bookworm-slim as Base\nMAINTAINER someone\nENV A 1\nworkdir rel\nENV B=$NOT_DEFINED\nCMD echo hi\nCMD echo again\n"
	ws, err := lint("selftest.Dockerfile", []byte(bad))
	if err != nil {
		return err
	}
	all := strings.Join(ws, "\n")
	var missing []string
	for _, rule := range []string{"FromAsCasing", "StageNameCasing", "MaintainerDeprecated", "LegacyKeyValueFormat",
		"WorkdirRelativePath", "JSONArgsRecommended", "MultipleInstructionsDisallowed", "ConsistentInstructionCasing",
		"UndefinedVar"} {
		if !strings.Contains(all, ": "+rule+": ") {
			missing = append(missing, rule)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the linter missed %v on a known-bad Dockerfile; it said:\n%s", missing, all)
	}
	fmt.Printf("the linter flags a known-bad Dockerfile (%d findings, the 9 rules expected)\n", len(ws))
	return nil
}

// ---- emulation --------------------------------------------------------------

// emulate runs FILE's build on this machine, as far as that can be done
// without an engine: the build context is CONTEXT less .dockerignore; every
// stage but the last runs for real (COPY into OUT/stages/NAME, which stands for
// the stage's root, and RUN under sh with the stage's ARG and ENV values, its
// absolute paths moved under that root); the last stage's COPY instructions
// assemble OUT/image, its RUN instructions are only syntax-checked (they need
// the base image), and its settings go to OUT/image.env (ENV), OUT/argv
// (ENTRYPOINT and CMD, one per line), OUT/healthcheck (the HEALTHCHECK shell
// command) and OUT/settings. OUT/context lists the build context.
func emulate(contextDir, out, file string) error {
	dt, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return err
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return err
	}
	ctxFiles, err := buildContext(contextDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "context"), []byte(strings.Join(ctxFiles, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Printf("build context: %d files (after .dockerignore)\n", len(ctxFiles))

	e := &emulator{contextDir: contextDir, ctxFiles: ctxFiles, roots: map[string]string{}}
	for i, st := range stages {
		name := st.Name
		if name == "" {
			name = fmt.Sprint(i)
		}
		final := i == len(stages)-1
		root := filepath.Join(out, "stages", name)
		if final {
			root = filepath.Join(out, "image")
		}
		fmt.Printf("stage %q FROM %s (base image not pulled)\n", name, st.BaseName)
		if slices.ContainsFunc(stages[:i], func(s instructions.Stage) bool { return s.Name == st.BaseName && s.Name != "" }) {
			return fmt.Errorf("stage %q builds on stage %q: not emulated", name, st.BaseName)
		}
		if err := e.stage(st, stages[i+1:], root, final, out); err != nil {
			return fmt.Errorf("stage %q: %w", name, err)
		}
		e.roots[name] = root
		e.roots[fmt.Sprint(i)] = root
	}
	return nil
}

type emulator struct {
	contextDir string
	ctxFiles   []string
	roots      map[string]string // stage name or index → its emulated root
}

// buildContext lists the files Docker would send: every file under dir not
// excluded by dir/.dockerignore (Docker's own pattern matcher), slash-separated.
func buildContext(dir string) ([]string, error) {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	var files []string
	parents := map[string]patternmatcher.MatchInfo{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		excluded, info, err := pm.MatchesUsingParentResults(rel, parents[path.Dir(rel)])
		if err != nil {
			return err
		}
		if d.IsDir() {
			if excluded && !pm.Exclusions() {
				return filepath.SkipDir
			}
			parents[rel] = info
			return nil
		}
		if !excluded {
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

func (e *emulator) stage(st instructions.Stage, later []instructions.Stage, root string, final bool, out string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	env := os.Environ()
	workdir := "/"
	// The stage's absolute paths that RUN commands may name: its WORKDIR and
	// COPY destinations, and what later stages copy out of it.
	var pathRoots []string
	addRoot := func(p string) {
		if strings.HasPrefix(p, "/") && p != "/" {
			top := "/" + strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)[0]
			if !slices.Contains(pathRoots, top) {
				pathRoots = append(pathRoots, top)
			}
		}
	}
	for _, c := range st.Commands {
		switch c := c.(type) {
		case *instructions.WorkdirCommand:
			addRoot(c.Path)
		case *instructions.CopyCommand:
			addRoot(c.DestPath)
		}
	}
	for _, l := range later {
		for _, c := range l.Commands {
			if c, ok := c.(*instructions.CopyCommand); ok && c.From == st.Name && st.Name != "" {
				for _, s := range c.SourcePaths {
					addRoot(s)
				}
			}
		}
	}
	var imageEnv, entrypoint, cmdArgs, settings []string
	var health string
	for _, c := range st.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if a.Value == nil {
					return fmt.Errorf("ARG %s without a default: not emulated", a.Key)
				}
				if err := noVars("ARG "+a.Key, *a.Value); err != nil {
					return err
				}
				env = append(env, a.Key+"="+*a.Value)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if err := noVars("ENV "+kv.Key, kv.Value); err != nil {
					return err
				}
				env = append(env, kv.Key+"="+kv.Value)
				imageEnv = append(imageEnv, kv.Key+"="+shellQuote(kv.Value))
			}
		case *instructions.WorkdirCommand:
			if err := noVars("WORKDIR", c.Path); err != nil {
				return err
			}
			workdir = resolve(workdir, c.Path)
			if err := os.MkdirAll(filepath.Join(root, workdir), 0o755); err != nil {
				return err
			}
			settings = append(settings, "workdir "+workdir)
		case *instructions.CopyCommand:
			if err := e.copy(c, root, workdir); err != nil {
				return fmt.Errorf("%s: %w", c.String(), err)
			}
		case *instructions.RunCommand:
			if !c.PrependShell || len(c.CmdLine) != 1 || len(c.Files) > 0 {
				return fmt.Errorf("%s: only shell-form RUN without heredocs is emulated", c.String())
			}
			cmdline := c.CmdLine[0]
			if final {
				// Needs the base image (apt-get, useradd): check the syntax only.
				if b, err := exec.Command("sh", "-n", "-c", cmdline).CombinedOutput(); err != nil {
					return fmt.Errorf("RUN %s: sh -n: %v: %s", cmdline, err, b)
				}
				fmt.Printf("  RUN (not run: needs the base image; sh -n ok) %s\n", oneLine(cmdline))
				continue
			}
			moved := movePaths(cmdline, pathRoots, root)
			fmt.Printf("  RUN %s\n", oneLine(cmdline))
			if moved != cmdline {
				fmt.Printf("      as %s\n", oneLine(moved))
			}
			cmd := exec.Command("sh", "-ec", moved)
			cmd.Dir = filepath.Join(root, workdir)
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("RUN %s: %w", oneLine(cmdline), err)
			}
			fmt.Printf("      done in %.1fs\n", time.Since(start).Seconds())
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				return errors.New("ENTRYPOINT in shell form: signals would not reach embedd")
			}
			entrypoint = c.CmdLine
			settings = append(settings, "entrypoint "+strings.Join(c.CmdLine, " "))
		case *instructions.CmdCommand:
			if c.PrependShell {
				return errors.New("CMD in shell form: not emulated")
			}
			settings = append(settings, "cmd "+strings.Join(c.CmdLine, " "))
			cmdArgs = c.CmdLine
		case *instructions.HealthCheckCommand:
			t := c.Health.Test
			if len(t) != 2 || t[0] != "CMD-SHELL" {
				return fmt.Errorf("HEALTHCHECK %v: only the shell form is emulated", t)
			}
			health = t[1]
		case *instructions.UserCommand:
			settings = append(settings, "user "+c.User)
		case *instructions.ExposeCommand:
			settings = append(settings, "expose "+strings.Join(c.Ports, " "))
		case *instructions.VolumeCommand:
			settings = append(settings, "volume "+strings.Join(c.Volumes, " "))
		default:
			return fmt.Errorf("%s: not emulated", c.Name())
		}
	}
	if !final {
		return nil
	}
	files := map[string]string{
		"image.env":   strings.Join(imageEnv, "\n") + "\n",
		"argv":        strings.Join(append(slices.Clone(entrypoint), cmdArgs...), "\n") + "\n",
		"healthcheck": health + "\n",
		"settings":    strings.Join(settings, "\n") + "\n",
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(out, n), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func noVars(what, v string) error {
	if strings.Contains(v, "$") {
		return fmt.Errorf("%s=%q: variable expansion is not emulated", what, v)
	}
	return nil
}

func resolve(cwd, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(cwd, p)
}

// movePaths puts root in front of each absolute path in cmd that starts with
// one of tops (as a whole word: after a space, quote, = or : or at the start).
func movePaths(cmd string, tops []string, root string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); {
		matched := false
		if i == 0 || strings.ContainsRune(" \t\n'\"=:", rune(cmd[i-1])) {
			for _, t := range tops {
				if strings.HasPrefix(cmd[i:], t) {
					j := i + len(t)
					if j == len(cmd) || strings.ContainsRune("/ \t\n'\";&|)", rune(cmd[j])) {
						b.WriteString(root)
						b.WriteString(t)
						i = j
						matched = true
						break
					}
				}
			}
		}
		if !matched {
			b.WriteByte(cmd[i])
			i++
		}
	}
	return b.String()
}

func (e *emulator) copy(c *instructions.CopyCommand, root, workdir string) error {
	if len(c.ExcludePatterns) > 0 || c.Parents {
		return errors.New("--exclude and --parents are not emulated")
	}
	if err := noVars("COPY", c.DestPath+strings.Join(c.SourcePaths, " ")); err != nil {
		return err
	}
	dest := filepath.Join(root, resolve(workdir, c.DestPath))
	destIsDir := strings.HasSuffix(c.DestPath, "/") || c.DestPath == "." || len(c.SourcePaths)+len(c.SourceContents) > 1
	// Heredoc sources: the file's content is in the Dockerfile.
	for _, sc := range c.SourceContents {
		if sc.Expand && strings.Contains(sc.Data, "$") {
			return fmt.Errorf("heredoc %s: variable expansion is not emulated", sc.Path)
		}
		to := dest
		if destIsDir {
			to = filepath.Join(dest, sc.Path)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, []byte(sc.Data), 0o644); err != nil {
			return err
		}
		fmt.Printf("  COPY heredoc → %s\n", resolve(workdir, c.DestPath))
	}
	for _, src := range c.SourcePaths {
		var n int
		var err error
		if c.From != "" {
			from, ok := e.roots[c.From]
			if !ok {
				return fmt.Errorf("--from=%s: no earlier stage has that name (images are not emulated)", c.From)
			}
			n, err = copyTree(filepath.Join(from, path.Clean("/"+src)), dest, destIsDir)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: stage %q does not produce it", src, c.From)
			}
		} else {
			n, err = e.copyFromContext(src, dest, destIsDir)
		}
		if err != nil {
			return err
		}
		from := "context"
		if c.From != "" {
			from = "stage " + c.From
		}
		fmt.Printf("  COPY %s (%s, %d files) → %s\n", src, from, n, resolve(workdir, c.DestPath))
	}
	return nil
}

// copyFromContext copies src (a file, folder or glob in the build context) to dest.
func (e *emulator) copyFromContext(src, dest string, destIsDir bool) (int, error) {
	s := strings.TrimPrefix(path.Clean("/"+src), "/")
	n := 0
	for _, f := range e.ctxFiles {
		var rel string
		switch {
		case s == "":
			rel = f // "." : everything
		case f == s:
			rel = path.Base(f)
		case strings.HasPrefix(f, s+"/"):
			rel = strings.TrimPrefix(f, s+"/")
		default:
			if ok, _ := path.Match(s, f); ok {
				rel = path.Base(f)
			} else {
				continue
			}
		}
		to := filepath.Join(dest, filepath.FromSlash(rel))
		if f == s && !destIsDir {
			to = dest
		}
		if err := copyFile(filepath.Join(e.contextDir, filepath.FromSlash(f)), to); err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: not in the build context (missing, or excluded by .dockerignore)", src)
	}
	return n, nil
}

func copyTree(src, dest string, destIsDir bool) (int, error) {
	st, err := os.Stat(src)
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		to := dest
		if destIsDir {
			to = filepath.Join(dest, filepath.Base(src))
		}
		return 1, copyFile(src, to)
	}
	n := 0
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		n++
		return copyFile(p, filepath.Join(dest, rel))
	})
	return n, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
GO
}

main "$@"
