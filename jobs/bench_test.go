package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
	"github.com/embedd/embedd/vec"
)

// BenchmarkEmbedJob measures, in one run, an embed job end to end (read
// the text file, tokenize, the core's batcher, infer, write) into JSONL,
// .npy and Parquet, against the model alone on the same texts,
// pre-tokenized, in batches of the batcher's size (path=forward), and
// against the model tokenizing and running its batches on every core
// (path=model), at 128-token texts. Each iteration runs every path once, in turn, so that
// on a shared machine they see the same load; each path reports texts/s
// and its ratio to forward's. EMBEDD_BENCH_MODEL_DIR picks the model
// (default the ONNX test model of scripts/setup.sh); EMBEDD_BENCH_TEXTS
// the texts per path and iteration (default 256; a fast model such as
// static-en wants many parts' worth, e.g. 50000).
func BenchmarkEmbedJob(b *testing.B) {
	dir := cmp.Or(os.Getenv("EMBEDD_BENCH_MODEL_DIR"), "../.cache/models/minilm-l6-random")
	mc := models.Config{ID: "bench", Path: dir}
	reg, err := models.OpenRegistry(models.RegistryConfig{Models: []models.Config{mc}}, nil)
	if err != nil {
		b.Skipf("model %s: %v (run scripts/setup.sh)", dir, err)
	}
	defer reg.Close()
	m, _ := reg.Get("bench")
	n := 256
	fmt.Sscan(os.Getenv("EMBEDD_BENCH_TEXTS"), &n)
	// The corpus has about a thousand such passages: more texts repeat
	// them (the cache is off, so each is embedded again).
	texts := modelstest.Passages(b, m.Tokenizer(), min(n, 1000), 128)
	for i := 0; len(texts) < n; i++ {
		texts = append(texts, texts[i])
	}
	tmp := b.TempDir()
	in := filepath.Join(tmp, "texts.txt")
	if err := os.WriteFile(in, []byte(strings.Join(texts, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := core.Open(core.Config{Models: []core.ModelConfig{{Config: mc}}, CacheBytes: -1}, core.WithRegistry(reg))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	batch := c.Config().Models[0].MaxBatchSize
	seqs := make([][]int32, len(texts))
	for i, t := range texts {
		seqs[i], _ = m.Tokenizer().Encode(nil, t, m.Info().MaxLength)
	}
	dst := make([][]float32, batch)
	for i := range dst {
		dst[i] = make([]float32, m.Info().Dim)
	}
	forward := func() error {
		for i := 0; i < len(seqs); i += batch {
			j := min(i+batch, len(seqs))
			if err := m.Forward(seqs[i:j], dst[:j-i]); err != nil {
				return err
			}
		}
		return nil
	}
	// model is the model's own best on every core: each goroutine
	// tokenizes its share, runs it in batches and finishes each vector
	// (what a job cannot beat when tokenizing costs as much as the model,
	// as for a static one).
	model := func() error {
		workers := runtime.GOMAXPROCS(0)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				out := make([][]float32, batch)
				for i := range out {
					out[i] = make([]float32, m.Info().Dim)
				}
				var ids [][]int32
				for i := w * batch; i < len(texts); i += workers * batch {
					ids = ids[:0]
					for _, t := range texts[i:min(i+batch, len(texts))] {
						seq, _ := m.Tokenizer().Encode(nil, t, m.Info().MaxLength)
						ids = append(ids, seq)
					}
					if err := m.Forward(ids, out[:len(ids)]); err != nil {
						errs[w] = err
						return
					}
					for _, v := range out[:len(ids)] {
						m.Finish(v, models.Options{})
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	job := func(ext string) func() error {
		return func() error {
			_, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: EmbedStage(c, EmbedOptions{Model: "bench"}), Output: Output{Path: filepath.Join(tmp, "out."+ext)}})
			return err
		}
	}
	paths := []struct {
		name string
		run  func() error
	}{{"forward", forward}, {"model", model}, {"job/out=jsonl", job("jsonl")}, {"job/out=npy", job("npy")}, {"job/out=parquet", job("parquet")}}
	spent := make([]time.Duration, len(paths))
	for b.Loop() {
		for i, p := range paths {
			t0 := time.Now()
			if err := p.run(); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(t0)
		}
	}
	for i, p := range paths {
		rate := float64(b.N*len(texts)) / spent[i].Seconds()
		b.ReportMetric(rate, p.name+"-texts/s")
		if i > 1 {
			b.ReportMetric(spent[0].Seconds()/spent[i].Seconds(), p.name+"/forward")
			b.ReportMetric(spent[1].Seconds()/spent[i].Seconds(), p.name+"/model")
		}
	}
}

// BenchmarkWriters is the writers alone: 384-wide vectors into JSONL, .npy
// and Parquet, per vector (what the output costs the job).
func BenchmarkWriters(b *testing.B) {
	// 1000 different unit vectors, 384 wide: one repeated would let the
	// branch predictor learn its numbers.
	rng := rand.New(rand.NewPCG(1, 2))
	results := make([]Result, 1000)
	for i := range results {
		v := make([]float32, 384)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		vec.Normalize(v)
		results[i] = Result{ID: strconv.Itoa(100000 + i), Vectors: [][]float32{v}}
	}
	for _, ext := range []string{"jsonl", "npy", "parquet"} {
		b.Run("out="+ext, func(b *testing.B) {
			o := Output{Path: filepath.Join(b.TempDir(), "out."+ext)}
			s, err := o.open()
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				i++
				if err := s.write(&results[i%len(results)]); err != nil {
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
