package vec

import (
	"math"
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

func TestHalf(t *testing.T) {
	for _, c := range []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.960464477539063e-08},
		{0x03ff, 6.097555160522461e-05}, {0x0400, 6.103515625e-05}, {0x8000, float32(math.Copysign(0, -1))},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))}, {0x3555, 0.333251953125},
	} {
		if got := Half(c.bits); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("Half(%#04x) = %v, want %v", c.bits, got, c.want)
		}
	}
	if got := Half(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("Half(0x7e00) = %v, want NaN", got)
	}
}

// TestAddHalf checks AddHalf against Half for every half that is not a
// NaN, at lengths that reach each of the loop's steps.
func TestAddHalf(t *testing.T) {
	var all []uint16
	for h := range 1 << 16 {
		if e := h >> 10 & 0x1f; e != 0x1f || h&0x3ff == 0 {
			all = append(all, uint16(h))
		}
	}
	for _, n := range []int{0, 1, 7, 8, 9, 33, 384, len(all)} {
		src := all[len(all)-n:]
		dst, want := make([]float32, n), make([]float32, n)
		for i := range dst {
			dst[i] = float32(i%7) - 3
			want[i] = dst[i] + Half(src[i])
		}
		AddHalf(dst, src)
		for i := range dst {
			if dst[i] != want[i] && !(math.IsNaN(float64(dst[i])) && math.IsNaN(float64(want[i]))) {
				t.Fatalf("n=%d: AddHalf[%d] (half %#04x) = %v, want %v", n, i, src[i], dst[i], want[i])
			}
		}
	}
}

// TestScale checks Scale against the scalar loop, bit for bit, at lengths
// that reach each of the loop's steps.
func TestScale(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 384} {
		dst, want := make([]float32, n), make([]float32, n)
		for i := range dst {
			dst[i] = float32(i)*0.37 - 11 + float32(i%3)*1e-7
		}
		copy(want, dst)
		s := float32(1) / 35
		scaleGo(want, s)
		Scale(dst, s)
		if !slices.Equal(dst, want) {
			t.Errorf("n=%d: Scale = %v, want %v (the scalar loop's bits)", n, dst, want)
		}
		if n > 0 && dst[n-1] == float32(n-1)*0.37-11+float32((n-1)%3)*1e-7 {
			t.Errorf("n=%d: last element not scaled", n)
		}
	}
}
