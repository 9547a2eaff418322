#!/usr/bin/env bash
# walkthrough.sh: the README as a newcomer follows it, on a fresh clone of this
# repository: its set-up command (scripts/setup.sh, then `bin/embedd serve` in the
# background), every command of "Using it", then SIGTERM to the server, which must
# exit 0, leave no process and free both ports. The commands are read from
# README.md itself, so the README cannot drift from what works. The clone reuses
# this checkout's .cache (ONNX Runtime and the test model), so the set-up is quick.
# The server listens on ports the system picks (EMBEDD_GRPC_ADDR, EMBEDD_HTTP_ADDR,
# documented in the README), and the examples are pointed at them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/lib/serve.sh"

tmp=$(mktemp -d)
embedd_cleanup_on_exit "$tmp"

# The README's code blocks: setup is the first command of "Set-up on a fresh
# machine", examples are the commands of "Using it" (continuation lines joined).
readme_block() {
  /usr/bin/python3 - "$root/README.md" "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("## ") and l[3:].startswith(sys.argv[2]))
cmds, cur, seen = [], "", False
for l in lines[start + 1:]:
    if l.startswith("#"):
        break
    if l.startswith("    "):
        seen = True
        part = l[4:].strip()
        if part.endswith("\\"):
            cur += part[:-1].rstrip() + " "
            continue
        cmds.append(cur + part)
        cur = ""
    elif seen and l.strip():
        break
print("\n".join(cmds))
PY
}
setup_cmd=$(readme_block "Set-up on a fresh machine" | head -1)
mapfile -t examples < <(readme_block "Using it")
case "$setup_cmd" in
  *" && "*) ;;
  *) echo "walkthrough: the README's set-up command is not 'SET-UP && SERVE': $setup_cmd" >&2; exit 1 ;;
esac
prepare=${setup_cmd% && *}
serve=${setup_cmd##* && }
[ ${#examples[@]} -gt 0 ] || { echo "walkthrough: no commands under 'Using it' in README.md" >&2; exit 1; }

echo "== walkthrough: a fresh clone in $tmp/embedd"
git clone -q "$root" "$tmp/embedd"
ln -s "$root/.cache" "$tmp/embedd/.cache"
cd "$tmp/embedd"

passed=0
echo "\$ $prepare"
bash -c "$prepare" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; echo "walkthrough: set-up failed" >&2; exit 1; }
passed=$((passed + 1))

echo "\$ $serve &"
export EMBEDD_GRPC_ADDR=127.0.0.1:0 EMBEDD_HTTP_ADDR=127.0.0.1:0
# shellcheck disable=SC2086 # the README's command, split as a shell would
embedd_start "$tmp/serve.log" $serve
unset EMBEDD_GRPC_ADDR EMBEDD_HTTP_ADDR
passed=$((passed + 1))
echo "   serving: gRPC $EMBEDD_GRPC, HTTP $EMBEDD_HTTP"

export PATH="$tmp/embedd/bin:$PATH" EMBEDD_ADDR="$EMBEDD_GRPC"
for cmd in "${examples[@]}"; do
  run=${cmd//localhost:8080/$EMBEDD_HTTP}
  run=${run//curl -s /curl -sS --fail-with-body }
  echo "\$ $cmd"
  if ! out=$(bash -o pipefail -c "$run" 2>&1); then
    head -c 2000 <<<"$out" >&2 # a here-string: head closing early cannot SIGPIPE a writer
    echo "walkthrough: the README command failed: $cmd" >&2
    exit 1
  fi
  if [ -z "$out" ]; then
    echo "walkthrough: the README command printed nothing: $cmd" >&2
    exit 1
  fi
  head -3 <<<"$out" | cut -c1-160 | sed 's/^/   /'
  passed=$((passed + 1))
done

echo "\$ kill -TERM $EMBEDD_PID"
embedd_stop
passed=$((passed + 1))
echo "walkthrough: $passed passed, 0 failed"
