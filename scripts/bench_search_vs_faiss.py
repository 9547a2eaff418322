"""Data and FAISS half of scripts/bench_search_vs_faiss.sh.

Usage: bench_search_vs_faiss.py DIR

Writes to DIR, as raw little-endian float32 (row-major, dimension 384):
  base.f32     1,000,000 random unit vectors (seed 1); the 100k case uses
               its first 100,000 rows
  queries.f32  1,024 random unit vectors (seed 2)
and, for each case (n, Q), FAISS IndexFlatIP's top 10 with 2 OpenMP threads:
  faiss_N_Q.ids (int64), faiss_N_Q.scores (float32), Q*10 each
  faiss_times.txt: one line "N Q SECONDS" per case (median of the timed runs)
"""

import os
import statistics
import sys
import time

import faiss
import numpy as np

DIM, K = 384, 10
SIZES = (100_000, 1_000_000)
QS = (1, 16, 1024)


def unit_vectors(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed_runs(fn):
    """Runs fn until 2 s have passed (at least 3 times, once if a run takes
    more than 2 s, after one untimed warm-up run when that is under 2 s) and
    returns the median time and the last result."""
    t0 = time.perf_counter()
    out = fn()
    if time.perf_counter() - t0 > 2:
        return time.perf_counter() - t0, out
    times = []
    while len(times) < 3 or sum(times) < 2:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    out = sys.argv[1]
    base = unit_vectors(1, max(SIZES))
    queries = unit_vectors(2, max(QS))
    base.tofile(os.path.join(out, "base.f32"))
    queries.tofile(os.path.join(out, "queries.f32"))

    faiss.omp_set_num_threads(2)
    with open(os.path.join(out, "faiss_times.txt"), "w") as times:
        for n in SIZES:
            index = faiss.IndexFlatIP(DIM)
            index.add(base[:n])
            for q in QS:
                secs, (scores, ids) = timed_runs(lambda: index.search(queries[:q], K))
                ids.astype(np.int64).tofile(os.path.join(out, f"faiss_{n}_{q}.ids"))
                scores.astype(np.float32).tofile(os.path.join(out, f"faiss_{n}_{q}.scores"))
                times.write(f"{n} {q} {secs:.6f}\n")
                print(f"faiss n={n} Q={q}: {secs:.4f} s", flush=True)
            del index


if __name__ == "__main__":
    main()
