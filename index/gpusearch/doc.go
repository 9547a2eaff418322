// Package gpusearch is an index.Backend that searches collections exactly
// on an NVIDIA GPU through package gpu (CUDA loaded at run time).
//
// # Device copy
//
// Each collection a Backend searches keeps a float32 copy of its matrix in
// device memory, keyed by index.Matrix.Collection. Rows are append-only
// within a generation, so a search copies only the rows appended since the
// last copy (planUpload), through a 16 MiB pinned staging buffer; the
// device buffer grows by doubling (the old rows are copied on the device).
// A new generation (compaction) is copied again in full; a snapshot older
// than the copy searches its prefix. The copy is freed when the collection
// closes (index.Releaser) or the Backend closes.
//
// # One search
//
// Queries are normalised on the host for cosine (as flat does; stored rows
// are unit length, so cosine is a dot product) and served in batches sized
// by batchSize: the batch's scores, top-k scratch and outputs stay within
// 256 MiB of device memory and its queries and results within the staging
// buffer. Per batch: cuBLAS SGEMM computes S = Q·Mᵀ (gpu.ScoresGemm); where
// rows are skipped (deleted or filtered out) or the metric is L2, a rank-1
// SGEMM adds a per-row bias vector to every query's scores: -Inf for a
// skipped row, -|r|²/2 for a live L2 row (flat's ranking q·r − |r|²/2),
// 0 otherwise. Adding 0 leaves a score bit for bit as it was, and -Inf plus
// a finite score is -Inf, so skipped rows are masked exactly, on the
// device, and never over-fetched. The bias is kept on the device and only
// rows whose skip bit changed since the last search (one range, cut at
// 64-row words, maskDiff) or that are new are recomputed and copied. gpu's
// TopK then selects each query's k best on the device (score descending,
// ties by smaller row, as flat); only k scores and rows per query come
// back. The host drops masked rows and padding (fewer than k live rows) and,
// for L2, recomputes the returned hits' squared distances from the vectors
// in float64 and sorts by them, as flat does.
//
// The result contract is flat.Search's: ids equal to flat's apart from
// exact ties (scores are summed in a different order, so near-ties may
// swap), scores within 1e-4 for unit-scale data. k above gpu.MaxK (2,048),
// an empty matrix and malformed arguments are handed to flat.Search.
//
// The brief asked for a masking kernel compiled with gpu.CompilePTX; package
// gpu exports no way to load and launch a caller's kernel (its module and
// launch helpers are unexported), so the mask is the rank-1 GEMM above,
// which is as exact. A bitmap kernel would copy n/8 bytes per changed
// range instead of 4n; worth it once gpu exports a launch API.
//
// # Not yet
//
//   - fp16 storage on the device (gpu.BLAS.GemmF16 exists; not wired here);
//   - collections larger than device memory streamed in chunks from pinned
//     or registered memory: a copy that does not fit fails the search
//     with cudaMalloc's error;
//   - concurrency on the device: one stream, searches take turns;
//   - live rows whose true score is -Inf (a dot product that overflows
//     float32) tie with masked rows and may be cut off.
//
// # Status
//
// Verified on the CPU only (the copy and mask bookkeeping and the batch
// plan are pure functions with tests); the device path awaits a GPU run
// (issue 5), whose tests compare it with flat.Search.
package gpusearch
