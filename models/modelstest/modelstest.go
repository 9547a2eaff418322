// Package modelstest gives tests and benchmarks real text: the State of the
// Union sentences of the tokenizer's golden file, and passages of an exact
// token length built from them.
package modelstest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/embedd/embedd/models/tokenizer"
)

// Sentences returns the 6,000 real sentences (set "sotu") of
// models/tokenizer/testdata/golden_all-minilm-l6-v2_shared.jsonl.xz.
func Sentences(tb testing.TB) []string {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(self), "..", "tokenizer", "testdata", "golden_all-minilm-l6-v2_shared.jsonl.xz"))
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

// Passages joins consecutive sentences, word by word, into n distinct texts
// of exactly tokens tokens under tok ([CLS] and [SEP] included).
func Passages(tb testing.TB, tok *tokenizer.Tokenizer, n, tokens int) []string {
	tb.Helper()
	words := strings.Fields(strings.Join(Sentences(tb), " "))
	out := make([]string, 0, n)
	var cur []string
	var ids []int32
	for _, w := range words {
		cur = append(cur, w)
		ids, _ = tok.Encode(ids[:0], strings.Join(cur, " "), 0)
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
	tb.Fatalf("modelstest: corpus too small for %d passages of %d tokens", n, tokens)
	return nil
}
