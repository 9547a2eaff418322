// Package gpusearch is an index.Backend that searches collections exactly
// on an NVIDIA GPU through package gpu (CUDA loaded at run time).
//
// # Device copy
//
// Each collection a Backend searches keeps a copy of its matrix in device
// memory (float32, or half with WithFP16), keyed by index.Matrix.Collection,
// unless the copy would exceed the device budget (see Streaming). Rows are append-only
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
// # fp16 storage
//
// WithFP16(true) (server setting search_fp16) stores rows on the device as
// IEEE half: half the device memory of float32. Rows are converted on the
// host while they go through the pinned staging buffer (toHalf: round to
// nearest, ties to even, subnormals, ±Inf and NaN kept; tested against a
// table of every half), and so are the queries; scores come from
// gpu.BLAS.GemmF16 (fp16 inputs, fp32 accumulation and output). The bias
// (mask and L2 term) is added in fp32 as above, and L2 distances of the
// returned hits are still recomputed exactly from the float32 rows. For
// unit-scale data (cosine, or dot products of vectors of length about 1)
// scores are within 1e-3 of fp32 (issue 5; a CPU model at dimension 384
// gives about 5e-5), so ids equal flat's apart from near-ties within that.
// A finite component beyond ±65504 (it would become Inf) fails the search
// with an error naming it.
//
// # Streaming
//
// A collection whose copy (rows and bias) would exceed the device budget
// (WithDeviceBudget; default 80% of the device memory free at New) is not
// kept resident: each search streams its rows from host memory in chunks
// of at most 64 MiB (chunkRows), per query batch. Chunk i+1 is copied (or
// converted to half) into one of two pinned host buffers, with its bias,
// and copied to one of two device slots on a second stream while chunk i
// is scored and selected on the compute stream; events order a slot's
// copy after the search that last read it and its search after its copy.
// Each chunk returns its k best per query with global row numbers, merged
// on the host into the running k best (mergeTop: best first, ties by
// smaller row), which gives the resident answer exactly: the plan and the
// merge are tested on the CPU against flat.Search on data split into
// chunks with many exact ties. The budget is per collection: several
// resident collections together can still exceed device memory (the
// copy that does not fit fails its search with cudaMalloc's error).
// Streaming goes through pinned buffers rather than gpu.HostRegister on
// the collection's own memory: index.Matrix does not say whether Data is
// memory-mapped (registering Go heap memory is unsafe), fp16 needs the
// host conversion anyway, and registration pins every page, itself a cost
// per search unless cached; the host copy of chunk i+1 overlaps the device
// work on chunk i.
//
// # Not yet
//
//   - gpu.HostRegister of a mapped matrix for streaming (see above);
//   - a streamed search reads every chunk once per query batch; batches
//     are sized for one chunk's scores, so large query sets reread the
//     collection several times;
//   - concurrency on the device: one compute stream, searches take turns;
//   - search without the top-k kernel: with a CUDA 12 runtime older than 12.8
//     (no cudaLibrary API) or without NVRTC, gpu.NewTopK fails and so does New,
//     with that reason ("auto" then searches on the CPU and logs it), although
//     cuBLAS works; selecting on the host from copied-back scores would serve it;
//   - live rows whose true score is -Inf (a dot product that overflows
//     float32) tie with masked rows and may be cut off.
//
// # Status
//
// Verified on the CPU only: the copy and mask bookkeeping, the batch plan,
// the float32→half conversion, a model of fp16 scoring error, and the
// streaming chunk plan and merge are pure functions with tests. The device
// paths (resident fp32 and fp16, streamed fp32 and fp16) await the first
// GPU run (issue 5), whose tests (TestMatchesFlat, TestFP16MatchesFlat,
// TestStreamedMatchesFlat, TestCollectionOnGPU) compare them with
// flat.Search and skip, with gpu.Load's reason, where there is no GPU.
package gpusearch
