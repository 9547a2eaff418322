package gpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// arena is simulated device memory: DevicePtr p is arena[p:]. Address 0 is NULL.
type arena []byte

func (m arena) f32(p uintptr, i int64) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(m[int64(p)+4*i:]))
}
func (m arena) setF32(p uintptr, i int64, v float32) {
	binary.LittleEndian.PutUint32(m[int64(p)+4*i:], math.Float32bits(v))
}
func (m arena) i32(p uintptr, i int64) int32 {
	return int32(binary.LittleEndian.Uint32(m[int64(p)+4*i:]))
}
func (m arena) setI32(p uintptr, i int64, v int32) {
	binary.LittleEndian.PutUint32(m[int64(p)+4*i:], uint32(v))
}

const simSentinelIdx = 0x7fffffff // TOPK_SENTINEL_IDX

// simBetter is topk_better.
func simBetter(as float32, ai int32, bs float32, bi int32) bool {
	return as > bs || (as == bs && ai < bi)
}

// simTopKChunk is topk.cu's topk_chunk for block (bx, by), ported line by line.
// Threads run one after another between barriers (__syncthreads), which is
// equivalent because within a phase each thread touches its own elements.
func simTopKChunk(mem arena, bx, by, blockDim int, a topkArgs) {
	chunk := int(a.chunk)
	sv := make([]float32, chunk) // shared memory
	si := make([]int32, chunk)

	q := int64(by)
	c := int64(bx)
	start := c * int64(chunk)
	rem := int64(a.len) - start
	cnt := chunk
	if rem < int64(chunk) {
		cnt = int(rem)
	}
	rowV := q*a.inStride + start // element offset of rv
	rowI := q*a.inStride + start

	for tid := range blockDim {
		for i := tid; i < chunk; i += blockDim {
			if i < cnt {
				sv[i] = mem.f32(a.inVals, rowV+int64(i))
				if a.inIdx != 0 {
					si[i] = mem.i32(a.inIdx, rowI+int64(i))
				} else {
					si[i] = int32(start + int64(i))
				}
			} else {
				sv[i] = float32(math.Inf(-1))
				si[i] = simSentinelIdx
			}
		}
	}

	for size := 2; size <= chunk; size <<= 1 {
		for stride := size >> 1; stride > 0; stride >>= 1 {
			// __syncthreads()
			for tid := range blockDim {
				for t := tid; t < chunk>>1; t += blockDim {
					lo := 2*t - (t & (stride - 1))
					hi := lo + stride
					bestFirst := lo&size == 0
					ls, hs := sv[lo], sv[hi]
					li, hiI := si[lo], si[hi]
					var swap bool
					if bestFirst {
						swap = simBetter(hs, hiI, ls, li)
					} else {
						swap = simBetter(ls, li, hs, hiI)
					}
					if swap {
						sv[lo], si[lo] = hs, hiI
						sv[hi], si[hi] = ls, li
					}
				}
			}
		}
	}
	// __syncthreads()

	ov := q*a.outStride + c*int64(a.k)
	for tid := range blockDim {
		for i := tid; i < int(a.k); i += blockDim {
			idx := si[i]
			mem.setF32(a.outVals, ov+int64(i), sv[i])
			if a.final != 0 && idx == simSentinelIdx {
				idx = -1
			}
			mem.setI32(a.outIdx, ov+int64(i), idx)
		}
	}
}

// simTopK runs the launches TopK.Run would make, on simulated device memory laid
// out as: padding, scores, outScores, outIdx, scratch.
func simTopK(scores []float32, q, n, k int) (vals []float32, idx []int32) {
	const pad = 64
	scr := TopKScratchBytes(q, n, k)
	sP := uintptr(pad)
	oV := sP + uintptr(4*q*n)
	oI := oV + uintptr(4*q*k)
	scratch := oI + uintptr(4*q*k)
	mem := make(arena, int(scratch)+scr)
	for i, v := range scores {
		mem.setF32(sP, int64(i), v)
	}
	for _, la := range topkLaunches(DevicePtr(sP), q, n, k, DevicePtr(oV), DevicePtr(oI), DevicePtr(scratch)) {
		if la.block.X == 0 || la.block.X > 1024 || la.shared > 48<<10 || la.grid.Y > maxGridY {
			panic("launch out of limits")
		}
		for by := range int(la.grid.Y) {
			for bx := range int(la.grid.X) {
				simTopKChunk(mem, bx, by, int(la.block.X), la.args)
			}
		}
	}
	vals = make([]float32, q*k)
	idx = make([]int32, q*k)
	for i := range vals {
		vals[i] = mem.f32(oV, int64(i))
		idx[i] = mem.i32(oI, int64(i))
	}
	return vals, idx
}

// refTopK is the specification: per query, indices sorted by (score desc, index
// asc), the first k; past n, index -1 and score -Inf.
func refTopK(scores []float32, q, n, k int) (vals []float32, idx []int32) {
	vals = make([]float32, q*k)
	idx = make([]int32, q*k)
	for qi := range q {
		row := scores[qi*n : (qi+1)*n]
		order := make([]int32, n)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int {
			switch {
			case simBetter(row[a], a, row[b], b):
				return -1
			case simBetter(row[b], b, row[a], a):
				return 1
			}
			return 0
		})
		for i := range k {
			if i < n {
				vals[qi*k+i], idx[qi*k+i] = row[order[i]], order[i]
			} else {
				vals[qi*k+i], idx[qi*k+i] = float32(math.Inf(-1)), -1
			}
		}
	}
	return vals, idx
}

func TestTopKPlan(t *testing.T) {
	for _, c := range []struct{ n, k, chunk, passes int }{
		{1, 1, 1024, 1},
		{1024, 10, 1024, 1},
		{1025, 10, 1024, 2},
		{1 << 20, 10, 1024, 3}, // 1M → 10240 → 100 → done
		{1 << 20, 2048, 4096, 9},
		{5000, 2048, 4096, 2},
	} {
		chunk, passes := topkPlan(c.n, c.k)
		if chunk != c.chunk || len(passes) != c.passes {
			t.Errorf("topkPlan(%d, %d) = chunk %d, %d passes %+v; want %d, %d", c.n, c.k, chunk, len(passes), passes, c.chunk, c.passes)
		}
		if !passes[len(passes)-1].Final || passes[0].Len != c.n {
			t.Errorf("topkPlan(%d, %d): bad passes %+v", c.n, c.k, passes)
		}
	}
}

// TestTopKLaunchBounds checks that topk_chunk declares __launch_bounds__ of
// topkMaxThreads, and that no launch exceeds it.
func TestTopKLaunchBounds(t *testing.T) {
	m := regexp.MustCompile(`__global__ void __launch_bounds__\((\d+)\) topk_chunk\(`).FindStringSubmatch(topkSource)
	if m == nil || m[1] != strconv.Itoa(topkMaxThreads) {
		t.Fatalf("topk_chunk's __launch_bounds__: %q, want %d", m, topkMaxThreads)
	}
	for _, k := range []int{1, 10, 512, 513, 1024, MaxK} {
		for _, n := range []int{1, 1000, 100_003, 10_000_000} {
			for _, la := range topkLaunches(0x1000, 3, n, k, 0x2000, 0x3000, 0x4000) {
				if b := la.block.X * la.block.Y * la.block.Z; b == 0 || b > topkMaxThreads {
					t.Errorf("n=%d k=%d: block %+v has %d threads", n, k, la.block, b)
				}
			}
		}
	}
}

// TestTopKSimulation checks the kernel's algorithm and the launcher's plan, run on
// the CPU, against sorting: random data with many ties, k = 1 and k = 2048, n not a
// multiple of the chunk, several passes, k > n.
func TestTopKSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		q, n, k int
		levels  int // distinct score values; small means many ties (0: continuous)
	}{
		{1, 1, 1, 0},
		{2, 10, 1, 3},
		{3, 1000, 10, 0},
		{2, 1025, 10, 5},
		{2, 5000, 1, 0},
		{2, 5000, 1, 2},
		{1, 3000, 100, 7},
		{2, 9999, 2048, 0},
		{1, 9999, 2048, 4},
		{1, 100, 2048, 0}, // k > n
		{1, 4097, 2048, 50},
		{1, 70000, 7, 0}, // three passes
	}
	if testing.Short() {
		cases = cases[:7]
	}
	for _, c := range cases {
		scores := make([]float32, c.q*c.n)
		for i := range scores {
			if c.levels > 0 {
				scores[i] = float32(rng.IntN(c.levels)) - 1
			} else {
				scores[i] = rng.Float32()*2 - 1
			}
		}
		gotV, gotI := simTopK(scores, c.q, c.n, c.k)
		wantV, wantI := refTopK(scores, c.q, c.n, c.k)
		for i := range wantI {
			if gotI[i] != wantI[i] || gotV[i] != wantV[i] {
				t.Fatalf("q=%d n=%d k=%d levels=%d: result %d (query %d rank %d) = (%v, %d), want (%v, %d)",
					c.q, c.n, c.k, c.levels, i, i/c.k, i%c.k, gotV[i], gotI[i], wantV[i], wantI[i])
			}
		}
	}
}
