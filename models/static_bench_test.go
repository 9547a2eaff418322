package models

import (
	"testing"

	"github.com/embedd/embedd/models/modelstest"
)

// sentences35 returns the real sentences of modelstest that m cuts into 30
// to 40 tokens (35 on average), and their total number of tokens.
func sentences35(b *testing.B, m *Model) ([]string, int) {
	var texts []string
	tokens := 0
	for _, s := range modelstest.Sentences(b) {
		ids, err := m.Tokenize(nil, 0, s, TruncateEnd)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(ids); n >= 30 && n <= 40 {
			texts = append(texts, s)
			tokens += n
		}
	}
	return texts, tokens
}

// BenchmarkStaticEmbed runs the default static model's embed path on one
// goroutine (one core): Tokenize each text, Forward batches of 64 as the
// batcher packs them, Finish (normalise). It reports texts and tokens per
// second.
func BenchmarkStaticEmbed(b *testing.B) {
	cfg := DefaultRegistryConfig()
	if cfg.Default != DefaultStaticModelID {
		b.Skipf(".cache/models/%s is missing: scripts/setup.sh trains it", DefaultStaticModelID)
	}
	m, err := Load(nil, cfg.Models[1], SessionConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	texts, pieces := sentences35(b, m)
	const batch = 64
	dim := m.Info().Dim
	flat := make([]float32, batch*dim)
	dst := make([][]float32, batch)
	for i := range dst {
		dst[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	seqs := make([][]int32, 0, batch)
	var arena []int32
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for lo := 0; lo < len(texts); lo += batch {
			hi := min(lo+batch, len(texts))
			arena, seqs = arena[:0], seqs[:0]
			ends := [batch]int{}
			for i, t := range texts[lo:hi] {
				if arena, err = m.Tokenize(arena, i, t, TruncateEnd); err != nil {
					b.Fatal(err)
				}
				ends[i] = len(arena)
			}
			start := 0
			for _, end := range ends[:hi-lo] {
				seqs = append(seqs, arena[start:end:end])
				start = end
			}
			if err := m.Forward(seqs, dst[:hi-lo]); err != nil {
				b.Fatal(err)
			}
			for _, v := range dst[:hi-lo] {
				m.Finish(v, Options{})
			}
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(len(texts))*float64(b.N)/s, "texts/s")
	b.ReportMetric(float64(pieces)*float64(b.N)/s, "tokens/s")
}
