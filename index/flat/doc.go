// Package flat is embedd's exact CPU search kernel: the top k rows of a
// row-major float32 matrix for each of a batch of queries, by cosine
// similarity, inner product or squared Euclidean distance. The index
// package owns storage, ids and the write-ahead log and calls Search on a
// snapshot of the matrix.
//
// # Algorithm
//
// Search copies the queries (normalising them for Cosine; the stored rows
// are already unit length, so cosine is a dot product) and pads them to a
// multiple of four. It serves them in query blocks of up to 2 MiB of
// queries (1,364 at dimension 384), each with one pass over the matrix.
// The matrix is cut into chunks of about 256 KiB of rows that the workers
// (Options.Workers goroutines, GOMAXPROCS by default, all joined before
// Search returns) take in turn from an atomic counter, checking ctx between
// chunks. A chunk is cut into row
// blocks of about 24 KiB (16 rows at dimension 384) that stay in the L1
// cache while every tile of four queries of the query block is scored
// against them, so the matrix is read from memory once per query block; the
// first tile also prefetches the next row block into L2, so that it
// streams in while the other tiles compute. Each worker keeps a k-sized
// heap per query whose root is the worst hit held: a score below the root
// is dropped with one comparison, before the skip bitmap is even read.
// After the pass the workers' heaps are merged, best first, equal scores by
// ascending row. L2 ranks by q·r - |r|²/2 (from the dot product and the
// stored squared norms) and recomputes the returned hits' distances
// directly from the vectors, so close pairs lose no precision to
// cancellation.
//
// Deleted and filtered rows are a bitmap (Options.Skip) rather than a
// func(row) bool: it is only consulted for rows that beat the heap's
// threshold, and row blocks whose rows are all skipped are not scored at
// all. With 87.5% of rows skipped at random the two cost the same (within
// the noise, 100k×384, Q=1 and 16); with 90% skipped in runs of 9,000 rows
// the bitmap search took 0.4–0.7 ms against 5–10 ms for the func at Q=1,
// and 1.0–2.2 ms against 12–23 ms at Q=16.
//
// # Joins
//
// SelfJoin and Join score every row of one matrix against every row of
// another (or the same) with the same dot4 tiles: a block of rows against
// L1-sized slabs of the other set, each tile of a self-join's upper
// triangle once, its scores offered to both rows' heaps. Threshold pairs
// and a two-set top k are complete block by block (Pairs, Rows); a
// self-join's top k is complete only at the end, so its progress (the
// heaps and the blocks done) can be checkpointed while the workers go on
// and resumed: a block in flight at the checkpoint is scored again and a
// heap never takes the same partner twice, so the answer does not depend
// on where the join was stopped. SkipBlock shares a join's blocks among
// shards, whose heaps MergeHits combines.
//
// # Kernels
//
// The scoring is done by hand-written amd64 assembly, chosen at start-up
// with golang.org/x/sys/cpu: AVX-512 where the CPU has it, else AVX2 with
// FMA, else a plain Go kernel that other CPUs and architectures use and
// that the tests compare with the assembly. dot4 scores a tile of four
// queries against four rows (AVX-512; two with AVX2's sixteen registers):
// each step loads the tile's rows and queries once and issues sixteen (or
// eight) FMAs into separate accumulators, and a tree of shuffles then sums
// the sixteen accumulators into one vector of sixteen scores; a dimension
// that is not a multiple of the vector width ends with one masked step.
// dot1 scores one query against four rows: a lone query is bound by memory
// bandwidth, and padding it to a tile of four would put four times the
// arithmetic between the loads. The matrix's last rows, when their number
// is not a multiple of four, are scored zero-padded through the same kernel,
// so equal rows always get bit-identical scores.
//
// The house rule prefers a well-kept library, and github.com/viterin/vek
// v0.4.3 was measured first. It has a single-vector vek32.Dot (AVX2) and a
// vek32.MatMul that updates the output matrix in memory for every element
// of the shared dimension; there is no multi-query micro-kernel and no
// AVX-512. Scoring 100k×384 against 1,024 queries on both cores, with no
// top-k at all, took 2.83 s with vek32.Dot per query and row and 2.51 s
// with vek32.MatMul on 2,048-row slices: level with FAISS's 2.97 s for the
// whole search, so the goal of beating FAISS at Q=1024 could not be met.
// This package's kernel does the whole search in 0.38 s.
//
// # Measurements
//
// On the development machine: 2 vCPUs of an Intel Xeon (family 6 model
// 207, Emerald Rapids class; AVX-512) with 48 KiB L1d and 2 MiB L2 per
// core, Go 1.26, shared with other work, so figures vary by up to 2× from
// run to run; these are from quiet runs. go test -bench Search, cosine,
// k=10, 384 dimensions, queries/s (and matrix scan rate for Q=1):
//
//	                  avx512            avx2             go
//	100k  Q=1      143 (22.0 GB/s)  197 (30.3 GB/s)  66 (10.2 GB/s)
//	100k  Q=16        1588             1223             147
//	100k  Q=1024      2671             1581              -
//	1M    Q=1       18.0 (27.6 GB/s) 17.9 (27.5 GB/s) 7.9 (12.2 GB/s)
//	1M    Q=16         165              129              15.7
//	1M    Q=1024       270              150               -
//
// Memory read bandwidth, two goroutines over 2 GiB
// (BenchmarkMemoryBandwidth): 20.8 GB/s for portable Go integer sums (held
// back by their scalar loads) and 27.9–28.6 GB/s through the kernels'
// vector loads; sysbench memory read, 1 GiB blocks, 2 threads, gave 9.9–18
// GB/s. The 1M-row Q=1 scan (1.5 GB) runs at the machine's read
// bandwidth; the 100k matrix (154 MB) partly stays in the 260 MB L3
// between searches, so its rate varies more. Against FAISS 1.7.3
// IndexFlatIP (Debian python3-faiss, OpenBLAS, 2 threads) on the same
// unit vectors, scripts/bench_search_vs_faiss.sh measured (seconds, FAISS
// / embedd, recall@10 1.0 in every case):
//
//	100k  Q=1     0.0287 / 0.0041   7.0×
//	100k  Q=16    0.229  / 0.0107  21.4×
//	100k  Q=1024  1.72   / 0.409    4.2×
//	1M    Q=1     0.274  / 0.0546   5.0×
//	1M    Q=16    2.23   / 0.0952  23.4×
//	1M    Q=1024  17.5   / 3.62     4.8×
//
// Q=1 is bound by memory on every kernel, so its avx512 and avx2 figures
// differ only by noise. FAISS scans the matrix once per query below 20
// queries and uses BLAS sgemm above, then selects with its own heaps. At
// Q=1024 the kernel keeps the FMA units busy roughly 55–75% of the time
// (the VM does not show whether the cores run at 2.3 or 3 GHz); the rest
// goes to the reduction shuffles (about 15% of the kernel's instructions)
// and the heaps (about 6% of the profile).
package flat
