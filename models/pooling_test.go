package models

import (
	"slices"
	"testing"
)

func TestPoolModes(t *testing.T) {
	// Three token rows of width 2, the last one padding (n = 2).
	states := []float32{1, 2, 3, 6, 100, 100}
	for _, c := range []struct {
		mode Pooling
		want []float32
	}{
		{PoolMean, []float32{2, 4}},
		{PoolCLS, []float32{1, 2}},
		{PoolLastToken, []float32{3, 6}},
	} {
		dst := []float32{-7, -7}
		pool(dst, states, 2, c.mode)
		if !slices.Equal(dst, c.want) {
			t.Errorf("%s: got %v, want %v (padding must not count)", c.mode, dst, c.want)
		}
	}
	for _, s := range []string{"mean", "cls", "lasttoken"} {
		if p, err := ParsePooling(s); err != nil || string(p) != s {
			t.Errorf("ParsePooling(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParsePooling("max"); err == nil {
		t.Error("ParsePooling accepted max")
	}
}
