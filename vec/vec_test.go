package vec

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float32
		ok   bool
	}{
		{"unit", []float32{3, 4}, true},
		{"zero", []float32{0, 0, 0}, false},
		{"subnormal", []float32{1e-45, 0, 0, 0}, false},
		{"smallest normal", []float32{0x1p-126, 0}, true},
		{"inf", []float32{float32(math.Inf(1)), 1}, false},
		{"nan", []float32{float32(math.NaN()), 1}, false},
		{"huge", []float32{3e38, 3e38}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := append([]float32(nil), tc.in...)
			_, ok := Normalize(v)
			if ok != tc.ok {
				t.Fatalf("Normalize(%v) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				for i := range v {
					if math.Float32bits(v[i]) != math.Float32bits(tc.in[i]) {
						t.Fatalf("refused vector changed: %v → %v", tc.in, v)
					}
				}
				return
			}
			if n := math.Sqrt(SquaredNorm(v)); math.Abs(n-1) > 1e-6 {
				t.Fatalf("norm after Normalize(%v) = %v (%v)", tc.in, n, v)
			}
		})
	}
}

func TestNormalizeExactValues(t *testing.T) {
	v := []float32{3, 4}
	norm, _ := Normalize(v)
	if norm != 5 || v[0] != 0.6 || v[1] != 0.8 {
		t.Fatalf("Normalize([3 4]) = %v, norm %v; want [0.6 0.8], 5", v, norm)
	}
}

// TestNormIsNormalizesRule: Norm accepts exactly what Normalize does.
func TestNormIsNormalizesRule(t *testing.T) {
	for _, v := range [][]float32{{3, 4}, {0, 0}, {1e-45, 0}, {0x1p-126, 0}, {float32(math.Inf(1)), 0}, {float32(math.NaN())}, {3e38, 3e38}} {
		n1, ok1 := Norm(v)
		n2, ok2 := Normalize(append([]float32(nil), v...))
		if ok1 != ok2 || (n1 != n2 && !math.IsNaN(n1)) {
			t.Errorf("%v: Norm %v %v, Normalize %v %v", v, n1, ok1, n2, ok2)
		}
	}
}
