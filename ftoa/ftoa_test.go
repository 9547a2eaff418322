package ftoa

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// reference is what encoding/json writes for a float32 (its floatEncoder),
// with null for what it refuses.
func reference(b []byte, x float32) []byte {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	a, format := float32(math.Abs(f)), byte('f')
	if a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 32)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// check compares Append with reference for the bit patterns next yields
// and reports the first few that differ.
func check(t *testing.T, next func(yield func(uint32))) {
	t.Helper()
	bad := 0
	var got, want []byte
	next(func(u uint32) {
		x := math.Float32frombits(u)
		got, want = Append(got[:0], x), reference(want[:0], x)
		if !bytes.Equal(got, want) && bad < 10 {
			bad++
			t.Errorf("Append(%#08x) = %q, want %q", u, got, want)
		}
	})
}

// TestAllFloat32 checks every float32 bit pattern with EMBEDD_FTOA_ALL=1
// (about 2 core-minutes); otherwise every exponent with its edge
// mantissas, the neighbours of every power of ten, and 2M random patterns.
func TestAllFloat32(t *testing.T) {
	if os.Getenv("EMBEDD_FTOA_ALL") == "1" {
		workers := runtime.GOMAXPROCS(0)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				check(t, func(yield func(uint32)) {
					for u := uint64(w); u < 1<<32; u += uint64(workers) {
						yield(uint32(u))
					}
				})
			})
		}
		wg.Wait()
		return
	}
	check(t, func(yield func(uint32)) {
		for e := range uint32(256) {
			for _, m := range []uint32{0, 1, 2, 3, 1 << 22, 1<<23 - 2, 1<<23 - 1} {
				yield(e<<23 | m)
				yield(1<<31 | e<<23 | m)
			}
		}
		for p := -46; p <= 39; p++ {
			u := math.Float32bits(float32(math.Pow10(p)))
			for d := uint32(0); d < 5; d++ {
				yield(u + d)
				yield(u - d)
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 2_000_000 {
			yield(r.Uint32())
		}
		for range 1_000_000 { // the range embeddings live in
			yield(math.Float32bits(float32(r.NormFloat64() * 0.05)))
		}
	})
}

// TestReferenceIsEncodingJSON checks the reference against encoding/json
// itself, so that Append's output is what json.Marshal gives.
func TestReferenceIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		x := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			continue
		}
		want, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		if got := reference(nil, x); !bytes.Equal(got, want) {
			t.Fatalf("reference(%v) = %q, json.Marshal %q", x, got, want)
		}
	}
}

func TestSpecialValues(t *testing.T) {
	for _, c := range []struct {
		x    float32
		want string
	}{
		{0, "0"}, {float32(math.Copysign(0, -1)), "-0"}, {1, "1"}, {-0.5, "-0.5"}, {100, "100"},
		{1e-6, "0.000001"}, {9.999999e-7, "9.999999e-7"}, {1e-7, "1e-7"}, {1e20, "100000000000000000000"},
		{1e21, "1e+21"}, {math.MaxFloat32, "3.4028235e+38"}, {math.SmallestNonzeroFloat32, "1e-45"},
		{0.1, "0.1"}, {1.0 / 3, "0.33333334"},
		{float32(math.NaN()), "null"}, {float32(math.Inf(1)), "null"}, {float32(math.Inf(-1)), "null"},
	} {
		if got := string(Append(nil, c.x)); got != c.want {
			t.Errorf("Append(%v) = %q, want %q", c.x, got, c.want)
		}
	}
	if got := string(AppendArray([]byte("x"), []float32{0.25, -1, 3e-9})); got != "x[0.25,-1,3e-9]" {
		t.Errorf("AppendArray = %q", got)
	}
	if got := string(AppendArray(nil, nil)); got != "[]" {
		t.Errorf("AppendArray(nil) = %q", got)
	}
}

func FuzzAppend(f *testing.F) {
	for _, u := range []uint32{0, 1, 0x3f800000, 0x7f7fffff, 0x80000001, 0x33d6bf95} {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u uint32) {
		x := math.Float32frombits(u)
		if got, want := Append(nil, x), reference(nil, x); !bytes.Equal(got, want) {
			t.Errorf("Append(%#08x) = %q, want %q", u, got, want)
		}
	})
}

// embeddingValues is 1000 vectors 384 wide of the size embeddings have
// (different values every call, so the branch predictor cannot learn them).
func embeddingValues() [][]float32 {
	r := rand.New(rand.NewPCG(5, 6))
	vs := make([][]float32, 1000)
	for i := range vs {
		vs[i] = make([]float32, 384)
		for j := range vs[i] {
			vs[i][j] = float32(r.NormFloat64() * 0.05)
		}
	}
	return vs
}

// BenchmarkAppendArray writes a 384-wide embedding as this package, strconv
// and encoding/json do; ns/number is the figure to compare.
func BenchmarkAppendArray(b *testing.B) {
	vs := embeddingValues()
	buf := make([]byte, 0, 16384)
	var v []float32
	for _, c := range []struct {
		name string
		run  func() []byte
	}{
		{"ftoa", func() []byte { return AppendArray(buf[:0], v) }},
		{"strconv", func() []byte {
			buf := append(buf[:0], '[')
			for i, x := range v {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendFloat(buf, float64(x), 'f', -1, 32)
			}
			return append(buf, ']')
		}},
		{"encoding-json", func() []byte { out, _ := json.Marshal(v); return out }},
	} {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				v = vs[i%len(vs)]
				c.run()
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(v)), "ns/number")
		})
	}
}
