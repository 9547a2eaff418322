package gpusearch

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/embedd/embedd/index/flat"
	"github.com/embedd/embedd/vec"
)

// prepareQueries copies the queries, normalising them for Cosine with
// vec.Normalize, as flat does, so that both backends score the same unit
// vectors.
func prepareQueries(queries []float32, dim int, metric flat.Metric) ([]float32, error) {
	q := slices.Clone(queries)
	for _, x := range q {
		if math.IsNaN(float64(x)) {
			return nil, errors.New("embedd/index/gpusearch: query has a NaN component")
		}
	}
	if metric != flat.Cosine {
		return q, nil
	}
	for i := range len(q) / dim {
		if norm, ok := vec.Normalize(q[i*dim : (i+1)*dim]); !ok {
			return nil, fmt.Errorf("embedd/index/gpusearch: query %d has norm %g: no cosine similarity", i, norm)
		}
	}
	return q, nil
}

// finish turns one query's device top-k into flat's result: it drops the
// padding (row -1, when k exceeds the rows) and skipped rows (masked to
// -Inf, they sort after every live row), and for L2 replaces the ranking
// score q·r - |r|²/2 by the squared distance computed directly from the
// vectors in float64, as flat does, and sorts by it (ties by row).
func finish(c []candidate, m flat.Matrix, query []float32, o flat.Options) []flat.Hit {
	hits := make([]flat.Hit, 0, len(c))
	for _, x := range c {
		if x.row < 0 || isSkipped(o.Skip, int(x.row)) {
			continue
		}
		hits = append(hits, flat.Hit{Row: int(x.row), Score: x.score})
	}
	if o.Metric != flat.L2 {
		return hits
	}
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
	slices.SortFunc(hits, func(a, b flat.Hit) int {
		if a.Score != b.Score {
			if a.Score < b.Score {
				return -1
			}
			return 1
		}
		return a.Row - b.Row
	})
	return hits
}
