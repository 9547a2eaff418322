#!/usr/bin/env bash
# bench_job_rss.sh: peak RSS of embedd's batch jobs at 10k and 1M input
# lines (flat memory: it must not grow with the input).
#
#  - embed: short texts through a tiny generated model (1 layer, hidden 32:
#    scripts/gen_test_model.py; its cost is not the point), into .npy and
#    JSONL, streamed and with a job directory;
#  - pairs: JSONL vectors (dimension 16) converted into a mapped .npy and
#    joined against 1,000 others (top 10 each): the vectors are mapped, so
#    RSS counts their file pages (4 B × 16 × rows), not heap.
# Peak RSS from /usr/bin/time (installed from apt when missing). Takes a
# few minutes on 2 cores; needs scripts/setup.sh (ONNX Runtime).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$dir/embedd" ./cmd/embedd
/usr/bin/python3 scripts/gen_test_model.py "$dir/tiny" --layers 1 --hidden 32 --heads 2 --ffn 64 --max-positions 64 >/dev/null
printf '{"models":[{"id":"tiny","path":"%s"}]}\n' "$dir/tiny" >"$dir/config.json"
/usr/bin/python3 - "$dir" <<'PY'
import random, sys, json
d = sys.argv[1]
random.seed(1)
words = "alpha beta gamma delta river stone cloud paper green quick market song".split()
with open(f"{d}/t1m.txt", "w") as f:
    for i in range(1_000_000):
        f.write(" ".join(random.choice(words) for _ in range(8)) + "\n")
with open(f"{d}/v1m.jsonl", "w") as f:
    for i in range(1_000_000):
        f.write(json.dumps({"id": f"r{i}", "vector": [round(random.gauss(0, 1), 5) for _ in range(16)]}) + "\n")
with open(f"{d}/q.jsonl", "w") as f:
    for i in range(1000):
        f.write(json.dumps({"id": f"q{i}", "vector": [round(random.gauss(0, 1), 5) for _ in range(16)]}) + "\n")
PY
head -n 10000 "$dir/t1m.txt" >"$dir/t10k.txt"
head -n 10000 "$dir/v1m.jsonl" >"$dir/v10k.jsonl"
rss() { # label, command...
  local label=$1
  shift
  /usr/bin/time -f "%M %e %U" -o "$dir/time" "$@" 2>"$dir/err" || { cat "$dir/err"; exit 1; }
  read -r kib wall user <"$dir/time"
  printf '%-44s peak RSS %7.1f MiB   wall %7.1f s   user %7.1f s   %s\n' "$label" "$(echo "$kib/1024" | bc -l)" "$wall" "$user" "$(grep -o 'read [0-9]*, written [0-9]*' "$dir/err" | tail -1)"
}
for n in 10k 1m; do
  rss "embed $n lines → .npy (streamed)" "$dir/embedd" job embed --config "$dir/config.json" --progress off --out "$dir/e.npy" "$dir/t$n.txt"
  rss "embed $n lines → JSONL (streamed)" "$dir/embedd" job embed --config "$dir/config.json" --progress off --out "$dir/e.jsonl" "$dir/t$n.txt"
  rm -rf "$dir/jd"
  rss "embed $n lines → .npy (--job-dir)" "$dir/embedd" job embed --config "$dir/config.json" --progress off --job-dir "$dir/jd" --out "$dir/e.npy" "$dir/t$n.txt"
  rss "pairs $n lines × 1,000, top 10 (JSONL in)" "$dir/embedd" job pairs --against "$dir/q.jsonl" --k 10 --progress off --out "$dir/p.jsonl" "$dir/v$n.jsonl"
done
