package flat

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSelfJoin is the top-10 self-join of n×384 unit rows, against
// the same answer through Search (every row a query, k=11), and the
// threshold join. The pairs/s column counts the n(n-1)/2 distinct pairs.
func BenchmarkSelfJoin(b *testing.B) {
	for _, n := range []int{20_000, 100_000} {
		m := benchMatrix(n)
		pairs := float64(n) * float64(n-1) / 2
		for _, br := range []int{0, 128, 256, 680} {
			b.Run(fmt.Sprintf("n=%d/topk/block=%d", n, br), func(b *testing.B) {
				for b.Loop() {
					if _, err := SelfJoin(context.Background(), m, JoinOptions{Metric: Cosine, K: 10, BlockRows: br}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(pairs*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
		b.Run(fmt.Sprintf("n=%d/threshold", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := SelfJoin(context.Background(), m, JoinOptions{Metric: Cosine, Threshold: 0.2, Pairs: func(int, []Pair, bool) error { return nil }}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(pairs*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
		b.Run(fmt.Sprintf("n=%d/search", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Search(context.Background(), m, m.Data, 11, Options{Metric: Cosine}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(pairs*float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
