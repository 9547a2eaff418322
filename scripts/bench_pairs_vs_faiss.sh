#!/usr/bin/env bash
# bench_pairs_vs_faiss.sh: embedd job pairs --self against FAISS on the same
# random unit vectors, one run.
#
#  1. writes N (default 100,000) × 384 random unit vectors (seed 1) as .npy;
#  2. FAISS IndexFlatIP, 2 OpenMP threads: index.search(x, 11) minus self;
#  3. embedd job pairs --self --k 10 on the .npy (mapped, not loaded), end to
#     end (JSONL out), timed with its peak RSS, and its pairs compared with
#     FAISS's (ties at FAISS's 10th score aside);
#  4. the kernels alone (index/flat/cmd/benchjoin): the self-join against
#     the same set through flat.Search (every row a query, k=11), the
#     symmetry's gain;
#  5. the same with --job-dir (checkpointed, resumable), and as 3 shards
#     merged, both compared byte for byte with the plain run;
#  6. threshold mode (--threshold 0.2) on the same data, timed, with RSS.
# User CPU seconds are printed beside wall times: on a shared machine they
# are the steadier comparison.
# Installs python3-faiss and libopenblas0-pthread when missing. Needs about
# 2 GB of memory; takes about 5 minutes on 2 cores (FAISS most of it). On a
# shared machine: flock /tmp/embedd-bench.lock scripts/bench_pairs_vs_faiss.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100000}

source scripts/lib/apt.sh
apt_need python3-faiss libopenblas0-pthread time

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(grep -o -m1 'avx512f' /proc/cpuinfo || echo no-avx512), Go $(go env GOVERSION), load $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$dir/embedd" ./cmd/embedd
go build -o "$dir/benchjoin" ./index/flat/cmd/benchjoin
/usr/bin/python3 scripts/bench_pairs_vs_faiss.py write "$dir" "$n"
echo "== FAISS $(/usr/bin/python3 -c 'import faiss; print(faiss.__version__)')"
/usr/bin/time -f "FAISS process (load and search): wall %e s, user %U s, peak RSS %M KiB" /usr/bin/python3 scripts/bench_pairs_vs_faiss.py faiss "$dir"
echo "== embedd job pairs --self --k 10 (end to end: map, join, JSONL out)"
/usr/bin/time -f "wall %e s, user %U s, peak RSS %M KiB" "$dir/embedd" job pairs --self --k 10 --progress off --out "$dir/nb.jsonl" "$dir/x.npy"
/usr/bin/python3 scripts/bench_pairs_vs_faiss.py compare "$dir" "$dir/nb.jsonl"
echo "== the same, resumable (--job-dir: every row's heap checkpointed, paced to about 5% of the join)"
/usr/bin/time -f "wall %e s, user %U s, peak RSS %M KiB" "$dir/embedd" job pairs --self --k 10 --progress off --job-dir "$dir/job" --out "$dir/nb-job.jsonl" "$dir/x.npy"
cmp "$dir/nb.jsonl" "$dir/nb-job.jsonl" && echo "output byte-identical to the run without a job directory; heaps.bin $(stat -c %s "$dir/job/pairs/heaps.bin") bytes"
echo "== as 3 shards (one after another on this machine), then embedd job merge"
for i in 0 1 2; do
  /usr/bin/time -f "shard $i/3: wall %e s, user %U s, peak RSS %M KiB" "$dir/embedd" job pairs --self --k 10 --progress off --shard "$i/3" --job-dir "$dir/shard-$i" "$dir/x.npy" 2>&1 | grep -v '^embedd job pairs: read'
done
/usr/bin/time -f "merge: wall %e s, user %U s, peak RSS %M KiB" "$dir/embedd" job merge --out "$dir/nb-merged.jsonl" "$dir"/shard-{0,1,2} 2>&1 | grep -v '^embedd job merge: read'
cmp "$dir/nb.jsonl" "$dir/nb-merged.jsonl" && echo "merged output byte-identical to one process's"
echo "== kernels: self-join against search on the same set"
"$dir/benchjoin" -npy "$dir/x.npy" -k 10
echo "== embedd job pairs --self --threshold 0.2"
/usr/bin/time -f "wall %e s, user %U s, peak RSS %M KiB" "$dir/embedd" job pairs --self --threshold 0.2 --max-pairs 0 --progress off --out "$dir/pairs.jsonl" "$dir/x.npy"
echo "pairs written: $(wc -l <"$dir/pairs.jsonl")"
