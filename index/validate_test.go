package index

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseMetric(t *testing.T) {
	for _, m := range []Metric{Cosine, Dot, L2} {
		got, err := ParseMetric(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMetric("euclid"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"euclid"`) {
		t.Errorf("ParseMetric(euclid) = %v", err)
	}
	if Metric(7).String() != "Metric(7)" {
		t.Error(Metric(7).String())
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "docs_v2", "x-1", strings.Repeat("z", 64)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "A", "a.b", " a", strings.Repeat("z", 65), "a\x00"} {
		if err := ValidName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAppendVector(t *testing.T) {
	w := where{"record", 2, "x"}
	if _, err := appendVector(nil, []float32{math.MaxFloat32, math.MaxFloat32}, 2, Dot, w); !errors.Is(err, ErrInvalid) {
		t.Errorf("squared norm overflowing float32: %v", err)
	}
	b, err := appendVector(nil, []float32{math.MaxFloat32, math.MaxFloat32}, 2, Cosine, w)
	if err != nil || math.Abs(float64(float32FromLE(b))-math.Sqrt(0.5)) > 1e-6 {
		t.Errorf("huge vector under cosine: %v", err)
	}
	if _, err := appendVector(nil, []float32{1e-45, 0, 0, 0}, 4, Cosine, w); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "subnormal") {
		t.Errorf("subnormal vector under cosine: %v, want ErrInvalid naming it subnormal", err)
	}
	if w.String() != `record 2 (id "x")` || (where{"line", 3, ""}).String() != "line 3" {
		t.Error(w.String())
	}
}
