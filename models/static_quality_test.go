package models

import (
	"bufio"
	"cmp"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ulikunitz/xz"
)

// realDocsFile holds 389 documents with the vectors the real
// all-MiniLM-L6-v2 gives them (see its NOTICE). CI has shared/ beside the
// clone; the documents only judge models, nothing is trained on them.
var realDocsFile = filepath.Join("..", "shared", "testdata", "minilm-real", "fiori-docs-minilm-l6-v2.visible.jsonl.xz")

type realDoc struct {
	Text      string    `json:"text"`
	Embedding []float64 `json:"embedding"`
}

func readRealDocs(t *testing.T) []realDoc {
	t.Helper()
	path := findUp(realDocsFile)
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("the reference documents are absent (%v): CI has them in ../shared beside the clone", err)
	}
	defer f.Close()
	r, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var docs []realDoc
	for dec := json.NewDecoder(r); dec.More(); {
		var d realDoc
		if err := dec.Decode(&d); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	return docs
}

// TestStaticDefaultModelQuality measures how well the default static model's
// neighbours agree with the real all-MiniLM-L6-v2's on the reference
// documents (their first 256 tokens): overlap@10 (the share of each
// document's 10 nearest neighbours under the real model that the model also
// ranks in its top 10) and the Spearman correlation of all pairwise
// cosines. It must beat tf-idf over WordPiece tokens (0.387 and 0.505).
func TestStaticDefaultModelQuality(t *testing.T) {
	docs := readRealDocs(t)
	m := loadDefaultStatic(t)
	got := make([][]float64, len(docs))
	want := make([][]float64, len(docs))
	for i, d := range docs {
		got[i] = embedStatic(t, m, i, d.Text)
		want[i] = d.Embedding
	}
	overlap, rho := neighbourAgreement(got, want, 10)
	t.Logf("%s on %d documents: overlap@10 %.3f, Spearman of pairwise cosines %.3f", DefaultStaticModelID, len(docs), overlap, rho)
	if overlap <= 0.387 || rho <= 0.505 {
		t.Errorf("overlap@10 %.3f and Spearman %.3f do not beat tf-idf's 0.387 and 0.505", overlap, rho)
	}
}

// TestStaticDefaultModelExamples holds the README's example searches: over
// eight short documents, each query finds the document a person expects.
func TestStaticDefaultModelExamples(t *testing.T) {
	m := loadDefaultStatic(t)
	docs := []string{
		"The food was delicious",
		"Our flight to Paris was delayed by two hours",
		"Heavy rain and strong wind are expected tomorrow",
		"The stock market fell sharply today",
		"She plays the piano every evening",
		"The new phone has a larger screen",
		"My dog loves running in the park",
		"He fixed the bug in the database query",
	}
	vecs := make([][]float64, len(docs))
	for i, d := range docs {
		vecs[i] = embedStatic(t, m, i, d)
	}
	for query, want := range map[string]int{"tasty meal": 0, "my plane was late": 1, "weather forecast": 2} {
		q := embedStatic(t, m, 0, query)
		best, scores := -1, make([]float64, len(docs))
		for i, v := range vecs {
			for d := range v {
				scores[i] += q[d] * v[d]
			}
			if best < 0 || scores[i] > scores[best] {
				best = i
			}
		}
		if best != want {
			t.Errorf("%q finds %q (%.3f) first, want %q (%.3f)", query, docs[best], scores[best], docs[want], scores[want])
		}
	}
}

// loadDefaultStatic loads .cache/models/static-en, skipping the test where
// set-up has not trained it.
func loadDefaultStatic(t *testing.T) *Model {
	t.Helper()
	cfg := DefaultRegistryConfig()
	if cfg.Default != DefaultStaticModelID {
		if os.Getenv("EMBEDD_REQUIRE_ORT") != "" {
			t.Fatalf("EMBEDD_REQUIRE_ORT is set and .cache/models/%s is missing (scripts/setup.sh trains it)", DefaultStaticModelID)
		}
		t.Skipf(".cache/models/%s is missing: scripts/setup.sh trains it", DefaultStaticModelID)
	}
	m, err := Load(nil, Config{ID: DefaultStaticModelID, Path: cfg.Models[1].Path, MaxLength: 256}, SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// embedStatic is text's unit vector under m (its first 256 tokens).
func embedStatic(t *testing.T, m *Model, i int, text string) []float64 {
	t.Helper()
	ids, err := m.Tokenize(nil, i, text, TruncateEnd)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, m.Info().Dim)
	if err := m.Forward([][]int32{ids}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	return float64s(m.Finish(v, Options{Normalize: NormalizeOn}))
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// neighbourAgreement returns overlap@k of a's neighbours with b's and the
// Spearman correlation of their pairwise cosines (unit vectors: dot
// products).
func neighbourAgreement(a, b [][]float64, k int) (overlap, spearman float64) {
	n := len(a)
	simA, simB := pairwise(a), pairwise(b)
	for i := range n {
		top := func(sim []float64) map[int]bool {
			idx := make([]int, 0, n-1)
			for j := range n {
				if j != i {
					idx = append(idx, j)
				}
			}
			slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(sim[i*n+y], sim[i*n+x]) })
			set := map[int]bool{}
			for _, j := range idx[:k] {
				set[j] = true
			}
			return set
		}
		ta, tb := top(simA), top(simB)
		for j := range tb {
			if ta[j] {
				overlap++
			}
		}
	}
	overlap /= float64(n * k)
	var xa, xb []float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			xa, xb = append(xa, simA[i*n+j]), append(xb, simB[i*n+j])
		}
	}
	return overlap, pearson(ranks(xa), ranks(xb))
}

func pairwise(v [][]float64) []float64 {
	n := len(v)
	out := make([]float64, n*n)
	for i := range n {
		for j := range n {
			var s float64
			for d := range v[i] {
				s += v[i][d] * v[j][d]
			}
			out[i*n+j] = s
		}
	}
	return out
}

// ranks gives each value its rank (1-based), ties the mean of their ranks.
func ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	r := make([]float64, len(x))
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		for hi < len(idx) && x[idx[hi]] == x[idx[lo]] {
			hi++
		}
		for _, i := range idx[lo:hi] {
			r[i] = float64(lo+hi+1) / 2
		}
		lo = hi
	}
	return r
}

func pearson(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}
