"""FAISS half of scripts/bench_pairs_vs_faiss.sh.

Usage: bench_pairs_vs_faiss.py write DIR N | faiss DIR | compare DIR FILE

write:   DIR/x.npy, N random unit vectors of dimension 384 (seed 1)
faiss:   IndexFlatIP on 2 OpenMP threads, index.search(x, 11) minus each
         row itself: DIR/faiss_ids.npy (N×10, int64), DIR/faiss_scores.npy,
         and the time on stdout
compare: FILE is embedd job pairs --self --k 10 output (ids are rows + 1);
         prints the fraction of embedd's neighbours that are FAISS's, and
         where not, whether the score ties FAISS's 10th within 1e-6
"""

import json
import sys
import time

import numpy as np

DIM, K = 384, 10


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "write":
        n = int(sys.argv[3])
        rng = np.random.default_rng(1)
        x = rng.standard_normal((n, DIM), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(f"{d}/x.npy", x)
    elif cmd == "faiss":
        import faiss
        x = np.load(f"{d}/x.npy")
        faiss.omp_set_num_threads(2)
        index = faiss.IndexFlatIP(DIM)
        index.add(x)
        t0 = time.perf_counter()
        scores, ids = index.search(x, K + 1)
        secs = time.perf_counter() - t0
        n = len(x)
        out_ids = np.empty((n, K), np.int64)
        out_scores = np.empty((n, K), np.float32)
        for i in range(n):
            keep = ids[i] != i
            if keep.all():
                keep[-1] = False
            out_ids[i], out_scores[i] = ids[i][keep][:K], scores[i][keep][:K]
        np.save(f"{d}/faiss_ids.npy", out_ids)
        np.save(f"{d}/faiss_scores.npy", out_scores)
        print(f"faiss IndexFlatIP search(x, {K + 1}), 2 threads, {n}x{DIM}: {secs:.2f} s")
    elif cmd == "compare":
        ids = np.load(f"{d}/faiss_ids.npy")
        scores = np.load(f"{d}/faiss_scores.npy")
        same = ties = other = 0
        with open(sys.argv[3]) as f:
            for i, line in enumerate(f):
                r = json.loads(line)
                want = set(ids[i].tolist())
                for nb in r["neighbors"]:
                    if int(nb["id"]) - 1 in want:
                        same += 1
                    elif abs(nb["score"] - scores[i][-1]) <= 1e-6:
                        ties += 1
                    else:
                        other += 1
        total = same + ties + other
        print(f"same pairs as FAISS: {same / total:.6f} ({ties} ties at FAISS's 10th score, {other} others) of {total}")


if __name__ == "__main__":
    main()
