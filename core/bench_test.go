package models

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkEmbedVsSession measures, in one run, the whole path (tokenize,
// batch, infer, pool, normalise) against the ONNX session alone on the same
// pre-tokenized, pre-padded batches, at 128-token texts. Compare texts/s of
// path=embed and path=session for each batch size.
//
// EMBEDD_BENCH_DEVICE (cpu, cuda, cuda:N; default the shared CPU model),
// EMBEDD_BENCH_MODEL_DIR (another model folder, e.g. an fp16 one) and
// EMBEDD_BENCH_BATCHES ("32,256,1024"; default "1,8,32") run the same
// benchmark elsewhere, e.g. on a GPU machine.
func BenchmarkEmbedVsSession(b *testing.B) {
	m := benchModel(b)
	const tokens = 128
	ctx := context.Background()
	for _, size := range benchBatches(b) {
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

// benchModel is the shared test model, or the one EMBEDD_BENCH_DEVICE and
// EMBEDD_BENCH_MODEL_DIR ask for (skipping when that device is absent).
func benchModel(b *testing.B) *Model {
	m := needModel(b)
	dev, dir := os.Getenv("EMBEDD_BENCH_DEVICE"), os.Getenv("EMBEDD_BENCH_MODEL_DIR")
	if dev == "" && dir == "" {
		return m
	}
	cfg := Config{ID: "bench", Path: cmp.Or(dir, testModelDir), Device: dev, MaxBatchTokens: 1 << 20, MaxBatchSize: 4096}
	bm, err := Load(testRT, cfg, SessionConfig{})
	if err != nil {
		b.Skipf("EMBEDD_BENCH_DEVICE=%q EMBEDD_BENCH_MODEL_DIR=%q: %v", dev, dir, err)
	}
	b.Cleanup(func() { bm.Close() })
	return bm
}

// benchBatches reads EMBEDD_BENCH_BATCHES.
func benchBatches(b *testing.B) []int {
	env := cmp.Or(os.Getenv("EMBEDD_BENCH_BATCHES"), "1,8,32")
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("EMBEDD_BENCH_BATCHES=%q: %q is not a batch size", env, f)
		}
		out = append(out, n)
	}
	return out
}
