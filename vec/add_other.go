//go:build !amd64

package vec

// Add adds src to dst elementwise: dst[i] += src[i] for i < len(dst);
// src must be at least as long.
func Add(dst, src []float32) { addGo(dst, src[:len(dst)]) }
