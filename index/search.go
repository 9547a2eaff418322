package index

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/embedd/embedd/index/flat"
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
// metadata never match a non-empty filter. The scoring runs on the
// collection's Backend (WithBackend; CPUBackend by default).
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
	return s.search(ctx, c.opts.backend, c.id, q, len(queries), k, filter)
}

// search runs the queries q (nq of them, normalised) on backend b; id is
// the collection's Matrix.Collection.
func (s *Snapshot) search(ctx context.Context, b Backend, id uint64, q []float32, nq, k int, filter map[string]string) ([][]Result, error) {
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
	m := Matrix{
		Matrix:     flat.Matrix{Data: s.Data()[:s.Len()*s.Dim()], Dim: s.Dim(), Norms: s.Norms()},
		Collection: id,
		Generation: s.Generation(),
		Rows:       s.Len(),
	}
	hits, err := b.Search(ctx, m, q, k, flat.Options{Metric: flatMetric[s.Metric()], Skip: skip})
	if err != nil {
		return nil, fmt.Errorf("embedd/index: search: %w", err)
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

// flatMetric maps a collection's metric to the kernel's.
var flatMetric = map[Metric]flat.Metric{Cosine: flat.Cosine, Dot: flat.Dot, L2: flat.L2}
