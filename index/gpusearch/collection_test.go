package gpusearch

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/embedd/embedd/index"
)

// TestCollectionOnGPU runs the same writes on a CPU and a GPU collection
// and compares their searches: through upserts (appends), deletes,
// filters and a compaction (a new generation).
func TestCollectionOnGPU(t *testing.T) {
	b := loadGPU(t)
	ctx := context.Background()
	for _, metric := range []index.Metric{index.Cosine, index.Dot, index.L2} {
		t.Run(metric.String(), func(t *testing.T) {
			const dim = 32
			open := func(opts ...index.Option) *index.Collection {
				c, err := index.Create(t.TempDir(), index.Spec{Dim: dim, Metric: metric}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := c.Close(); err != nil {
						t.Error(err)
					}
				})
				return c
			}
			cpu, dev := open(), open(index.WithBackend(b))
			rng := rand.New(rand.NewPCG(5, uint64(metric)))
			vec := func() []float32 {
				v := make([]float32, dim)
				for i := range v {
					v[i] = rng.Float32()*2 - 1
				}
				return v
			}
			upsert := func(n int) {
				var recs []index.Record
				for range n {
					id := fmt.Sprintf("r%d", rng.IntN(3000))
					recs = append(recs, index.Record{ID: id, Vector: vec(), Metadata: fmt.Appendf(nil, `{"g":%d}`, rng.IntN(3)), MetadataJSON: true})
				}
				for _, c := range []*index.Collection{cpu, dev} {
					if err := c.Upsert(ctx, recs); err != nil {
						t.Fatal(err)
					}
				}
			}
			check := func(k int, filter map[string]string) {
				t.Helper()
				qs := [][]float32{vec(), vec(), vec()}
				want, err := cpu.Search(ctx, qs, k, index.SearchOptions{Filter: filter})
				if err != nil {
					t.Fatal(err)
				}
				got, err := dev.Search(ctx, qs, k, index.SearchOptions{Filter: filter})
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if len(got[i]) != len(want[i]) {
						t.Fatalf("query %d: %d results, want %d", i, len(got[i]), len(want[i]))
					}
					for j := range want[i] {
						g, w := got[i][j], want[i][j]
						if math.Abs(float64(g.Score-w.Score)) > 1e-4 || (g.ID != w.ID && math.Abs(float64(g.Score-w.Score)) > 1e-6) {
							t.Fatalf("query %d rank %d: %s %v, want %s %v", i, j, g.ID, g.Score, w.ID, w.Score)
						}
					}
				}
			}
			upsert(2000)
			check(10, nil)
			upsert(500) // upserts of existing ids: tombstone + append
			check(10, nil)
			check(100, map[string]string{"g": "1"})
			check(10, nil) // the filter's mask undone
			for _, c := range []*index.Collection{cpu, dev} {
				if _, err := c.Delete(ctx, []string{"r1", "r2", "r3", "r4"}); err != nil {
					t.Fatal(err)
				}
				if err := c.Compact(ctx); err != nil {
					t.Fatal(err)
				}
			}
			check(2048, nil)
			upsert(100)
			check(1, map[string]string{"g": "2"})
		})
	}
}
