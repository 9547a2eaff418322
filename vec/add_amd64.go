package vec

import "golang.org/x/sys/cpu"

// addAVX2 adds src[:n] to dst[:n] with AVX2 (add_amd64.s).
//
//go:noescape
func addAVX2(dst, src *float32, n int)

var hasAVX2 = cpu.X86.HasAVX2

// Add adds src to dst elementwise: dst[i] += src[i] for i < len(dst);
// src must be at least as long. Each sum is the float32 sum, so every
// path gives the same bits. On amd64 with AVX2 it runs 8 lanes at a time,
// about 8 times the compiler's scalar loop: pooling a static embedding
// model is this loop over every token's row.
func Add(dst, src []float32) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	if hasAVX2 {
		addAVX2(&dst[0], &src[0], len(dst))
		return
	}
	addGo(dst, src)
}
