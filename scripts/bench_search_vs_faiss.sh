#!/usr/bin/env bash
# bench_search_vs_faiss.sh: embedd's exact search (index/flat) against FAISS
# IndexFlatIP on the same data, one run.
#
# Installs python3-faiss and libopenblas0-pthread (Debian packages; without
# the latter numpy and FAISS use the reference BLAS) when missing, then:
#  1. scripts/bench_search_vs_faiss.py writes 1M×384 random unit vectors
#     (seeded; the 100k case is the first 100k rows) and 1,024 queries as raw
#     float32, and times FAISS on 2 OpenMP threads for n = 100k, 1M and
#     Q = 1, 16, 1024, k = 10, keeping its answers;
#  2. index/flat/cmd/benchflat times flat.Search on the same files and prints
#     per case both times, queries/s, the ratio (FAISS time / embedd time)
#     and recall@10 of embedd against FAISS (rows outside FAISS's answer
#     count when their score ties FAISS's 10th; ids_same is the strict
#     fraction), and for Q=1 the rate embedd scans the matrix at;
#  3. the package's memory-bandwidth benchmark prints what the machine reads.
# Timings: median of the runs within 2 s after a warm-up (a single run when
# one takes longer), the same rule for both. Needs about 5 GB of memory and
# 1.6 GB in $TMPDIR; takes about 3 minutes on 2 cores. On a shared machine,
# run it under the benchmark lock: flock /tmp/embedd-bench.lock scripts/...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib/apt.sh
apt_need python3-faiss libopenblas0-pthread

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Go $(go env GOVERSION)"
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p')
echo "== BLAS: ${blas:-unknown}; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (left as it is)"
echo "== data and FAISS $(/usr/bin/python3 -c 'import faiss; print(faiss.__version__)') (IndexFlatIP, 2 threads)"
/usr/bin/python3 scripts/bench_search_vs_faiss.py "$dir"
echo "== embedd flat.Search (Dot on unit vectors) against FAISS"
go run ./index/flat/cmd/benchflat -dir "$dir"
echo "== memory read bandwidth, $(nproc) goroutines over 2 GiB (sum: portable Go; avx512/avx2: the kernel's loads)"
go test -run '^$' -bench 'MemoryBandwidth' -benchtime 5x ./index/flat/ | grep '^Benchmark'
