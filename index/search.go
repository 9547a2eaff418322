package index

import (
	"context"
	"fmt"

	"github.com/embedd/embedd/index/flat"
)

// Result is one search hit. Its fields all come from the snapshot the
// search ran on.
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
	// Vector is a copy of the row's stored vector (unit length under
	// cosine) when SearchOptions.Vectors asked for it, else nil.
	Vector []float32
}

// SearchOptions tunes a Search.
type SearchOptions struct {
	// Filter, if not empty, keeps only rows whose JSON metadata has, for
	// every key, a top-level field equal to the value compared as a
	// string: a string field equal to it, or a number, true, false or null
	// written exactly as it (compacted JSON). Rows without JSON metadata
	// never match a non-empty filter. The first search naming a field
	// indexes that field's values once per generation (see fieldIndex);
	// later searches read the index, not the rows' JSON.
	Filter map[string]string
	// Vectors fills Result.Vector.
	Vectors bool
}

// Search returns, for each query, the k rows closest to it among the live
// rows of one snapshot that o.Filter keeps, best first (largest similarity,
// or smallest L2 distance), equal scores in row order (the order rows were
// written in; an upsert writes a new row). Every field of every result
// comes from that one snapshot. k must be in [1, MaxK]; each query must
// have the collection's dimension and finite components, and under cosine
// a norm that can be normalised (not zero, subnormal or overflowing; see
// vec.Norm). The queries are normalised once, by the collection's
// Backend (WithBackend; CPUBackend by default), which runs the scoring.
func (c *Collection) Search(ctx context.Context, queries [][]float32, k int, o SearchOptions) ([][]Result, error) {
	if c == nil {
		return nil, ErrClosed
	}
	if k < 1 || k > MaxK {
		return nil, invalidf("k %d is not in [1, %d]", k, MaxK)
	}
	if len(queries) == 0 {
		return nil, invalidf("no queries")
	}
	for key := range o.Filter {
		if key == "" {
			return nil, invalidf("filter has an empty field name")
		}
	}
	dim := c.man.Dim
	q := make([]float32, 0, len(queries)*dim)
	for i, v := range queries {
		if err := checkVector(v, dim, c.man.Metric, where{kind: "query", i: i}); err != nil {
			return nil, err
		}
		q = append(q, v...)
	}
	s, err := c.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.search(ctx, c.opts.backend, c.id, q, len(queries), k, o)
}

// search runs the queries q (nq of them, checked, not normalised) on
// backend b; id is the collection's Matrix.Collection.
func (s *Snapshot) search(ctx context.Context, b Backend, id uint64, q []float32, nq, k int, o SearchOptions) ([][]Result, error) {
	skip := s.DeletedBitmap()
	if len(o.Filter) > 0 {
		var err error
		if skip, err = filterSkip(ctx, s, o.Filter); err != nil {
			return nil, err
		}
	}
	m := Matrix{
		Matrix:     flat.Matrix{Data: s.Data()[:s.Len()*s.Dim()], Dim: s.Dim(), Norms: s.Norms()},
		Collection: id,
		Generation: s.Generation(),
		Rows:       s.Len(),
	}
	hits, err := b.Search(ctx, m, q, k, flat.Options{Metric: s.Metric(), Skip: skip})
	if err != nil {
		return nil, fmt.Errorf("embedd/index: search: %w", err)
	}
	if len(hits) != nq {
		return nil, fmt.Errorf("embedd/index: search: backend %s answered %d queries of %d", b.Name(), len(hits), nq)
	}
	out := make([][]Result, nq)
	for i, hs := range hits {
		res := make([]Result, len(hs))
		for j, h := range hs {
			meta, isJSON := s.Metadata(h.Row)
			res[j] = Result{ID: s.ID(h.Row), Score: h.Score, MetadataJSON: isJSON}
			if meta != nil {
				res[j].Metadata = append([]byte(nil), meta...)
			}
			if o.Vectors {
				res[j].Vector = append([]float32(nil), s.Row(h.Row)...)
			}
		}
		out[i] = res
	}
	return out, nil
}
