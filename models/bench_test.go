package models

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// sotuSentences reads the real sentences of the tokenizer's golden file.
func sotuSentences(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("tokenizer/testdata/golden_all-minilm-l6-v2_shared.jsonl.xz")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Set, Text string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			tb.Fatal(err)
		}
		if rec.Set == "sotu" {
			out = append(out, rec.Text)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// passages joins consecutive real sentences into n texts of exactly tokens
// tokens ([CLS] and [SEP] included), word by word.
func passages(tb testing.TB, m *Model, n, tokens int) []string {
	words := strings.Fields(strings.Join(sotuSentences(tb), " "))
	out := make([]string, 0, n)
	var cur []string
	var ids []int32
	for _, w := range words {
		cur = append(cur, w)
		ids, _ = m.Tokenizer().Encode(ids[:0], strings.Join(cur, " "), 0)
		switch {
		case len(ids) == tokens:
			out = append(out, strings.Join(cur, " "))
			cur = cur[:0]
		case len(ids) > tokens:
			cur = cur[:len(cur)-1] // this word overshoots; try the next
		}
		if len(out) == n {
			return out
		}
	}
	tb.Fatalf("corpus too small for %d passages of %d tokens", n, tokens)
	return nil
}

// BenchmarkEmbedVsSession measures, in one run, the whole path (tokenize,
// batch, infer, pool, normalise) against the ONNX session alone on the same
// pre-tokenized, pre-padded batches, at 128-token texts. Compare texts/s of
// path=embed and path=session for each batch size.
func BenchmarkEmbedVsSession(b *testing.B) {
	m := needModel(b)
	const tokens = 128
	ctx := context.Background()
	for _, size := range []int{1, 8, 32} {
		texts := passages(b, m, size, tokens)
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
