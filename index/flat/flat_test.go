package flat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// fixture is a matrix with its norms and rows of unit length, so that all
// three metrics apply to it.
func fixture(rng *rand.Rand, n, dim int) Matrix {
	data := randVecs(rng, n, dim)
	for i := range n {
		normalize(data[i*dim : (i+1)*dim])
	}
	return withNorms(data, dim)
}

func withNorms(data []float32, dim int) Matrix {
	n := len(data) / dim
	norms := make([]float32, n)
	for i := range n {
		var s float64
		for _, x := range data[i*dim : (i+1)*dim] {
			s += float64(x) * float64(x)
		}
		norms[i] = float32(s)
	}
	return Matrix{Data: data, Dim: dim, Norms: norms}
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}

// refScores is the float64 reference: every row's score for the query
// (similarity, or squared distance for L2).
func refScores(m Matrix, query []float32, metric Metric) []float64 {
	dim := m.Dim
	q := make([]float64, dim)
	var qq float64
	for i, x := range query {
		q[i] = float64(x)
		qq += q[i] * q[i]
	}
	if metric == Cosine {
		for i := range q {
			q[i] /= math.Sqrt(qq)
		}
	}
	out := make([]float64, len(m.Data)/dim)
	for r := range out {
		var s float64
		for i, x := range m.Data[r*dim : (r+1)*dim] {
			if metric == L2 {
				d := q[i] - float64(x)
				s += d * d
			} else {
				s += q[i] * float64(x)
			}
		}
		out[r] = s
	}
	return out
}

// refSearch is the straightforward exact search in float64: every row
// that is not skipped, best first, and every row's score.
func refSearch(m Matrix, query []float32, o Options) (ranked []Hit, scores []float64) {
	scores = refScores(m, query, o.Metric)
	var rows []int
	for r := range scores {
		if !skipped(o.Skip, r) {
			rows = append(rows, r)
		}
	}
	slices.SortStableFunc(rows, func(a, b int) int {
		sa, sb := scores[a], scores[b]
		if o.Metric == L2 {
			sa, sb = -sa, -sb
		}
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return a - b
	})
	ranked = make([]Hit, len(rows))
	for i, r := range rows {
		ranked[i] = Hit{Row: r, Score: float32(scores[r])}
	}
	return ranked, scores
}

// refTop is the reference's k best hits.
func refTop(m Matrix, query []float32, k int, o Options) []Hit {
	ranked, _ := refSearch(m, query, o)
	return ranked[:min(k, len(ranked))]
}

// tolerance is the absolute score error allowed for a query: 1e-5 relative
// to |q|·max|r| for similarities and to max(|q|,|r|)² for distances.
func tolerance(m Matrix, query []float32, metric Metric) float64 {
	var qq, rr float64
	for _, x := range query {
		qq += float64(x) * float64(x)
	}
	if metric == Cosine {
		qq = 1
	}
	for _, x := range m.Norms {
		rr = math.Max(rr, float64(x))
	}
	if metric == L2 {
		return 1e-5 * math.Max(1, math.Max(qq, rr))
	}
	return 1e-5 * math.Max(1e-3, math.Sqrt(qq*rr))
}

// checkHits checks got against the reference want (the expected hits) and
// ref (every row's reference score; nil to compute it): same length, scores
// rank by rank within tolerance, every returned row's reference score
// matching its reported score, no row twice or skipped, best first with
// ties by row.
func checkHits(t *testing.T, label string, m Matrix, query []float32, got, want []Hit, ref []float64, o Options) {
	t.Helper()
	tol := tolerance(m, query, o.Metric)
	if len(got) != len(want) {
		t.Fatalf("%s: %d hits, want %d", label, len(got), len(want))
	}
	if ref == nil {
		ref = refScores(m, query, o.Metric)
	}
	seen := map[int]bool{}
	for i, h := range got {
		if math.Abs(float64(h.Score)-float64(want[i].Score)) > tol {
			t.Fatalf("%s: rank %d: score %v (row %d), want %v (row %d)", label, i, h.Score, h.Row, want[i].Score, want[i].Row)
		}
		if math.Abs(float64(h.Score)-ref[h.Row]) > tol {
			t.Fatalf("%s: rank %d: row %d reported %v, its score is %v", label, i, h.Row, h.Score, ref[h.Row])
		}
		if seen[h.Row] || skipped(o.Skip, h.Row) {
			t.Fatalf("%s: row %d returned twice or skipped", label, h.Row)
		}
		seen[h.Row] = true
		if i > 0 {
			p := got[i-1]
			worse := h.Score < p.Score
			if o.Metric == L2 {
				worse = h.Score > p.Score
			}
			if !worse && !(h.Score == p.Score && h.Row > p.Row) {
				t.Fatalf("%s: ranks %d, %d out of order: %+v, %+v", label, i-1, i, p, h)
			}
		}
	}
}

func TestSearchMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type tc struct{ n, dim, nq int }
	cases := []tc{{1, 1, 1}, {7, 1, 3}, {1003, 1, 17}, {10, 3, 3}, {517, 3, 17}, {1003, 384, 1}, {1003, 384, 17}, {650, 385, 3}, {130, 768, 17}, {37, 768, 1}}
	if !testing.Short() {
		cases = append(cases, tc{300, 384, 1024}, tc{200, 768, 1024})
	}
	for _, c := range cases {
		m := fixture(rng, c.n, c.dim)
		queries := randVecs(rng, c.nq, c.dim)
		for _, metric := range []Metric{Cosine, Dot, L2} {
			o := Options{Metric: metric}
			ranked := make([][]Hit, c.nq)
			scores := make([][]float64, c.nq)
			for i := range c.nq {
				ranked[i], scores[i] = refSearch(m, queries[i*c.dim:(i+1)*c.dim], o)
			}
			for _, k := range []int{1, 10, c.n, c.n + 5} {
				got, err := Search(context.Background(), m, queries, k, o)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != c.nq {
					t.Fatalf("%d result lists for %d queries", len(got), c.nq)
				}
				for i := range c.nq {
					q := queries[i*c.dim : (i+1)*c.dim]
					label := fmt.Sprintf("n=%d dim=%d Q=%d %v k=%d query %d", c.n, c.dim, c.nq, metric, k, i)
					checkHits(t, label, m, q, got[i], ranked[i][:min(k, c.n)], scores[i], o)
				}
			}
		}
	}
}

// TestSearchUnnormalizedDot checks Dot and L2 on rows that are not unit
// length, where the L2 key q·r - |r|²/2 differs from the dot product.
func TestSearchUnnormalizedDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := randVecs(rng, 801, 33)
	for i := range data {
		data[i] *= float32(1 + i%7)
	}
	m := withNorms(data, 33)
	queries := randVecs(rng, 5, 33)
	for _, metric := range []Metric{Dot, L2} {
		o := Options{Metric: metric, Workers: 3}
		got, err := Search(context.Background(), m, queries, 20, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			q := queries[i*33 : (i+1)*33]
			checkHits(t, fmt.Sprintf("%v query %d", metric, i), m, q, got[i], refTop(m, q, 20, o), nil, o)
		}
	}
}

// TestSearchTies uses a matrix of a few distinct rows repeated many times:
// equal rows score exactly the same and must come back by ascending row.
func TestSearchTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, dim := range []int{3, 384} {
		pool := fixture(rng, 5, dim)
		n := 1001
		data := make([]float32, n*dim)
		for r := range n {
			copy(data[r*dim:], pool.Data[rng.IntN(5)*dim:][:dim])
		}
		m := withNorms(data, dim)
		queries := randVecs(rng, 6, dim)
		for _, metric := range []Metric{Cosine, Dot, L2} {
			for _, k := range []int{1, 7, 300, n} {
				o := Options{Metric: metric}
				got, err := Search(context.Background(), m, queries, k, o)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 6 {
					q := queries[i*dim : (i+1)*dim]
					want := refTop(m, q, k, o)
					label := fmt.Sprintf("dim %d %v k=%d query %d", dim, metric, k, i)
					checkHits(t, label, m, q, got[i], want, nil, o)
					for j := range got[i] {
						if got[i][j].Row != want[j].Row {
							t.Fatalf("%s: rank %d is row %d, want row %d", label, j, got[i][j].Row, want[j].Row)
						}
					}
				}
			}
		}
	}
}

func TestSearchSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, dim = 2100, 16
	m := fixture(rng, n, dim)
	queries := randVecs(rng, 5, dim)
	random := make([]uint64, (n+63)/64)
	for i := range random {
		random[i] = rng.Uint64()
	}
	// Rows 0..1999 skipped: whole row blocks are passed over.
	most := make([]uint64, (n+63)/64)
	for r := range 2000 {
		most[r/64] |= 1 << (r % 64)
	}
	all := slices.Repeat([]uint64{math.MaxUint64}, (n+63)/64)
	for _, tc := range []struct {
		name string
		skip []uint64
		hits int
	}{
		{"random", random, 10},
		{"short bitmap", random[:3], 10},
		{"most", most, 10},
		{"all but 100, k=n", most, -100},
		{"all", all, 0},
	} {
		for _, metric := range []Metric{Cosine, L2} {
			o := Options{Metric: metric, Skip: tc.skip}
			k := 10
			if tc.hits < 0 {
				k = n
			}
			got, err := Search(context.Background(), m, queries, k, o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				q := queries[i*dim : (i+1)*dim]
				if want := max(tc.hits, -tc.hits); len(got[i]) != want {
					t.Fatalf("%s: %d hits, want %d", tc.name, len(got[i]), want)
				}
				checkHits(t, tc.name, m, q, got[i], refTop(m, q, k, o), nil, o)
			}
		}
	}
}

func TestAllSkipped(t *testing.T) {
	skip := []uint64{math.MaxUint64, math.MaxUint64 &^ (1 << 5), math.MaxUint64}
	for _, tc := range []struct {
		b0, b1 int
		want   bool
	}{
		{0, 64, true}, {0, 69, true}, {0, 70, false}, {70, 192, true}, {60, 69, true},
		{100, 193, false}, {128, 192, true}, {191, 192, true},
	} {
		if got := allSkipped(skip, tc.b0, tc.b1); got != tc.want {
			t.Errorf("allSkipped(%d, %d) = %v, want %v", tc.b0, tc.b1, got, tc.want)
		}
	}
}

// TestKernelsAgree runs whole searches on every kernel this CPU has and
// compares them with the pure-Go kernel: same rows, scores within 1e-5
// relative.
func TestKernelsAgree(t *testing.T) {
	defer func(k kernel) { active = k }(active)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dim := range []int{1, 3, 384, 385, 768} {
		m := fixture(rng, 403, dim)
		queries := randVecs(rng, 17, dim)
		for _, metric := range []Metric{Cosine, Dot, L2} {
			o := Options{Metric: metric}
			active = goKernel
			want, err := Search(context.Background(), m, queries, 25, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range kernels {
				active = k
				got, err := Search(context.Background(), m, queries, 25, o)
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					q := queries[i*dim : (i+1)*dim]
					checkHits(t, fmt.Sprintf("%s dim %d %v query %d", k.name, dim, metric, i), m, q, got[i], want[i], nil, o)
				}
			}
		}
	}
}

// lateCancel is a context whose Err reports nothing on the first call (the
// check Search makes on entry) and Canceled after; Done is closed from the
// start, so the workers see the cancellation between chunks.
type lateCancel struct {
	context.Context
	calls atomic.Int32
	done  chan struct{}
}

func (c *lateCancel) Done() <-chan struct{} { return c.done }

func (c *lateCancel) Err() error {
	if c.calls.Add(1) == 1 {
		return nil
	}
	return context.Canceled
}

func TestSearchCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	m := fixture(rng, 5000, 64)
	queries := randVecs(rng, 3, 64)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Search(ctx, m, queries, 10, Options{Metric: Cosine}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: err = %v", err)
	}

	late := &lateCancel{Context: context.Background(), done: make(chan struct{})}
	close(late.done)
	if _, err := Search(late, m, queries, 10, Options{Metric: Cosine}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during: err = %v", err)
	}
}

func TestSearchErrors(t *testing.T) {
	m := Matrix{Data: make([]float32, 12), Dim: 4, Norms: make([]float32, 3)}
	q := []float32{1, 0, 0, 0}
	for _, tc := range []struct {
		name    string
		m       Matrix
		q       []float32
		k       int
		o       Options
		message string
	}{
		{"dim", Matrix{Data: m.Data}, q, 1, Options{Metric: Cosine}, "dimension 0"},
		{"ragged matrix", Matrix{Data: m.Data[:11], Dim: 4}, q, 1, Options{Metric: Cosine}, "matrix has 11 values"},
		{"ragged queries", m, q[:3], 1, Options{Metric: Cosine}, "queries have 3 values"},
		{"k", m, q, 0, Options{Metric: Cosine}, "k is 0"},
		{"metric", m, q, 1, Options{Metric: 4}, "unknown metric 4"},
		{"no metric", m, q, 1, Options{}, "unknown metric 0"},
		{"norms", Matrix{Data: m.Data, Dim: 4}, q, 1, Options{Metric: L2}, "0 norms for 3 rows"},
		{"workers", m, q, 1, Options{Metric: Cosine, Workers: -1}, "-1 workers"},
		{"zero query", m, make([]float32, 4), 1, Options{Metric: Cosine}, "no cosine similarity"},
		{"subnormal query", m, []float32{1e-45, 0, 0, 0}, 1, Options{Metric: Cosine}, "no cosine similarity"},
	} {
		_, err := Search(context.Background(), tc.m, tc.q, tc.k, tc.o)
		if err == nil || !strings.HasPrefix(err.Error(), "embedd/index/flat: ") || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.message)
		}
	}
}

func TestSearchEmpty(t *testing.T) {
	got, err := Search(context.Background(), Matrix{Dim: 3}, []float32{1, 2, 3}, 5, Options{Metric: L2})
	if err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("empty matrix: %v, %v", got, err)
	}
	got, err = Search(context.Background(), fixture(rand.New(rand.NewPCG(1, 1)), 10, 3), nil, 5, Options{Metric: Cosine})
	if err != nil || len(got) != 0 {
		t.Fatalf("no queries: %v, %v", got, err)
	}
}

func TestMetricNames(t *testing.T) {
	for _, m := range []Metric{Cosine, Dot, L2} {
		got, err := ParseMetric(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", strings.ToUpper(m.String()), got, err)
		}
	}
	if _, err := ParseMetric("hamming"); err == nil {
		t.Error("ParseMetric(hamming) succeeded")
	}
	if s := Metric(7).String(); s != "Metric(7)" {
		t.Errorf("Metric(7).String() = %q", s)
	}
}
