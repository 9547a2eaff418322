package gpusearch

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index/flat"
)

func TestFitsResidentAndChunkRows(t *testing.T) {
	if !fitsResident(1000, 384, 4, 1000*(384*4+4)) || fitsResident(1001, 384, 4, 1000*(384*4+4)) {
		t.Fatal("fitsResident: wrong at the boundary")
	}
	if !fitsResident(1990, 384, 2, 1000*(384*4+4)) {
		t.Fatal("fitsResident: fp16 takes about half")
	}
	if !fitsResident(0, 384, 4, 0) {
		t.Fatal("fitsResident: an empty copy fits any budget")
	}
	for _, c := range []struct {
		dim, elem, maxBytes int
		budget              int64
		want                int
	}{
		{384, 4, 64 << 20, 1 << 40, (64 << 20) / (384*4 + 4)},
		{384, 2, 64 << 20, 1 << 40, (64 << 20) / (384*2 + 4)},
		{100, 4, 64 << 20, 2 * 404 * 10, 10}, // the budget holds two chunks of 10
		{100, 4, 64 << 20, 1, 1},             // at least one row
		{100, 4, 10, 1 << 40, 1},
	} {
		if got := chunkRows(c.dim, c.elem, c.maxBytes, c.budget); got != c.want {
			t.Errorf("chunkRows(%d, %d, %d, %d) = %d, want %d", c.dim, c.elem, c.maxBytes, c.budget, got, c.want)
		}
	}
}

func TestMergeTop(t *testing.T) {
	a := []candidate{{5, 3}, {1, 2}, {7, 2}, {0, -1}}
	b := []candidate{{2, 3}, {3, 2}, {9, 1}}
	got := mergeTop(a, b, 5)
	want := []candidate{{2, 3}, {5, 3}, {1, 2}, {3, 2}, {7, 2}}
	if len(got) != len(want) {
		t.Fatalf("mergeTop = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("mergeTop = %v, want %v", got, want)
		}
	}
	if got := mergeTop(nil, b, 10); len(got) != 3 {
		t.Fatalf("mergeTop(nil, b, 10) = %v", got)
	}
	if got := mergeTop(a, nil, 0); len(got) != 0 {
		t.Fatalf("mergeTop(a, nil, 0) = %v", got)
	}
	if got := chunkCandidates([]candidate{{0, 1}, {3, 0.5}, {-1, 0}}, 100); len(got) != 2 || got[0].row != 100 || got[1].row != 103 {
		t.Fatalf("chunkCandidates = %v", got)
	}
}

// TestStreamedMergeMatchesFlat models a streamed search on the CPU: the
// matrix is split into chunks (chunkRows rows each, batches), each chunk
// searched alone (flat.Search standing in for the device GEMM and top-k,
// with k capped at the chunk's rows and padding as the device returns
// it), and the chunks' answers merged with mergeTop in chunk order. Small
// integer components make every score exact in float32, so ties are many
// and exact: the merge must give flat's answer on the whole matrix, ids
// and scores, ties by smaller row.
func TestStreamedMergeMatchesFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ctx := context.Background()
	for trial := range 40 {
		dim := 1 + rng.IntN(8)
		n := 1 + rng.IntN(700)
		nq := 1 + rng.IntN(4)
		k := 1 + rng.IntN(60)
		metric := []flat.Metric{flat.Dot, flat.L2}[rng.IntN(2)]
		data := make([]float32, n*dim)
		for i := range data {
			data[i] = float32(rng.IntN(3) - 1)
		}
		norms := make([]float32, n)
		for r := range n {
			for _, x := range data[r*dim : (r+1)*dim] {
				norms[r] += x * x
			}
		}
		q := make([]float32, nq*dim)
		for i := range q {
			q[i] = float32(rng.IntN(5) - 2)
		}
		m := flat.Matrix{Data: data, Dim: dim, Norms: norms}
		want, err := flat.Search(ctx, m, q, k, flat.Options{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		rows := chunkRows(dim, 4, (1+rng.IntN(100))*(dim*4+4), 1<<40)
		acc := make([][]candidate, nq)
		for _, ch := range batches(n, rows) {
			sub := flat.Matrix{Data: data[ch[0]*dim : ch[1]*dim], Dim: dim, Norms: norms[ch[0]:ch[1]]}
			kk := min(k, ch[1]-ch[0])
			part, err := flat.Search(ctx, sub, q, kk, flat.Options{Metric: metric})
			if err != nil {
				t.Fatal(err)
			}
			for i, hs := range part {
				dev := make([]candidate, kk)
				for j := range dev {
					dev[j] = candidate{row: -1}
				}
				for j, h := range hs {
					s := h.Score
					if metric == flat.L2 {
						s = -s // the device ranks by a score, best highest
					}
					dev[j] = candidate{row: int32(h.Row), score: s}
				}
				acc[i] = mergeTop(acc[i], chunkCandidates(dev, ch[0]), k)
			}
		}
		for i := range want {
			if len(acc[i]) != len(want[i]) {
				t.Fatalf("trial %d query %d: %d hits, want %d", trial, i, len(acc[i]), len(want[i]))
			}
			for j, w := range want[i] {
				g := acc[i][j]
				s := g.score
				if metric == flat.L2 {
					s = -s
				}
				if int(g.row) != w.Row || s != w.Score {
					t.Fatalf("trial %d (n %d, chunk %d, k %d, %v) query %d rank %d: row %d score %v, want row %d score %v",
						trial, n, rows, k, metric, i, j, g.row, s, w.Row, w.Score)
				}
			}
		}
	}
}

// TestStreamedMatchesFlat (GPU): with a 1 MiB device budget, collections
// of a few MB are streamed in chunks (several of them; k = 2,048 spans
// chunks) and must give flat's answer, fp32 (scores within 1e-4) and fp16
// (within 1e-3), through deletes and appends; a collection that fit and
// then grew past the budget moves from resident to streamed.
func TestStreamedMatchesFlat(t *testing.T) {
	if lib, err := gpu.Load(); err != nil {
		t.Skipf("no GPU: %v", err)
	} else if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	for _, fp16 := range []bool{false, true} {
		t.Run(map[bool]string{false: "fp32", true: "fp16"}[fp16], func(t *testing.T) {
			b := loadGPU(t, WithFP16(fp16), WithDeviceBudget(1<<20))
			tol := 1e-4
			if fp16 {
				tol = 1e-3
			}
			const dim = 96
			if rows := chunkRows(dim, b.elem(), streamChunkBytes, b.budget); rows >= 3500 {
				t.Fatalf("chunk of %d rows: the test wants several chunks", rows)
			}
			for mi, metric := range []flat.Metric{flat.Cosine, flat.Dot, flat.L2} {
				m := &testMatrix{id: uint64(500 + mi), gen: 1, dim: dim, metric: metric, unit: fp16, rng: rand.New(rand.NewPCG(6, uint64(mi)))}
				m.appendRows(1000) // fits: resident
				compareTol(t, b, m, 3, 10, tol)
				if _, ok := b.cols[m.id]; !ok {
					t.Fatal("a collection within the budget is not resident")
				}
				m.appendRows(6000) // beyond: streamed
				for _, k := range []int{1, 10, 2048} {
					compareTol(t, b, m, 7, k, tol)
				}
				if _, ok := b.cols[m.id]; ok {
					t.Fatal("a collection beyond the budget is still resident")
				}
				m.deleteRandom(0.4)
				compareTol(t, b, m, 5, 100, tol)
				compareTol(t, b, m, 600, 10, tol)
				m.deleteRandom(0.9995)
				compareTol(t, b, m, 2, 2048, tol)
			}
		})
	}
}
