package flat

import "golang.org/x/sys/cpu"

//go:noescape
func dot4AVX512(q, r []float32, nrows, dim int, out []float32, ldo int, next *float32)

//go:noescape
func dot1AVX512(q, r []float32, nrows, dim int, out []float32)

//go:noescape
func dot4AVX2(q, r []float32, nrows, dim int, out []float32, ldo int, next *float32)

//go:noescape
func dot1AVX2(q, r []float32, nrows, dim int, out []float32)

func asmKernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, kernel{"avx512", func(q, r []float32, nrows, dim int, out []float32, ldo int, next *float32) {
			checkDot4(q, r, nrows, dim, out, ldo)
			dot4AVX512(q, r, nrows, dim, out, ldo, next)
		}, func(q, r []float32, nrows, dim int, out []float32) {
			checkDot1(q, r, nrows, dim, out)
			dot1AVX512(q, r, nrows, dim, out)
		}})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernel{"avx2", func(q, r []float32, nrows, dim int, out []float32, ldo int, next *float32) {
			checkDot4(q, r, nrows, dim, out, ldo)
			dot4AVX2(q, r, nrows, dim, out, ldo, next)
		}, func(q, r []float32, nrows, dim int, out []float32) {
			checkDot1(q, r, nrows, dim, out)
			dot1AVX2(q, r, nrows, dim, out)
		}})
	}
	return ks
}
