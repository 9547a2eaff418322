package gpusearch

import (
	"math"
	"slices"
	"testing"

	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index/flat"
)

func TestPlanUpload(t *testing.T) {
	for _, c := range []struct {
		name    string
		haveGen uint64
		have    int
		gen     uint64
		rows    int
		want    upload
	}{
		{"first", 0, 0, 1, 100, upload{Reset: true, From: 0, To: 100}},
		{"first empty", 0, 0, 1, 0, upload{Reset: true}},
		{"appended", 1, 100, 1, 150, upload{From: 100, To: 150}},
		{"unchanged", 1, 100, 1, 100, upload{From: 100, To: 100}},
		{"older snapshot", 1, 100, 1, 60, upload{From: 100, To: 100}},
		{"new generation", 1, 100, 2, 40, upload{Reset: true, From: 0, To: 40}},
		{"new generation larger", 1, 100, 2, 400, upload{Reset: true, From: 0, To: 400}},
	} {
		if got := planUpload(c.haveGen, c.have, c.gen, c.rows); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestUploadSequence replays appends and compactions against a model of the
// device copy: after each step the copy equals the snapshot's rows.
func TestUploadSequence(t *testing.T) {
	var dev []int // row values held, standing for the device copy
	var devGen uint64
	host := map[uint64][]int{}
	steps := []struct {
		gen  uint64
		rows int
	}{{1, 3}, {1, 3}, {1, 10}, {1, 7}, {1, 2000}, {2, 5}, {2, 6}, {3, 0}, {3, 4}}
	for _, s := range steps {
		h := host[s.gen]
		for len(h) < s.rows {
			h = append(h, int(s.gen)*1_000_000+len(h))
		}
		host[s.gen] = h
		up := planUpload(devGen, len(dev), s.gen, s.rows)
		if up.Reset {
			dev, devGen = nil, s.gen
		}
		if up.From != len(dev) && up.To > up.From {
			t.Fatalf("step %+v: copy from %d with %d rows held", s, up.From, len(dev))
		}
		dev = append(dev, h[up.From:up.To]...)
		if len(dev) < s.rows || !slices.Equal(dev[:s.rows], h[:s.rows]) {
			t.Fatalf("step %+v: device copy %v…, want prefix %v…", s, dev[:min(5, len(dev))], h[:min(5, s.rows)])
		}
	}
}

func TestGrownCap(t *testing.T) {
	for _, c := range [][3]int{{0, 1, 1024}, {1024, 1000, 1024}, {1024, 1025, 2048}, {2048, 10000, 10000}, {0, 5000, 5000}} {
		if got := grownCap(c[0], c[1]); got != c[2] {
			t.Errorf("grownCap(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestAnySkipped(t *testing.T) {
	skip := []uint64{0, 1 << 5} // row 69
	for n, want := range map[int]bool{0: false, 64: false, 69: false, 70: true, 128: true, 500: true} {
		if got := anySkipped(skip, n); got != want {
			t.Errorf("anySkipped(rows %d) = %v", n, got)
		}
	}
	if anySkipped(nil, 100) {
		t.Error("nil bitmap skips")
	}
}

// TestMaskDiffModel checks maskDiff against the bias it maintains: after
// applying each diff to a model of the device bias, it equals the bias
// computed from scratch for the rows searched.
func TestMaskDiffModel(t *testing.T) {
	bit := func(skip []uint64, r int) bool { return isSkipped(skip, r) }
	var devBias []bool // true: masked
	var last []uint64
	valid := 0
	set := func(skip []uint64, rows ...int) []uint64 {
		skip = slices.Clone(skip)
		for _, r := range rows {
			for len(skip) <= r/64 {
				skip = append(skip, 0)
			}
			skip[r/64] |= 1 << (r % 64)
		}
		return skip
	}
	steps := []struct {
		n      int
		skip   []uint64
		wantLo int
		wantHi int
	}{
		{100, nil, 0, 100},
		{100, nil, 0, 0},
		{100, set(nil, 70), 64, 100},
		{130, set(nil, 70), 100, 130},
		{130, set(nil, 3, 70, 129), 0, 130},
		{130, set(nil, 3, 70, 129), 0, 0},
		{90, set(nil, 3), 64, 90}, // an older snapshot: fewer rows, row 70 not deleted yet
		{130, set(nil, 3, 70, 129), 64, 128},
		{130, nil, 0, 130},
		// A filter (bits come and go) on an older, shorter snapshot must
		// not record bits of rows it did not recompute.
		{130, set(nil, 100), 64, 128},
		{90, nil, 0, 0},
		{130, nil, 64, 128},
	}
	for i, s := range steps {
		lo, hi := maskDiff(last, s.skip, valid, s.n)
		if lo != s.wantLo || hi != s.wantHi {
			t.Errorf("step %d: maskDiff = [%d, %d), want [%d, %d)", i, lo, hi, s.wantLo, s.wantHi)
		}
		for len(devBias) < hi {
			devBias = append(devBias, false)
		}
		for r := lo; r < hi; r++ {
			devBias[r] = bit(s.skip, r)
		}
		last = applyMask(last, s.skip, lo, hi)
		valid = max(valid, hi)
		for r := range s.n {
			if devBias[r] != bit(s.skip, r) {
				t.Fatalf("step %d: row %d masked %v, want %v", i, r, devBias[r], bit(s.skip, r))
			}
		}
	}
}

func TestBatchSize(t *testing.T) {
	const dim = 384
	// Small: everything in one batch.
	if got := batchSize(10, 1000, 10, dim, scratchBudget, stagingBytes); got != 10 {
		t.Errorf("small: %d", got)
	}
	// 1M rows: 4 MB of scores per query bound the batch by the budget.
	n, k := 1_000_000, 10
	got := batchSize(1024, n, k, dim, scratchBudget, stagingBytes)
	per := 4*n + gpu.TopKScratchBytes(1, n, k) + 8*k
	if got < 1 || got*per > scratchBudget || (got+1)*per <= scratchBudget {
		t.Errorf("1M rows: batch %d with %d bytes a query", got, per)
	}
	// A query's scores larger than the budget still get a batch of one.
	if got := batchSize(5, 100_000_000, 10, dim, scratchBudget, stagingBytes); got != 1 {
		t.Errorf("huge: %d", got)
	}
	// Staging bounds queries and results; the kernel bounds q.
	if got := batchSize(1_000_000, 10, 2048, 4096, 1<<40, stagingBytes); got != min(stagingBytes/(4*4096), stagingBytes/(8*2048)) {
		t.Errorf("staging: %d", got)
	}
	if got := batchSize(1_000_000, 10, 1, 1, 1<<40, 1<<40); got != 65535 {
		t.Errorf("grid limit: %d", got)
	}
	if b := batches(10, 4); !slices.Equal(b, [][2]int{{0, 4}, {4, 8}, {8, 10}}) {
		t.Errorf("batches: %v", b)
	}
	if b := batches(8, 4); !slices.Equal(b, [][2]int{{0, 4}, {4, 8}}) {
		t.Errorf("batches: %v", b)
	}
}

func TestFinish(t *testing.T) {
	m := flat.Matrix{Dim: 2, Data: []float32{0, 0, 1, 0, 3, 0, 2, 0}}
	inf := float32(math.Inf(-1))
	c := []candidate{{2, 5}, {1, 1}, {3, 0}, {0, inf}, {-1, inf}}
	skip := []uint64{1 << 3}
	got := finish(c, m, []float32{1, 0}, flat.Options{Metric: flat.Dot, Skip: skip})
	want := []flat.Hit{{Row: 2, Score: 5}, {Row: 1, Score: 1}, {Row: 0, Score: inf}}
	if !slices.Equal(got, want) {
		t.Errorf("dot: %v, want %v", got, want)
	}
	// L2: distances recomputed from the vectors and re-sorted, ties by row.
	got = finish([]candidate{{2, 0}, {0, 0}, {1, 0}, {3, 0}}, m, []float32{1.5, 0}, flat.Options{Metric: flat.L2, Skip: skip})
	want = []flat.Hit{{Row: 1, Score: 0.25}, {Row: 0, Score: 2.25}, {Row: 2, Score: 2.25}}
	if !slices.Equal(got, want) {
		t.Errorf("l2: %v, want %v", got, want)
	}
}

func TestPrepareQueries(t *testing.T) {
	q, err := prepareQueries([]float32{3, 4, 0, 2}, 2, flat.Cosine)
	if err != nil || !slices.Equal(q, []float32{0.6, 0.8, 0, 1}) {
		t.Fatalf("%v %v", q, err)
	}
	if _, err := prepareQueries([]float32{0, 0}, 2, flat.Cosine); err == nil {
		t.Error("zero cosine query accepted")
	}
	if _, err := prepareQueries([]float32{float32(math.NaN()), 0}, 2, flat.Dot); err == nil {
		t.Error("NaN accepted")
	}
	in := []float32{3, 4}
	if q, _ := prepareQueries(in, 2, flat.Dot); !slices.Equal(q, in) || &q[0] == &in[0] {
		t.Error("dot queries not copied unchanged")
	}
}
