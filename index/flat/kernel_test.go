package flat

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randVecs(rng *rand.Rand, n, dim int) []float32 {
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestKernels checks every kernel this CPU runs against a float64 dot
// product, within 1e-5 relative to |q|·|r|.
func TestKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range kernels {
		for _, dim := range []int{1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 384, 385, 768} {
			for _, nrows := range []int{0, 4, 8, 20} {
				q := randVecs(rng, 4, dim)
				r := randVecs(rng, nrows, dim)
				ldo := nrows + 3
				out := make([]float32, 3*ldo+nrows+1)
				for i := range out {
					out[i] = -7
				}
				var next *float32
				if nrows > 0 {
					next = &r[0] // prefetching must not change the result
				}
				k.dot4(q, r, nrows, dim, out, ldo, next)
				for i := range 4 {
					for j := range nrows {
						want, scale := dot64(q[i*dim:(i+1)*dim], r[j*dim:(j+1)*dim])
						got := float64(out[i*ldo+j])
						if math.Abs(got-want) > 1e-5*scale {
							t.Fatalf("%s dim %d nrows %d: out[%d][%d] = %v, want %v", k.name, dim, nrows, i, j, got, want)
						}
					}
					for j := nrows; j < ldo && i*ldo+j < len(out); j++ {
						if out[i*ldo+j] != -7 {
							t.Fatalf("%s dim %d nrows %d: wrote out[%d][%d] past nrows", k.name, dim, nrows, i, j)
						}
					}
				}
				if out[len(out)-1] != -7 {
					t.Fatalf("%s dim %d nrows %d: wrote past the end", k.name, dim, nrows)
				}

				out1 := make([]float32, nrows+1)
				out1[nrows] = -7
				k.dot1(q[dim:2*dim], r, nrows, dim, out1)
				for j := range nrows {
					want, scale := dot64(q[dim:2*dim], r[j*dim:(j+1)*dim])
					if got := float64(out1[j]); math.Abs(got-want) > 1e-5*scale {
						t.Fatalf("%s dot1 dim %d nrows %d: out[%d] = %v, want %v", k.name, dim, nrows, j, got, want)
					}
				}
				if out1[nrows] != -7 {
					t.Fatalf("%s dot1 dim %d nrows %d: wrote past the end", k.name, dim, nrows)
				}
			}
		}
	}
}

// dot64 returns x·y in float64 and |x|·|y|, the scale its rounding error is
// measured against.
func dot64(x, y []float32) (dot, scale float64) {
	var xx, yy float64
	for i := range x {
		dot += float64(x[i]) * float64(y[i])
		xx += float64(x[i]) * float64(x[i])
		yy += float64(y[i]) * float64(y[i])
	}
	return dot, math.Max(math.Sqrt(xx*yy), 1e-30)
}
