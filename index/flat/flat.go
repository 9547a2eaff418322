package flat

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/embedd/embedd/vec"
)

// Metric is the similarity a search ranks rows by, and a collection's
// metric (package index uses this type). The zero value is no metric:
// Search, and a collection's Spec, refuse it, so a forgotten field is an
// error rather than a silent cosine.
type Metric uint8

const (
	// Cosine ranks by cosine similarity, largest first. The matrix rows must
	// already be unit length (the storage layer normalises them); Search
	// normalises the queries, so the score is the dot product of unit
	// vectors.
	Cosine Metric = iota + 1
	// Dot ranks by inner product, largest first.
	Dot
	// L2 ranks by squared Euclidean distance, smallest first. It needs
	// Matrix.Norms.
	L2
)

var metricNames = [...]string{Cosine: "cosine", Dot: "dot", L2: "l2"}

// Valid reports whether m is Cosine, Dot or L2.
func (m Metric) Valid() bool { return m >= Cosine && m <= L2 }

// String returns the metric's name as ParseMetric reads it: "cosine", "dot"
// or "l2" (collection manifests store it so).
func (m Metric) String() string {
	if m.Valid() {
		return metricNames[m]
	}
	return fmt.Sprintf("Metric(%d)", m)
}

// ParseMetric returns the metric named s ("cosine", "dot" or "l2", in any
// case).
func ParseMetric(s string) (Metric, error) {
	for m := Cosine; m <= L2; m++ {
		if strings.EqualFold(s, metricNames[m]) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("embedd/index/flat: unknown metric %q (want cosine, dot or l2)", s)
}

// Hit is one result row. For Cosine and Dot, Score is the similarity and
// larger is better; for L2 it is the squared Euclidean distance and smaller
// is better. Search returns hits best first, equal scores by ascending Row.
type Hit struct {
	Row   int
	Score float32
}

// Matrix is the searched matrix: len(Data)/Dim rows of Dim float32s each,
// row-major. Norms holds each row's squared L2 norm and is needed for L2
// only. Search only reads the matrix; it may be shared by concurrent
// searches.
type Matrix struct {
	Data  []float32
	Dim   int
	Norms []float32
}

// Options tunes a search.
type Options struct {
	// Metric is the ranking; it must be set (the zero value is none).
	Metric Metric
	// Skip, if not nil, is a bitmap of rows to leave out of the results
	// (deleted rows, rows a filter rejects): row r is skipped when bit r%64
	// of Skip[r/64] is set. Rows past the end of the bitmap are not skipped.
	Skip []uint64
	// Workers is the number of goroutines that scan the matrix; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// Tuning. A row block is what the micro-kernel scores against one tile of
// four queries: it stays in the L1 cache while every query tile of the query
// block passes over it. A chunk is the unit the workers take turns on and
// check for cancellation between. A query block is the set of queries one
// pass over the matrix serves; it is bounded so that its queries stay in the
// L2 cache and its top-k heaps stay small.
const (
	rowBlockBytes   = 24 << 10
	chunkBytes      = 256 << 10
	queryBlockBytes = 2 << 20
	heapBudget      = 1 << 22 // candidates held by all workers' heaps together
)

// Search returns, for each of the len(queries)/m.Dim queries (row-major in
// queries), the k best rows of m under o.Metric, best first, equal scores by
// ascending row. Fewer than k hits come back when the matrix has fewer than
// k rows that are not skipped. The scan is exact: every row is scored.
//
// Inputs must not contain NaN. For Cosine a zero query is an error. If ctx
// is cancelled Search stops between chunks and returns ctx.Err().
func Search(ctx context.Context, m Matrix, queries []float32, k int, o Options) ([][]Hit, error) {
	if err := validate(m, queries, k, o); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dim := m.Dim
	n := len(m.Data) / dim
	nq := len(queries) / dim
	q, err := prepareQueries(queries, dim, o.Metric)
	if err != nil {
		return nil, err
	}
	kk := min(k, n)
	workers := o.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rb := max(4, rowBlockBytes/(4*dim)&^3)
	chunk := max(1, chunkBytes/(4*dim*rb)) * rb
	workers = max(1, min(workers, (n+chunk-1)/chunk))
	qb := max(4, queryBlockBytes/(4*dim)&^3)
	qb = min(qb, max(4, heapBudget/(workers*max(kk, 1))&^3), len(q)/dim)

	s := &scan{
		m: m, n: n, dim: dim, metric: o.Metric, skip: o.Skip,
		rowBlock: rb, chunk: chunk, done: ctx.Done(), dot4: active.dot4, dot1: active.dot1,
	}
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i] = &worker{scores: make([]float32, 4*rb), pad: make([]float32, 4*dim)}
	}
	res := make([][]Hit, nq)
	for q0 := 0; q0 < nq; q0 += qb {
		q1 := min(q0+qb, nq)
		s.queries = q[q0*dim : (q0+roundUp4(q1-q0))*dim]
		s.nq = q1 - q0
		s.next.Store(0)
		for _, w := range ws {
			w.reset(s.nq, kk)
		}
		var wg sync.WaitGroup
		for _, w := range ws[1:] {
			wg.Go(func() { s.run(w) })
		}
		s.run(ws[0])
		wg.Wait()
		if s.cancelled.Load() {
			return nil, ctx.Err()
		}
		for i := range s.nq {
			res[q0+i] = merge(ws, i, kk, m, queries[(q0+i)*dim:(q0+i+1)*dim], o.Metric)
		}
	}
	return res, nil
}

func validate(m Matrix, queries []float32, k int, o Options) error {
	switch {
	case m.Dim < 1:
		return fmt.Errorf("embedd/index/flat: dimension %d, want at least 1", m.Dim)
	case len(m.Data)%m.Dim != 0:
		return fmt.Errorf("embedd/index/flat: matrix has %d values, not a multiple of dimension %d", len(m.Data), m.Dim)
	case len(m.Data)/m.Dim > maxRows:
		return fmt.Errorf("embedd/index/flat: matrix has %d rows, at most %d are searched", len(m.Data)/m.Dim, maxRows)
	case len(queries)%m.Dim != 0:
		return fmt.Errorf("embedd/index/flat: queries have %d values, not a multiple of dimension %d", len(queries), m.Dim)
	case k < 1:
		return fmt.Errorf("embedd/index/flat: k is %d, want at least 1", k)
	case !o.Metric.Valid():
		return fmt.Errorf("embedd/index/flat: unknown metric %d (want Cosine, Dot or L2)", o.Metric)
	case o.Metric == L2 && len(m.Norms) != len(m.Data)/m.Dim:
		return fmt.Errorf("embedd/index/flat: L2 needs one norm per row: %d norms for %d rows", len(m.Norms), len(m.Data)/m.Dim)
	case o.Workers < 0:
		return fmt.Errorf("embedd/index/flat: %d workers", o.Workers)
	}
	return nil
}

// prepareQueries copies the queries into a buffer padded with zero queries
// to a multiple of four (the kernel's tile), normalising them for Cosine
// with vec.Normalize, which refuses a query without a direction (zero,
// subnormal or not finite norm).
func prepareQueries(queries []float32, dim int, metric Metric) ([]float32, error) {
	q := make([]float32, roundUp4(len(queries)/dim)*dim)
	copy(q, queries)
	if metric == Cosine {
		for i := range len(queries) / dim {
			if norm, ok := vec.Normalize(q[i*dim : (i+1)*dim]); !ok {
				return nil, fmt.Errorf("embedd/index/flat: query %d has norm %g: no cosine similarity", i, norm)
			}
		}
	}
	return q, nil
}

func roundUp4(x int) int { return (x + 3) &^ 3 }

// scan is one query block's pass over the matrix, shared by its workers.
type scan struct {
	m         Matrix
	n, dim    int
	metric    Metric
	skip      []uint64
	rowBlock  int
	chunk     int
	done      <-chan struct{}
	dot4      dot4Func
	dot1      dot1Func
	queries   []float32 // the block's queries, padded to a multiple of 4
	nq        int       // queries in the block, without padding
	next      atomic.Int64
	cancelled atomic.Bool
}

// worker is one goroutine's state: a heap per query of the block, the
// kernel's output buffer and room for the matrix's last rows, padded to 4.
type worker struct {
	heaps  []topK
	scores []float32
	pad    []float32
}

func (w *worker) reset(nq, k int) {
	if cap(w.heaps) < nq {
		w.heaps = make([]topK, nq)
	}
	w.heaps = w.heaps[:nq]
	for i := range w.heaps {
		w.heaps[i].reset(k)
	}
}

// run takes chunks until none is left or the search is cancelled.
func (s *scan) run(w *worker) {
	nchunks := (s.n + s.chunk - 1) / s.chunk
	for {
		c := int(s.next.Add(1)) - 1
		if c >= nchunks {
			return
		}
		select {
		case <-s.done:
			s.cancelled.Store(true)
			return
		default:
		}
		end := min((c+1)*s.chunk, s.n)
		for b0 := c * s.chunk; b0 < end; b0 += s.rowBlock {
			s.block(w, b0, min(b0+s.rowBlock, end), end)
		}
	}
}

// block scores rows [b0, b1) against every query of the block and offers
// them to the worker's heaps. The rows up to end are the worker's next.
func (s *scan) block(w *worker, b0, b1, end int) {
	if allSkipped(s.skip, b0, b1) {
		return
	}
	dim, ld := s.dim, s.rowBlock
	nb := b1 - b0
	full := nb &^ 3
	rows := s.m.Data[b0*dim : b1*dim]
	for t := 0; t < s.nq; t += 4 {
		q := s.queries[t*dim : (t+4)*dim]
		if s.nq-t == 1 {
			if full > 0 {
				s.dot1(q, rows, full, dim, w.scores)
			}
			if full < nb {
				copy(w.pad, rows[full*dim:])
				s.dot1(q, w.pad, 4, dim, w.scores[full:])
			}
		} else {
			if full > 0 {
				// The first query tile prefetches the next row block.
				var next *float32
				if t == 0 && b1 < end {
					next = &s.m.Data[b1*dim]
				}
				s.dot4(q, rows, full, dim, w.scores, ld, next)
			}
			if full < nb {
				// The last rows of a matrix whose length is not a multiple of
				// 4 go through the same kernel, zero-padded, so that equal rows
				// always get bit-identical scores.
				copy(w.pad, rows[full*dim:])
				s.dot4(q, w.pad, 4, dim, w.scores[full:], ld, nil)
			}
		}
		for i := range min(4, s.nq-t) {
			h := &w.heaps[t+i]
			sc := w.scores[i*ld : i*ld+nb]
			if s.metric == L2 {
				h.offerL2(sc, s.m.Norms[b0:b1], b0, s.skip)
			} else {
				h.offer(sc, b0, s.skip)
			}
		}
	}
}

// allSkipped reports whether every row of [b0, b1) is skipped.
func allSkipped(skip []uint64, b0, b1 int) bool {
	if len(skip)*64 < b1 {
		return false
	}
	for r := b0; r < b1; {
		bits := min(64-r&63, b1-r)
		mask := uint64(1)<<bits - 1 // all ones for bits == 64
		if skip[r>>6]>>(r&63)&mask != mask {
			return false
		}
		r += bits
	}
	return true
}

func skipped(skip []uint64, r int) bool {
	return r>>6 < len(skip) && skip[r>>6]>>(r&63)&1 != 0
}

// merge combines the workers' heaps for query i of the block into its k
// best hits. For L2 the heaps ranked by q·r - |r|²/2; the distances are
// recomputed directly from the vectors, which avoids the cancellation of
// |q|² + |r|² - 2q·r for close pairs, and re-sorted.
func merge(ws []*worker, i, k int, m Matrix, query []float32, metric Metric) []Hit {
	var c []cand
	for _, w := range ws {
		c = append(c, w.heaps[i].h...)
	}
	slices.SortFunc(c, func(a, b cand) int {
		if a.better(b) {
			return -1
		}
		if b.better(a) {
			return 1
		}
		return 0
	})
	c = c[:min(k, len(c))]
	hits := make([]Hit, len(c))
	for j, x := range c {
		hits[j] = Hit{Row: int(x.r), Score: x.s}
	}
	if metric == L2 {
		dim := m.Dim
		for j := range hits {
			row := m.Data[hits[j].Row*dim : (hits[j].Row+1)*dim]
			var d float64
			for t, x := range row {
				e := float64(query[t]) - float64(x)
				d += e * e
			}
			hits[j].Score = float32(d)
		}
		slices.SortFunc(hits, func(a, b Hit) int {
			if a.Score != b.Score {
				if a.Score < b.Score {
					return -1
				}
				return 1
			}
			return a.Row - b.Row
		})
	}
	return hits
}
