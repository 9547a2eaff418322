package models

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkEmbedVsSession measures, in one run, the whole path (tokenize,
// batch, infer, pool, normalise) against the ONNX session alone on the same
// pre-tokenized, pre-padded batches, at 128-token texts. Compare texts/s of
// path=embed and path=session for each batch size.
func BenchmarkEmbedVsSession(b *testing.B) {
	m := needModel(b)
	const tokens = 128
	ctx := context.Background()
	for _, size := range []int{1, 8, 32} {
		texts := modelstest.Passages(b, m.Tokenizer(), size, tokens)
		seqs := make([][]int32, size)
		for i, s := range texts {
			seqs[i], _ = m.Tokenizer().Encode(nil, s, 0)
		}
		var batch Batch
		fillBatch(&batch, seqs)
		b.Run(fmt.Sprintf("batch=%d/path=session", size), func(b *testing.B) {
			var out []float32
			start := time.Now()
			for b.Loop() {
				var err error
				if out, err = m.Session().Run(&batch, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "texts/s")
		})
		b.Run(fmt.Sprintf("batch=%d/path=embed", size), func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if _, err := m.Embed(ctx, texts, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "texts/s")
		})
	}
}
