package vec

import "golang.org/x/sys/cpu"

// addAVX2 adds src[:n] to dst[:n] with AVX2 (add_amd64.s).
//
//go:noescape
func addAVX2(dst, src *float32, n int)

// addHalfF16C adds the halves src[:n] to dst[:n] with F16C and AVX
// (add_amd64.s).
//
//go:noescape
func addHalfF16C(dst *float32, src *uint16, n int)

// scaleAVX2 multiplies dst[:n] by s with AVX2 (add_amd64.s).
//
//go:noescape
func scaleAVX2(dst *float32, s float32, n int)

var (
	hasAVX2 = cpu.X86.HasAVX2
	hasF16C = cpu.X86.HasF16C && cpu.X86.HasAVX
)

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

// AddHalf adds the IEEE half-precision numbers src (bit patterns) to dst:
// dst[i] += Half(src[i]) for i < len(dst); src must be at least as long.
// A static model's fp16 table stays fp16 in memory this way: half the
// bytes to fetch per token, converted exactly, 8 lanes at a time with F16C.
func AddHalf(dst []float32, src []uint16) {
	if len(dst) == 0 {
		return
	}
	src = src[:len(dst)]
	if hasF16C {
		addHalfF16C(&dst[0], &src[0], len(dst))
		return
	}
	addHalfGo(dst, src)
}

// Scale multiplies dst by s elementwise: dst[i] *= s. Each product is the
// float32 product, so every path gives the same bits; with AVX2 it runs 8
// lanes at a time (a static model's mean is its sum of rows scaled by
// 1/n).
func Scale(dst []float32, s float32) {
	if len(dst) == 0 {
		return
	}
	if hasAVX2 {
		scaleAVX2(&dst[0], s, len(dst))
		return
	}
	scaleGo(dst, s)
}
