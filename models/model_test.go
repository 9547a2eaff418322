package models

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/embedd/embedd/models/modelstest"
)

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestMeanPoolingMatchesIndependentComputation runs the raw session on a
// hand-padded batch and averages the hidden states in float64 over the
// attention mask, independently of pool(); Embed must agree.
func TestMeanPoolingMatchesIndependentComputation(t *testing.T) {
	m := needModel(t)
	if m.Info().Pooling != PoolMean {
		t.Fatalf("test model pooling = %s, want mean (1_Pooling/config.json)", m.Info().Pooling)
	}
	texts := modelstest.SampleTexts
	seqs := make([][]int32, len(texts))
	longest := 0
	for i, s := range texts {
		seqs[i], _ = m.Tokenizer().Encode(nil, s, m.Info().MaxLength)
		longest = max(longest, len(seqs[i]))
	}
	h := m.Info().Dim
	b := Batch{Size: len(texts), SeqLen: longest}
	b.IDs = make([]int64, b.Size*b.SeqLen)
	b.Mask = make([]int64, b.Size*b.SeqLen)
	b.TypeIDs = make([]int64, b.Size*b.SeqLen)
	for i, s := range seqs {
		for j, id := range s {
			b.IDs[i*longest+j] = int64(id)
			b.Mask[i*longest+j] = 1
		}
	}
	raw, err := m.Session().Run(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != b.Size*b.SeqLen*h {
		t.Fatalf("raw output has %d floats, want %d", len(raw), b.Size*b.SeqLen*h)
	}
	got, err := embed(m, texts, Options{Normalize: NormalizeOff})
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		want := make([]float64, h)
		var count float64
		for j := 0; j < longest; j++ {
			if b.Mask[i*longest+j] == 0 {
				continue
			}
			count++
			for k := 0; k < h; k++ {
				want[k] += float64(raw[(i*longest+j)*h+k])
			}
		}
		var maxDiff float64
		for k := range want {
			maxDiff = math.Max(maxDiff, math.Abs(want[k]/count-float64(got.Vectors[i][k])))
		}
		// Embed runs text i in a batch of other shapes; ORT's kernels may
		// sum in another order, hence a tolerance above float32 rounding.
		if maxDiff > 1e-4 {
			t.Errorf("text %d: mean pooling differs from the independent computation by %g", i, maxDiff)
		}
	}
}

func TestNormalizeAndDimensions(t *testing.T) {
	m := needModel(t)
	raw, err := embed(m, modelstest.SampleTexts[:3], Options{Normalize: NormalizeOff})
	if err != nil {
		t.Fatal(err)
	}
	unit, err := embed(m, modelstest.SampleTexts[:3], Options{Normalize: NormalizeOn})
	if err != nil {
		t.Fatal(err)
	}
	short, err := embed(m, modelstest.SampleTexts[:3], Options{Normalize: NormalizeOn, Dimensions: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if n := norm(unit.Vectors[i]); math.Abs(n-1) > 1e-5 {
			t.Errorf("text %d: normalised norm %g", i, n)
		}
		if n := norm(raw.Vectors[i]); math.Abs(n-1) < 1e-3 {
			t.Errorf("text %d: unnormalised vector already has norm %g; the test cannot tell", i, n)
		}
		if len(short.Vectors[i]) != 64 {
			t.Fatalf("dimensions 64 gave %d components", len(short.Vectors[i]))
		}
		if n := norm(short.Vectors[i]); math.Abs(n-1) > 1e-5 {
			t.Errorf("text %d: truncated vector not re-normalised: norm %g", i, n)
		}
		// Matryoshka: truncate the raw vector, then normalise.
		if c := modelstest.Cosine(short.Vectors[i], raw.Vectors[i][:64]); c < 0.99999 {
			t.Errorf("text %d: dimensions 64 is not the normalised prefix (cosine %g)", i, c)
		}
	}
	if raw.Tokens <= 3*2 {
		t.Errorf("Tokens = %d, want the count of all ids fed", raw.Tokens)
	}
}

func TestTruncation(t *testing.T) {
	m := needModel(t)
	long := strings.Repeat("word ", 1000)
	res, err := embed(m, []string{"ok", long}, Options{})
	if err != nil {
		t.Fatalf("default truncation: %v", err)
	}
	if res.Tokens != 3+m.Info().MaxLength {
		t.Errorf("Tokens = %d, want 3 + %d (the long text cut to the limit)", res.Tokens, m.Info().MaxLength)
	}
	exact := strings.Repeat("word ", m.Info().MaxLength-2) // exactly the limit
	cut, err := embed(m, []string{exact}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := modelstest.Cosine(cut.Vectors[0], res.Vectors[1]); c < 0.99999 {
		t.Errorf("truncated text is not the embedding of its first %d tokens (cosine %g)", m.Info().MaxLength, c)
	}
	_, err = embed(m, []string{"ok", long}, Options{Truncate: Reject})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Index != 1 || !strings.Contains(ie.Reason, "1002 tokens") {
		t.Fatalf("Reject on a 1002-token text: got %v, want an InputError for text 1 naming 1002 tokens", err)
	}
	if _, err := embed(m, []string{exact}, Options{Truncate: Reject}); err != nil {
		t.Errorf("a text exactly at the limit was rejected: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	m := needModel(t)
	cases := []struct {
		name  string
		texts []string
		opts  Options
		want  string
	}{
		{"invalid utf-8", []string{"fine", "bad \xff\xfe"}, Options{}, "text 1 is not valid UTF-8"},
		{"dimensions too big", []string{"x"}, Options{Dimensions: 385}, "dimensions 385 is not in [1, 384]"},
		{"dimensions negative", []string{"x"}, Options{Dimensions: -1}, "dimensions -1 is not in [1, 384]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := embed(m, c.texts, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("got %v, want an ErrInvalidInput containing %q", err, c.want)
			}
		})
	}
	if err := m.Forward([][]int32{{}}, [][]float32{make([]float32, m.Info().Dim)}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("empty token sequence: got %v, want ErrInvalidInput", err)
	}
}

func TestConcurrentForward(t *testing.T) {
	m := needModel(t)
	want, err := embed(m, modelstest.SampleTexts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			i := g % len(modelstest.SampleTexts)
			res, err := embed(m, modelstest.SampleTexts[i:], Options{})
			if err != nil {
				errs <- err
				return
			}
			for j, v := range res.Vectors {
				if c := modelstest.Cosine(v, want.Vectors[i+j]); c < 0.99999 {
					errs <- fmt.Errorf("goroutine %d text %d: cosine %g", g, i+j, c)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
