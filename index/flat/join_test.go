package flat

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// naiveScore is the float64 dot product of rows i of a and j of b.
func naiveScore(a, b Matrix, i, j int) float64 {
	var s float64
	for d := range a.Dim {
		s += float64(a.Data[i*a.Dim+d]) * float64(b.Data[j*b.Dim+d])
	}
	return s
}

func unitMatrix(seed uint64, n, dim int) Matrix {
	data := randVecs(rand.New(rand.NewPCG(seed, 7)), n, dim)
	for i := range n {
		normalize(data[i*dim : (i+1)*dim])
	}
	return Matrix{Data: data, Dim: dim}
}

// checkTopK compares hits with the naive K best partners of each row
// (scores within 1e-5; a row may differ where scores tie that closely).
func checkTopK(t *testing.T, a, b Matrix, self bool, k int, got [][]Hit) {
	t.Helper()
	na, nb := len(a.Data)/a.Dim, len(b.Data)/b.Dim
	if len(got) != na {
		t.Fatalf("%d rows of hits, want %d", len(got), na)
	}
	for i := range na {
		var want []Hit
		for j := range nb {
			if self && j == i {
				continue
			}
			want = append(want, Hit{Row: j, Score: float32(naiveScore(a, b, i, j))})
		}
		slices.SortStableFunc(want, func(x, y Hit) int {
			if x.Score != y.Score {
				if x.Score > y.Score {
					return -1
				}
				return 1
			}
			return x.Row - y.Row
		})
		want = want[:min(k, len(want))]
		if len(got[i]) != len(want) {
			t.Fatalf("row %d: %d hits, want %d", i, len(got[i]), len(want))
		}
		for h := range want {
			g, w := got[i][h], want[h]
			if math.Abs(float64(g.Score-w.Score)) > 1e-5 {
				t.Fatalf("row %d hit %d: %+v, want %+v", i, h, g, w)
			}
			if g.Row != w.Row && math.Abs(naiveScore(a, b, i, g.Row)-float64(w.Score)) > 1e-5 {
				t.Fatalf("row %d hit %d: row %d, want %d (scores %g, %g)", i, h, g.Row, w.Row, g.Score, w.Score)
			}
		}
	}
}

func TestSelfJoinTopKMatchesNaive(t *testing.T) {
	for _, k := range kernels {
		for _, tc := range []struct{ n, dim, k, block int }{
			{1, 8, 3, 0}, {5, 3, 10, 4}, {203, 37, 5, 16}, {301, 384, 10, 0}, {130, 16, 7, 8},
		} {
			t.Run(fmt.Sprintf("%s/n=%d/dim=%d/k=%d", k.name, tc.n, tc.dim, tc.k), func(t *testing.T) {
				defer func(old kernel) { active = old }(active)
				active = k
				m := unitMatrix(uint64(tc.n), tc.n, tc.dim)
				got, err := SelfJoin(context.Background(), m, JoinOptions{Metric: Cosine, K: tc.k, BlockRows: tc.block, Workers: 3})
				if err != nil {
					t.Fatal(err)
				}
				checkTopK(t, m, m, true, tc.k, got)
			})
		}
	}
}

func TestJoinTopKMatchesNaive(t *testing.T) {
	a, b := unitMatrix(1, 77, 19), unitMatrix(2, 131, 19)
	got, err := Join(context.Background(), a, b, JoinOptions{Metric: Dot, K: 6, BlockRows: 12, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkTopK(t, a, b, false, 6, got)
}

func TestJoinRowsByBlock(t *testing.T) {
	a, b := unitMatrix(7, 90, 11), unitMatrix(8, 60, 11)
	var mu sync.Mutex
	got := make([][]Hit, 90)
	o := JoinOptions{Metric: Dot, K: 5, BlockRows: 16, SkipBlock: func(blk int) bool { return blk == 2 }}
	o.Rows = func(blk, first int, hits [][]Hit) error {
		mu.Lock()
		defer mu.Unlock()
		if first != blk*16 {
			t.Errorf("block %d starts at row %d", blk, first)
		}
		copy(got[first:], hits)
		return nil
	}
	if res, err := Join(context.Background(), a, b, o); err != nil || res != nil {
		t.Fatalf("Join with Rows: %v, %v; want nil, nil", len(res), err)
	}
	for i := 32; i < 48; i++ {
		if got[i] != nil {
			t.Fatalf("row %d of the skipped block came back", i)
		}
		got[i] = []Hit{}
	}
	full, err := Join(context.Background(), a, b, JoinOptions{Metric: Dot, K: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if i >= 32 && i < 48 {
			continue
		}
		if !slices.Equal(got[i], full[i]) {
			t.Fatalf("row %d: %v by block, %v at once", i, got[i], full[i])
		}
	}
	if _, err := SelfJoin(context.Background(), a, o); err == nil {
		t.Fatal("SelfJoin with Rows: no error")
	}
}

// collectPairs runs a threshold join and returns its pairs by block.
func collectPairs(t *testing.T, a, b Matrix, self bool, o JoinOptions) (map[int][]Pair, map[int]bool) {
	t.Helper()
	var mu sync.Mutex
	blocks, trunc := map[int][]Pair{}, map[int]bool{}
	o.Pairs = func(blk int, ps []Pair, tr bool) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := blocks[blk]; dup {
			t.Errorf("block %d sent twice", blk)
		}
		blocks[blk], trunc[blk] = slices.Clone(ps), tr
		return nil
	}
	var err error
	if self {
		_, err = SelfJoin(context.Background(), a, o)
	} else {
		_, err = Join(context.Background(), a, b, o)
	}
	if err != nil {
		t.Fatal(err)
	}
	return blocks, trunc
}

func TestThresholdJoinMatchesNaive(t *testing.T) {
	const thr = 0.35
	for _, self := range []bool{true, false} {
		a, b := unitMatrix(3, 157, 6), unitMatrix(4, 89, 6)
		if self {
			b = a
		}
		o := JoinOptions{Metric: Cosine, Threshold: thr, BlockRows: 20, Workers: 2}
		blocks, _ := collectPairs(t, a, b, self, o)
		if len(blocks) != o.Blocks(157, 6) {
			t.Fatalf("self=%v: %d blocks, want %d", self, len(blocks), o.Blocks(157, 6))
		}
		var got []Pair
		for blk := range len(blocks) {
			ps := blocks[blk]
			if !slices.IsSortedFunc(ps, func(x, y Pair) int {
				if x.A != y.A {
					return x.A - y.A
				}
				return x.B - y.B
			}) {
				t.Fatalf("block %d not sorted", blk)
			}
			for _, p := range ps {
				if p.A/20 != blk {
					t.Fatalf("pair %+v in block %d", p, blk)
				}
			}
			got = append(got, ps...)
		}
		var want []Pair
		for i := range len(a.Data) / a.Dim {
			for j := range len(b.Data) / b.Dim {
				if self && j <= i {
					continue
				}
				if s := naiveScore(a, b, i, j); s >= thr {
					want = append(want, Pair{A: i, B: j, Score: float32(s)})
				}
			}
		}
		if len(got) != len(want) || len(want) < 100 {
			t.Fatalf("self=%v: %d pairs, want %d (at least 100)", self, len(got), len(want))
		}
		for i := range want {
			if got[i].A != want[i].A || got[i].B != want[i].B || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
				t.Fatalf("self=%v: pair %d is %+v, want %+v", self, i, got[i], want[i])
			}
		}
	}
}

func TestThresholdJoinCapsAndSkips(t *testing.T) {
	m := unitMatrix(5, 100, 4)
	// Blocks of 12 rows (10 rounded up to 4s); the last, rows 96-99, has
	// only 6 pairs.
	o := JoinOptions{Metric: Dot, Threshold: -2, BlockRows: 10, MaxBlockPairs: 7, SkipBlock: func(b int) bool { return b%2 == 1 }}
	blocks, trunc := collectPairs(t, m, m, true, o)
	if n := o.Blocks(100, 4); n != 9 {
		t.Fatalf("%d blocks, want 9", n)
	}
	if ps := blocks[8]; len(ps) != 6 || trunc[8] {
		t.Fatalf("last block: %d pairs, truncated %v; want 6, false", len(ps), trunc[8])
	}
	for blk := range 8 {
		ps, ok := blocks[blk]
		if ok == (blk%2 == 1) {
			t.Fatalf("block %d: sent %v", blk, ok)
		}
		if ok && (len(ps) != 7 || !trunc[blk]) {
			t.Fatalf("block %d: %d pairs, truncated %v; want 7, true", blk, len(ps), trunc[blk])
		}
	}
}

func TestJoinCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SelfJoin(ctx, unitMatrix(6, 50, 8), JoinOptions{Metric: Dot, K: 2}); err != context.Canceled {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}
