package gpu

import (
	_ "embed"
	"errors"
	"fmt"
	"unsafe"
)

//go:embed topk.cu
var topkSource string

// MaxK is the largest k TopK selects.
const MaxK = 2048

// topkMinChunk is the smallest chunk: small k still sorts 1024 scores per block.
const topkMinChunk = 1024

// topkMaxThreads is the most threads per block topk_chunk is launched with, its
// __launch_bounds__ in topk.cu.
const topkMaxThreads = 1024

// maxGridY is CUDA's limit on gridDim.y, which carries the query.
const maxGridY = 65535

// topkPass is one launch of topk_chunk: it reduces rows of Len candidates to rows of
// Chunks·k (or k in the final pass).
type topkPass struct {
	Len    int // candidates per query row read
	Chunks int // blocks per query (gridDim.x)
	Final  bool
}

// topkPlan returns the chunk size (a power of two, at least 2k and topkMinChunk)
// and the passes that reduce n scores per query to k. Each non-final pass maps Len
// to Chunks·k ≤ Len/2 + k < Len (as chunk ≥ 2k and Len > chunk), so the plan ends.
// Shared by the launcher and its CPU model.
func topkPlan(n, k int) (chunk int, passes []topkPass) {
	chunk = topkMinChunk
	for chunk < 2*k {
		chunk *= 2
	}
	for l := n; ; {
		c := (l + chunk - 1) / chunk
		p := topkPass{Len: l, Chunks: c, Final: c == 1}
		passes = append(passes, p)
		if p.Final {
			return chunk, passes
		}
		l = c * k
	}
}

// TopKScratchBytes returns the device scratch TopK.Run needs for q queries of n
// scores and k results: two ping-pong buffers of q·⌈n/chunk⌉·k (score, index) pairs.
// It is 0 when n fits one chunk.
func TopKScratchBytes(q, n, k int) int {
	_, passes := topkPlan(n, k)
	if len(passes) == 1 {
		return 0
	}
	return 2 * q * passes[0].Chunks * k * 8
}

// TopK is the top-k selection kernel, compiled with NVRTC for a device and loaded on it.
type TopK struct {
	mod    *module
	kernel uintptr
}

// NewTopK compiles topk.cu for d (a cubin for its architecture, or PTX for a device
// newer than NVRTC) and loads it on d. Its error wraps ErrNoCUDA and says why when
// kernels cannot be loaded: libnvrtc is absent, or the runtime predates CUDA 12.8's
// cudaLibrary API (cuBLAS still works then). The caller frees it with Close; d must
// outlive it.
func NewTopK(d *Device) (*TopK, error) {
	major, minor, err := d.ComputeCapability()
	if err != nil {
		return nil, err
	}
	if err := d.lib.kernelsErr(); err != nil {
		return nil, fmt.Errorf("embedd/gpu: no device top-k: %w", err)
	}
	image, err := d.lib.compileFor(topkSource, "topk.cu", major, minor, "--std=c++17")
	if err != nil {
		return nil, err
	}
	mod, err := loadModule(d, image)
	if err != nil {
		return nil, err
	}
	k, err := mod.kernel("topk_chunk")
	if err != nil {
		return nil, errors.Join(err, mod.Close())
	}
	return &TopK{mod: mod, kernel: k}, nil
}

// Close unloads the kernel; it is nil-safe and idempotent.
func (t *TopK) Close() error {
	if t == nil {
		return nil
	}
	err := t.mod.Close()
	t.mod, t.kernel = nil, 0
	return err
}

// Run queues, on s, the selection of the k best of each query's n scores: scores is
// q rows of n float32 (row-major, as ScoresGemm writes them); outScores (q·k
// float32) and outIdx (q·k int32) receive, per query, the k best in order (score
// descending, ties by smaller index), with index -1 and score -Inf past n when k > n.
// scratch must hold TopKScratchBytes(q, n, k) bytes (it may be 0 then). 1 ≤ k ≤ MaxK,
// 1 ≤ q ≤ 65535, 1 ≤ n < 2³¹-1. NaN scores have no defined place.
func (t *TopK) Run(s *Stream, scores DevicePtr, q, n, k int, outScores, outIdx, scratch DevicePtr) error {
	if t == nil || t.mod == nil {
		return errors.New("embedd/gpu: TopK is closed")
	}
	switch {
	case k < 1 || k > MaxK:
		return fmt.Errorf("embedd/gpu: top-k k=%d is not in [1, %d]", k, MaxK)
	case q < 1 || q > maxGridY:
		return fmt.Errorf("embedd/gpu: top-k queries=%d is not in [1, %d]", q, maxGridY)
	case n < 1 || n >= 1<<31-1:
		return fmt.Errorf("embedd/gpu: top-k n=%d is not in [1, %d)", n, 1<<31-1)
	}
	for i, la := range topkLaunches(scores, q, n, k, outScores, outIdx, scratch) {
		a := la.args
		argv := []unsafe.Pointer{
			unsafe.Pointer(&a.inVals), unsafe.Pointer(&a.inIdx), unsafe.Pointer(&a.len), unsafe.Pointer(&a.inStride),
			unsafe.Pointer(&a.k), unsafe.Pointer(&a.chunk), unsafe.Pointer(&a.outVals), unsafe.Pointer(&a.outIdx),
			unsafe.Pointer(&a.outStride), unsafe.Pointer(&a.final),
		}
		if err := s.launch(t.kernel, la.grid, la.block, la.shared, argv); err != nil {
			return fmt.Errorf("embedd/gpu: top-k launch %d: %w", i+1, err)
		}
	}
	return nil
}

// topkArgs are topk_chunk's parameters, in order, with their C types' Go equivalents.
type topkArgs struct {
	inVals    uintptr // const float*
	inIdx     uintptr // const int*, 0 for NULL
	len       int32   // int
	inStride  int64   // long long
	k         int32   // int
	chunk     int32   // int
	outVals   uintptr // float*
	outIdx    uintptr // int*
	outStride int64   // long long
	final     int32   // int
}

// topkLaunch is one kernel launch of a top-k selection.
type topkLaunch struct {
	grid, block dim3
	shared      int
	args        topkArgs
}

// topkLaunches plans the launches of one selection (see Run): pass i writes
// ping-pong scratch buffer i%2, laid out as values then indices, and the final pass
// writes outScores and outIdx. Shared by Run and its CPU model.
func topkLaunches(scores DevicePtr, q, n, k int, outScores, outIdx, scratch DevicePtr) []topkLaunch {
	chunk, passes := topkPlan(n, k)
	threads := min(chunk/2, topkMaxThreads)
	var half DevicePtr // bytes of the values (or indices) of one scratch buffer
	if len(passes) > 1 {
		half = DevicePtr(q * passes[0].Chunks * k * 4)
	}
	inVals, inIdx, inStride := scores, DevicePtr(0), int64(n)
	launches := make([]topkLaunch, 0, len(passes))
	for i, p := range passes {
		outV, outI, outStride := outScores, outIdx, int64(k)
		if !p.Final {
			base := scratch + DevicePtr(i%2)*2*half
			outV, outI, outStride = base, base+half, int64(p.Chunks*k)
		}
		la := topkLaunch{
			grid:   dim3{X: uint32(p.Chunks), Y: uint32(q), Z: 1},
			block:  dim3{X: uint32(threads), Y: 1, Z: 1},
			shared: chunk * 8,
			args: topkArgs{
				inVals: uintptr(inVals), inIdx: uintptr(inIdx), len: int32(p.Len), inStride: inStride,
				k: int32(k), chunk: int32(chunk),
				outVals: uintptr(outV), outIdx: uintptr(outI), outStride: outStride,
			},
		}
		if p.Final {
			la.args.final = 1
		}
		launches = append(launches, la)
		inVals, inIdx, inStride = outV, outI, outStride
	}
	return launches
}
