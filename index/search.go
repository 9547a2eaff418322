package index

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// Result is one search hit.
type Result struct {
	// ID is the row's id.
	ID string
	// Score is the cosine or dot similarity (larger is closer) or, for L2,
	// the squared Euclidean distance (smaller is closer).
	Score float32
	// Metadata is a copy of the row's metadata, nil if none.
	Metadata []byte
	// MetadataJSON says Metadata is a JSON object.
	MetadataJSON bool
}

// Search returns, for each query, the k rows closest to it among the live
// rows of one snapshot whose metadata matches filter, best first (largest
// similarity, or smallest L2 distance), ties by id. k must be in [1, MaxK];
// each query must have the collection's dimension and finite components
// (and not be zero under cosine; it is normalised). A filter matches rows
// whose JSON metadata has, for every key, a top-level field equal to the
// value compared as a string: a string field equal to it, or a number, true,
// false or null written exactly as it (compacted JSON). Rows without JSON
// metadata never match a non-empty filter.
func (c *Collection) Search(ctx context.Context, queries [][]float32, k int, filter map[string]string) ([][]Result, error) {
	if c == nil {
		return nil, ErrClosed
	}
	if k < 1 || k > MaxK {
		return nil, invalidf("k %d is not in [1, %d]", k, MaxK)
	}
	if len(queries) == 0 {
		return nil, invalidf("no queries")
	}
	for key := range filter {
		if key == "" {
			return nil, invalidf("filter has an empty field name")
		}
	}
	dim := c.man.Dim
	q := make([]float32, 0, len(queries)*dim)
	for i, v := range queries {
		nv, err := normaliseQuery(v, dim, c.man.Metric, where{kind: "query", i: i})
		if err != nil {
			return nil, err
		}
		q = append(q, nv...)
	}
	s, err := c.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.search(ctx, q, len(queries), k, filter)
}

func (s *Snapshot) search(ctx context.Context, q []float32, nq, k int, filter map[string]string) ([][]Result, error) {
	skip := s.DeletedBitmap()
	if len(filter) > 0 {
		// Decide each row once, not once per query.
		skip = slices.Clone(skip)
		for r := range s.Len() {
			if r%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("embedd/index: search: %w", err)
				}
			}
			if skip[r/64]&(1<<(r%64)) != 0 {
				continue
			}
			if meta, isJSON := s.Metadata(r); !isJSON || !matchFilter(meta, filter) {
				skip[r/64] |= 1 << (r % 64)
			}
		}
	}
	m := scanMatrix{data: s.Data(), dim: s.Dim(), rows: s.Len(), norms: s.Norms(), metric: s.Metric(), skip: skip}
	hits, err := scan(ctx, m, q, nq, k)
	if err != nil {
		return nil, err
	}
	l2 := s.Metric() == L2
	out := make([][]Result, nq)
	for i, hs := range hits {
		res := make([]Result, len(hs))
		for j, h := range hs {
			meta, isJSON := s.Metadata(h.Row)
			res[j] = Result{ID: s.ID(h.Row), Score: h.Score, MetadataJSON: isJSON}
			if meta != nil {
				res[j].Metadata = append([]byte(nil), meta...)
			}
		}
		slices.SortStableFunc(res, func(a, b Result) int {
			c := cmp.Compare(b.Score, a.Score)
			if l2 {
				c = -c
			}
			if c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		out[i] = res
	}
	return out, nil
}

// matchFilter reports whether the JSON object meta has every field of
// filter (see Search).
func matchFilter(meta []byte, filter map[string]string) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(meta, &obj) != nil {
		return false
	}
	for key, want := range filter {
		raw, ok := obj[key]
		if !ok || len(raw) == 0 {
			return false
		}
		if raw[0] == '"' {
			var s string
			if json.Unmarshal(raw, &s) != nil || s != want {
				return false
			}
		} else if string(raw) != want {
			return false
		}
	}
	return true
}

// ---- The search kernel seam ------------------------------------------------
//
// scan is the only function Search calls to score rows. It is the simple,
// obviously correct reference below, with index/flat's contract: the same
// inputs (row-major data, dim, squared norms for L2, a skip bitmap) and the
// same output (per query up to k hits, best first: largest score for cosine
// and dot, smallest squared distance for L2, equal scores by ascending row).
// Plugging in the real kernel is one assignment:
//
//	scan = func(ctx context.Context, m scanMatrix, q []float32, nq, k int) ([][]hit, error) {
//		return flat.Search(ctx, flat.Matrix{Data: m.data, Dim: m.dim, Norms: m.norms}, q, k,
//			flat.Options{Metric: flatMetric[m.metric], Skip: m.skip})
//	}
//
// with hit = flat.Hit and flatMetric mapping Cosine, Dot, L2 to flat's.

// scanMatrix is what a kernel reads: a snapshot's rows.
type scanMatrix struct {
	data   []float32 // rows*dim, row-major
	dim    int
	rows   int
	norms  []float32 // squared norms, L2 only
	metric Metric
	skip   []uint64 // bit r%64 of word r/64: leave row r out (deleted or filtered)
}

// hit is one scored row, as flat.Hit.
type hit struct {
	Row   int
	Score float32
}

// scan scores q (nq queries, row-major) against m and returns each query's
// best k hits, best first. Swap in index/flat here.
var scan = referenceScan

// referenceScan is the reference kernel: one query at a time, every row,
// float64 accumulation, a bounded heap; ties keep the lower row.
func referenceScan(ctx context.Context, m scanMatrix, q []float32, nq, k int) ([][]hit, error) {
	out := make([][]hit, nq)
	l2 := m.metric == L2
	for qi := range nq {
		query := q[qi*m.dim : (qi+1)*m.dim]
		h := worstFirst{l2: l2, hits: make([]hit, 0, min(k, m.rows))}
		for r := range m.rows {
			if r%8192 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("embedd/index: search: %w", err)
				}
			}
			if r/64 < len(m.skip) && m.skip[r/64]&(1<<(r%64)) != 0 {
				continue
			}
			row := m.data[r*m.dim : (r+1)*m.dim]
			var score float64
			if l2 {
				for j, x := range row {
					d := float64(query[j]) - float64(x)
					score += d * d
				}
			} else {
				for j, x := range row {
					score += float64(query[j]) * float64(x)
				}
			}
			cand := hit{Row: r, Score: float32(score)}
			if len(h.hits) < k {
				heap.Push(&h, cand)
			} else if h.better(cand, h.hits[0]) {
				h.hits[0] = cand
				heap.Fix(&h, 0)
			}
		}
		res := make([]hit, len(h.hits))
		for i := len(h.hits) - 1; i >= 0; i-- {
			res[i] = heap.Pop(&h).(hit)
		}
		out[qi] = res
	}
	return out, nil
}

// worstFirst is a heap whose top is the worst hit kept.
type worstFirst struct {
	l2   bool // smaller scores are better
	hits []hit
}

// better orders hits: better score, then lower row.
func (h *worstFirst) better(a, b hit) bool {
	if a.Score != b.Score {
		return (a.Score > b.Score) != h.l2
	}
	return a.Row < b.Row
}

// Len, Less, Swap, Push and Pop implement heap.Interface.
func (h *worstFirst) Len() int           { return len(h.hits) }
func (h *worstFirst) Less(i, j int) bool { return h.better(h.hits[j], h.hits[i]) }
func (h *worstFirst) Swap(i, j int)      { h.hits[i], h.hits[j] = h.hits[j], h.hits[i] }
func (h *worstFirst) Push(x any)         { h.hits = append(h.hits, x.(hit)) }
func (h *worstFirst) Pop() any {
	x := h.hits[len(h.hits)-1]
	h.hits = h.hits[:len(h.hits)-1]
	return x
}
