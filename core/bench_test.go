package core

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkEmbedVsSession measures, in one run, the whole path of the core
// (limits, tokenize, batcher, infer, pool, normalise; cache off) against
// the ONNX session alone on the same pre-tokenized, pre-padded batches, at
// 128-token texts. Compare texts/s of path=core and path=session for each
// batch size. The batcher's batch size is the request's, so no text waits
// for company (max_wait never applies).
//
// EMBEDD_BENCH_DEVICE (cpu, cuda, cuda:N; default the shared CPU model),
// EMBEDD_BENCH_MODEL_DIR (another model folder, e.g. an fp16 one) and
// EMBEDD_BENCH_BATCHES ("32,256,1024"; default "1,8,32") run the same
// benchmark elsewhere, e.g. on a GPU machine.
func BenchmarkEmbedVsSession(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	reg := testReg
	mc := models.Config{ID: models.DefaultModelID, Path: "unused: WithRegistry"}
	dev, dir := os.Getenv("EMBEDD_BENCH_DEVICE"), os.Getenv("EMBEDD_BENCH_MODEL_DIR")
	if dev != "" || dir != "" {
		mc = models.Config{ID: "bench", Path: cmp.Or(dir, models.DefaultRegistryConfig().Models[0].Path), Device: dev}
		var err error
		if reg, err = models.OpenRegistry(models.RegistryConfig{Models: []models.Config{mc}}, nil); err != nil {
			b.Skipf("EMBEDD_BENCH_DEVICE=%q EMBEDD_BENCH_MODEL_DIR=%q: %v", dev, dir, err)
		}
		b.Cleanup(func() { reg.Close() })
	}
	m, _ := reg.Get(mc.ID)
	const tokens = 128
	ctx := context.Background()
	for _, size := range benchBatches(b) {
		texts := modelstest.Passages(b, m.Tokenizer(), size, tokens)
		batch := padded(m, texts)
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
		b.Run(fmt.Sprintf("batch=%d/path=core", size), func(b *testing.B) {
			c, err := Open(Config{
				Models:     []ModelConfig{{Config: mc, MaxBatchSize: size, MaxBatchTokens: 1 << 20, QueueSize: max(size, DefaultMaxTextsPerRequest)}},
				CacheBytes: -1,
			}, WithRegistry(reg))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			for b.Loop() {
				if _, err := c.Embed(ctx, "", texts, models.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "texts/s")
		})
	}
}

// padded tokenizes texts into one right-padded batch, as the model's
// engine pads one.
func padded(m *models.Model, texts []string) models.Batch {
	seqs := make([][]int32, len(texts))
	longest := 0
	for i, s := range texts {
		seqs[i], _ = m.Tokenizer().Encode(nil, s, m.Info().MaxLength)
		longest = max(longest, len(seqs[i]))
	}
	b := models.Batch{Size: len(texts), SeqLen: longest}
	b.IDs = make([]int64, b.Size*b.SeqLen)
	b.Mask = make([]int64, b.Size*b.SeqLen)
	b.TypeIDs = make([]int64, b.Size*b.SeqLen)
	for i, s := range seqs {
		for j, id := range s {
			b.IDs[i*longest+j] = int64(id)
			b.Mask[i*longest+j] = 1
		}
	}
	return b
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
