package tokenizer

import (
	"testing"
)

// sotuTexts returns the 6,000 State of the Union sentences of the golden
// file and their total number of tokens.
func sotuTexts(b *testing.B) ([]string, int) {
	_, gold := load(b)
	var texts []string
	tokens := 0
	for _, g := range gold {
		if g.Set == "sotu" {
			texts = append(texts, g.Text)
			tokens += len(g.IDs)
		}
	}
	return texts, tokens
}

// BenchmarkEncode encodes all 6,000 sentences per iteration on one
// goroutine and reports tokens per second (one core).
func BenchmarkEncode(b *testing.B) {
	tok, _ := load(b)
	texts, tokens := sotuTexts(b)
	buf := make([]int32, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, s := range texts {
			buf, _ = tok.Encode(buf[:0], s, 0)
		}
	}
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEncodeParallel encodes all 6,000 sentences per iteration from
// GOMAXPROCS goroutines sharing one Tokenizer and reports the total tokens
// per second.
func BenchmarkEncodeParallel(b *testing.B) {
	tok, _ := load(b)
	texts, tokens := sotuTexts(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]int32, 0, 512)
		for pb.Next() {
			for _, s := range texts {
				buf, _ = tok.Encode(buf[:0], s, 0)
			}
		}
	})
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
