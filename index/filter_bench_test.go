package index

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkFilteredSearch is one query, k=10, over 1M rows of dimension 16
// whose JSON metadata has 8 languages, with the filter {"lang": "en"}
// (1/8 of the rows): what the filter costs per search once the field is
// indexed, and (first-search-ms) the first search, which indexes it.
func BenchmarkFilteredSearch(b *testing.B) {
	const dim, n, batch = 16, 1_000_000, 10_000
	c := testCollection(b, dim, Cosine, WithCheckpointBytes(0))
	langs := []string{"en", "fr", "de", "es", "it", "nl", "pt", "sv"}
	recs := make([]Record, batch)
	for i := 0; i < n; i += batch {
		for j := range recs {
			r := i + j
			recs[j] = Record{
				ID:           fmt.Sprintf("r%07d", r),
				Vector:       testVec(dim, float32(r%1000)/1000+0.001),
				Metadata:     fmt.Appendf(nil, `{"lang":%q,"n":%d,"title":"row %d of the benchmark"}`, langs[r%len(langs)], r%100, r),
				MetadataJSON: true,
			}
		}
		mustUpsert(b, c, recs...)
	}
	ctx := context.Background()
	q := [][]float32{testVec(dim, 0.5)}
	filter := map[string]string{"lang": "en"}
	search := func() {
		res, err := c.Search(ctx, q, 10, SearchOptions{Filter: filter})
		if err != nil || len(res[0]) != 10 {
			b.Fatal(len(res), err)
		}
	}
	start := time.Now()
	search() // indexes the field
	first := time.Since(start)
	for b.Loop() {
		search()
	}
	b.ReportMetric(float64(first.Milliseconds()), "first-search-ms")
}
