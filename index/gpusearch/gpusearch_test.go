package gpusearch

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
)

func TestNewWithoutCUDA(t *testing.T) {
	_, err := New(nil, 0)
	if !errors.Is(err, gpu.ErrNoCUDA) {
		t.Fatalf("New(nil, 0): %v, want an error wrapping gpu.ErrNoCUDA", err)
	}
	var b *Backend
	if err := b.Close(); err != nil {
		t.Fatalf("nil Close: %v", err)
	}
}

// loadGPU returns a Backend on device 0, or skips the test with why not.
func loadGPU(t *testing.T, opts ...Option) *Backend {
	t.Helper()
	lib, err := gpu.Load()
	if err != nil {
		t.Skipf("no GPU: %v", err)
	}
	t.Cleanup(func() {
		if err := lib.Close(); err != nil {
			t.Error(err)
		}
	})
	b, err := New(lib, 0, opts...)
	if err != nil {
		t.Fatalf("CUDA loaded but New failed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// testMatrix is a growing collection matrix: rows appended in place, as
// index does within a generation.
type testMatrix struct {
	id, gen uint64
	dim     int
	metric  flat.Metric
	data    []float32
	norms   []float32
	skip    []uint64
	// unit makes every appended row unit length, whatever the metric
	// (fp16 tests: unit-scale data); queries are then scaled to about 1.
	unit bool
	rng  *rand.Rand
}

func (m *testMatrix) appendRows(n int) {
	for range n {
		v := make([]float32, m.dim)
		var ss float64
		for j := range v {
			v[j] = m.rng.Float32()*2 - 1
			ss += float64(v[j]) * float64(v[j])
		}
		if m.metric == flat.Cosine || m.unit {
			for j := range v {
				v[j] = float32(float64(v[j]) / math.Sqrt(ss))
			}
			ss = 1
		}
		m.data = append(m.data, v...)
		m.norms = append(m.norms, float32(ss))
	}
}

func (m *testMatrix) deleteRandom(frac float64) {
	rows := len(m.data) / m.dim
	for len(m.skip) < (rows+63)/64 {
		m.skip = append(m.skip, 0)
	}
	for r := range rows {
		if m.rng.Float64() < frac {
			m.skip[r/64] |= 1 << (r % 64)
		}
	}
}

func (m *testMatrix) matrix() index.Matrix {
	rows := len(m.data) / m.dim
	return index.Matrix{
		Matrix:     flat.Matrix{Data: m.data, Dim: m.dim, Norms: m.norms},
		Collection: m.id, Generation: m.gen, Rows: rows,
	}
}

// compare searches m on b and with flat.Search and checks ids equal apart
// from exact ties and scores within 1e-4.
func compare(t *testing.T, b *Backend, m *testMatrix, nq, k int) {
	t.Helper()
	compareTol(t, b, m, nq, k, 1e-4)
}

// compareTol is compare with scores within tol of flat's. Above 1e-4 (fp16
// storage) rows may differ wherever scores are within tol: each returned
// row's score is checked against its exact score instead, and rows must
// be distinct.
func compareTol(t *testing.T, b *Backend, m *testMatrix, nq, k int, tol float64) {
	t.Helper()
	q := make([]float32, nq*m.dim)
	for i := range q {
		q[i] = m.rng.Float32()*2 - 1
		if m.unit {
			q[i] *= float32(math.Sqrt(3 / float64(m.dim))) // length about 1
		}
	}
	o := flat.Options{Metric: m.metric, Skip: m.skip}
	ctx := context.Background()
	tieTol := 0.0 // exact ties only (up to float32 summation order)
	if tol > 1e-4 {
		tieTol = tol // fp16: near-ties may swap
	}
	want, err := flat.Search(ctx, m.matrix().Matrix, q, k, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Search(ctx, m.matrix(), q, k, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d result lists, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("query %d: %d hits, want %d", i, len(got[i]), len(want[i]))
		}
		for j, w := range want[i] {
			g := got[i][j]
			if math.Abs(float64(g.Score-w.Score)) > tol {
				t.Fatalf("query %d rank %d: row %d score %v, want row %d score %v", i, j, g.Row, g.Score, w.Row, w.Score)
			}
			if g.Row != w.Row && g.Score != w.Score && math.Abs(float64(g.Score-w.Score)) > max(1e-6, tieTol) {
				t.Fatalf("query %d rank %d: row %d, want row %d (scores %v, %v)", i, j, g.Row, w.Row, g.Score, w.Score)
			}
			if isSkipped(m.skip, g.Row) {
				t.Fatalf("query %d rank %d: skipped row %d returned", i, j, g.Row)
			}
		}
		if tol > 1e-4 {
			seen := map[int]bool{}
			for j, g := range got[i] {
				if seen[g.Row] {
					t.Fatalf("query %d rank %d: row %d returned twice", i, j, g.Row)
				}
				seen[g.Row] = true
				if e := exactScore(m, q[i*m.dim:(i+1)*m.dim], g.Row); math.Abs(float64(g.Score)-e) > tol {
					t.Fatalf("query %d rank %d: row %d score %v, exact %v", i, j, g.Row, g.Score, e)
				}
			}
		}
	}
}

// exactScore is flat's score of row r for query q, in float64.
func exactScore(m *testMatrix, q []float32, r int) float64 {
	row := m.data[r*m.dim : (r+1)*m.dim]
	var dot, qq, d2 float64
	for j, x := range row {
		dot += float64(q[j]) * float64(x)
		qq += float64(q[j]) * float64(q[j])
		e := float64(q[j]) - float64(x)
		d2 += e * e
	}
	switch m.metric {
	case flat.Cosine:
		return dot / math.Sqrt(qq)
	case flat.L2:
		return d2
	}
	return dot
}

// TestFP16MatchesFlat: fp16 storage against flat.Search on unit-scale
// data (unit rows; queries of length about 1 for dot): scores within
// 1e-3, ids equal apart from near-ties, through appends, deletes and a
// new generation, for k = 1, 10 and 2,048.
func TestFP16MatchesFlat(t *testing.T) {
	b := loadGPU(t, WithFP16(true))
	if !b.FP16() {
		t.Fatal("WithFP16(true) not in effect")
	}
	for mi, metric := range []flat.Metric{flat.Cosine, flat.Dot, flat.L2} {
		t.Run(metric.String(), func(t *testing.T) {
			m := &testMatrix{id: uint64(300 + mi), gen: 1, dim: 384, metric: metric, unit: true, rng: rand.New(rand.NewPCG(3, uint64(mi)))}
			m.appendRows(6000)
			for _, k := range []int{1, 10, 2048} {
				compareTol(t, b, m, 9, k, 1e-3)
			}
			m.deleteRandom(0.3)
			compareTol(t, b, m, 4, 10, 1e-3)
			m.appendRows(2500)
			compareTol(t, b, m, 5, 100, 1e-3)
			m.gen, m.data, m.norms, m.skip = 2, nil, nil, nil
			m.appendRows(1000)
			compareTol(t, b, m, 300, 10, 1e-3)
		})
	}
	// A component beyond the half range fails the search, naming it.
	m := &testMatrix{id: 399, gen: 1, dim: 8, metric: flat.Dot, rng: rand.New(rand.NewPCG(4, 4))}
	m.appendRows(10)
	m.data[3] = 1e5
	_, err := b.Search(context.Background(), m.matrix(), make([]float32, 8), 1, flat.Options{Metric: flat.Dot})
	if err == nil {
		t.Fatal("fp16 search of a component of 1e5: no error")
	}
}

func TestMatchesFlat(t *testing.T) {
	b := loadGPU(t)
	for mi, metric := range []flat.Metric{flat.Cosine, flat.Dot, flat.L2} {
		t.Run(metric.String(), func(t *testing.T) {
			m := &testMatrix{id: uint64(100 + mi), gen: 1, dim: 96, metric: metric, rng: rand.New(rand.NewPCG(1, uint64(mi)))}
			m.appendRows(5000)
			for _, k := range []int{1, 10, 2048} {
				compare(t, b, m, 7, k)
			}
			m.deleteRandom(0.3) // deletes: masked on the device
			for _, k := range []int{1, 10, 2048} {
				compare(t, b, m, 3, k)
			}
			m.appendRows(3000) // appended between searches: copied incrementally
			compare(t, b, m, 5, 10)
			m.deleteRandom(0.5)
			compare(t, b, m, 5, 2048)
			// A filter that passes more rows than the last search.
			saved := m.skip
			m.skip = nil
			compare(t, b, m, 2, 10)
			m.skip = saved
			compare(t, b, m, 2, 10)
			// A new generation with fewer rows.
			m.gen, m.data, m.norms, m.skip = 2, nil, nil, nil
			m.appendRows(1500)
			compare(t, b, m, 4, 10)
			// More queries than one batch at a large n is covered by the
			// batch plan; here many queries at once.
			compare(t, b, m, 300, 10)
			// Fewer live rows than k.
			m.deleteRandom(0.999)
			compare(t, b, m, 2, 2048)
			b.Release(m.id)
			compare(t, b, m, 2, 10)
		})
	}
}

func TestReleaseFreesDeviceMemory(t *testing.T) {
	b := loadGPU(t)
	free0, _, err := b.dev.MemGetInfo()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		m := &testMatrix{id: uint64(1000 + i), gen: 1, dim: 64, metric: flat.Dot, rng: rand.New(rand.NewPCG(2, uint64(i)))}
		m.appendRows(20000)
		compare(t, b, m, 2, 10)
		b.Release(m.id)
	}
	free1, _, err := b.dev.MemGetInfo()
	if err != nil {
		t.Fatal(err)
	}
	// Scratch buffers stay allocated; collection copies must not pile up.
	if free0 > free1 && free0-free1 > 64<<20 {
		t.Fatalf("device memory free fell from %d to %d", free0, free1)
	}
}
