package vec

import (
	"slices"
	"testing"
)

func TestAdd(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 256, 384} {
		src := make([]float32, n+1)
		dst, want := make([]float32, n), make([]float32, n)
		for i := range src {
			src[i] = float32(i)*0.5 + 1e-3
		}
		for i := range dst {
			dst[i] = float32(-i) * 0.3
		}
		copy(want, dst)
		addGo(want, src[:n])
		Add(dst, src)
		if !slices.Equal(dst, want) {
			t.Errorf("n=%d: Add = %v, want %v (the scalar loop's bits)", n, dst, want)
		}
		if n > 0 && dst[n-1] == float32(-(n-1))*0.3 {
			t.Errorf("n=%d: last element not added", n)
		}
	}
}
