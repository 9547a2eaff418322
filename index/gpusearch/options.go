package gpusearch

// Option configures a Backend (New, Select).
type Option func(*options)

type options struct {
	fp16   bool
	budget int64 // device bytes a collection's copy may take; 0: default
}

// WithFP16 stores collections on the device as IEEE half (fp16) instead
// of float32: half the device memory and tensor-core GEMMs (gpu.BLAS.
// GemmF16: fp16 inputs, fp32 accumulation and scores). Rows and queries
// are rounded to nearest (ties to even) on the host while they are copied;
// a finite component beyond ±65504 fails the search. For unit-scale data
// (cosine, or dot products of vectors of length about 1) scores are within
// 1e-3 of fp32 (issue 5), so ids may differ from flat's where scores are
// that close; L2 distances are still recomputed exactly on the host.
func WithFP16(on bool) Option { return func(o *options) { o.fp16 = on } }

// WithDeviceBudget bounds the device memory one collection's resident copy
// may take, in bytes. A collection whose copy would exceed it is not kept
// on the device but streamed from host memory in chunks at each search.
// 0 (the default) is 80% of the device memory free when New runs.
func WithDeviceBudget(bytes int64) Option { return func(o *options) { o.budget = bytes } }
