package jobs

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkEmbedJob measures, in one run, an embed job end to end (read
// the text file, tokenize, the core's batcher, infer, write) into JSONL,
// .npy and Parquet, against the model alone on the same texts,
// pre-tokenized, in batches of the batcher's size (path=forward), at
// 128-token texts. Compare texts/s. EMBEDD_BENCH_MODEL_DIR picks the model
// (default the ONNX test model of scripts/setup.sh); EMBEDD_BENCH_TEXTS
// the texts per run (default 512). On a shared machine compare cpu-ms/text
// (the process's user and system time per text) too: it is what the work
// costs, whoever else runs.
func BenchmarkEmbedJob(b *testing.B) {
	dir := cmp.Or(os.Getenv("EMBEDD_BENCH_MODEL_DIR"), "../.cache/models/minilm-l6-random")
	mc := models.Config{ID: "bench", Path: dir}
	reg, err := models.OpenRegistry(models.RegistryConfig{Models: []models.Config{mc}}, nil)
	if err != nil {
		b.Skipf("model %s: %v (run scripts/setup.sh)", dir, err)
	}
	defer reg.Close()
	m, _ := reg.Get("bench")
	n := 512
	fmt.Sscan(os.Getenv("EMBEDD_BENCH_TEXTS"), &n)
	texts := modelstest.Passages(b, m.Tokenizer(), n, 128)
	in := filepath.Join(b.TempDir(), "texts.txt")
	if err := os.WriteFile(in, []byte(strings.Join(texts, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := core.Open(core.Config{Models: []core.ModelConfig{{Config: mc}}, CacheBytes: -1}, core.WithRegistry(reg))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	batch := c.Config().Models[0].MaxBatchSize
	b.Run("path=forward", func(b *testing.B) {
		seqs := make([][]int32, len(texts))
		for i, t := range texts {
			seqs[i], _ = m.Tokenizer().Encode(nil, t, m.Info().MaxLength)
		}
		dst := make([][]float32, batch)
		for i := range dst {
			dst[i] = make([]float32, m.Info().Dim)
		}
		start, cpu := time.Now(), cpuTime()
		for b.Loop() {
			for i := 0; i < len(seqs); i += batch {
				j := min(i+batch, len(seqs))
				if err := m.Forward(seqs[i:j], dst[:j-i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, b.N*len(texts), start, cpu)
	})
	for _, ext := range []string{"jsonl", "npy", "parquet"} {
		b.Run("path=job/out="+ext, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "out."+ext)
			start, cpu := time.Now(), cpuTime()
			for b.Loop() {
				if _, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: EmbedStage(c, EmbedOptions{Model: "bench"}), Output: Output{Path: out}}); err != nil {
					b.Fatal(err)
				}
			}
			report(b, b.N*len(texts), start, cpu)
		})
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, texts int, start time.Time, cpu time.Duration) {
	b.ReportMetric(float64(texts)/time.Since(start).Seconds(), "texts/s")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(texts), "cpu-ms/text")
}

// BenchmarkWriters is the writers alone: 384-wide vectors into JSONL, .npy
// and Parquet, per vector (what the output costs the job).
func BenchmarkWriters(b *testing.B) {
	v := fakeVector("x")
	for len(v) < 384 {
		v = append(v, v...)
	}
	r := Result{ID: "123456", Vectors: [][]float32{v[:384]}}
	for _, ext := range []string{"jsonl", "npy", "parquet"} {
		b.Run("out="+ext, func(b *testing.B) {
			o := Output{Path: filepath.Join(b.TempDir(), "out."+ext)}
			s, err := o.open()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := s.write(&r); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.commit(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}
