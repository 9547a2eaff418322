//go:build !amd64

package vec

// Add adds src to dst elementwise: dst[i] += src[i] for i < len(dst);
// src must be at least as long.
func Add(dst, src []float32) { addGo(dst, src[:len(dst)]) }

// AddHalf adds the IEEE half-precision numbers src (bit patterns) to dst:
// dst[i] += Half(src[i]) for i < len(dst); src must be at least as long.
func AddHalf(dst []float32, src []uint16) { addHalfGo(dst, src[:len(dst)]) }

// Scale multiplies dst by s elementwise: dst[i] *= s.
func Scale(dst []float32, s float32) { scaleGo(dst, s) }
