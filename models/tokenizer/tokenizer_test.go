package tokenizer

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"
)

const (
	modelPath  = "testdata/all-minilm-l6-v2.json"
	goldenPath = "testdata/golden_all-minilm-l6-v2_shared.jsonl.xz"
)

// goldenLine is one line of the golden file: ids produced by Hugging Face
// tokenizers 0.23.2 (see testdata/GOLDEN.md).
type goldenLine struct {
	Set  string  `json:"set"`
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

var (
	loadOnce   sync.Once
	loadedTok  *Tokenizer
	loadedGold []goldenLine
	loadErr    error
)

// load returns the all-MiniLM-L6-v2 tokenizer and the golden lines.
func load(tb testing.TB) (*Tokenizer, []goldenLine) {
	tb.Helper()
	loadOnce.Do(func() {
		loadedTok, loadErr = FromFile(modelPath)
		if loadErr != nil {
			return
		}
		loadedGold, loadErr = readGolden(goldenPath)
	})
	if loadErr != nil {
		tb.Fatal(loadErr)
	}
	return loadedTok, loadedGold
}

func readGolden(path string) ([]goldenLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, err
	}
	var lines []goldenLine
	dec := json.NewDecoder(r)
	for dec.More() {
		var l goldenLine
		if err := dec.Decode(&l); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, nil
}

func TestGolden(t *testing.T) {
	tok, gold := load(t)
	if len(gold) != 6052 {
		t.Fatalf("golden file has %d lines, want 6052", len(gold))
	}
	sets := map[string]int{}
	bad := 0
	for _, g := range gold {
		sets[g.Set]++
		got, n := tok.Encode(nil, g.Text, 0)
		if n != len(got) || !slices.Equal(got, g.IDs) {
			bad++
			if bad <= 5 {
				t.Errorf("set %s, text %q:\nwant %v\ngot  %v (n=%d)", g.Set, g.Text, g.IDs, got, n)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d lines differ", bad, len(gold))
	}
	if sets["sotu"] != 6000 || sets["edge"] != 52 {
		t.Errorf("sets = %v, want 6000 sotu and 52 edge", sets)
	}
}

func TestTruncation(t *testing.T) {
	tok, gold := load(t)
	long := strings.Repeat(gold[0].Text+" ", 20)
	full, n := tok.Encode(nil, long, 0)
	if n != len(full) || n <= 256 {
		t.Fatalf("full encoding: len %d, n %d; want n == len > 256", len(full), n)
	}
	for _, maxLen := range []int{256, 3, 2, 1, n - 1, n, n + 1} {
		got, gotN := tok.Encode(nil, long, maxLen)
		if gotN != n {
			t.Errorf("maxLen %d: n = %d, want %d", maxLen, gotN, n)
		}
		wantLen := min(max(maxLen, 2), n)
		want := append(slices.Clone(full[:wantLen-1]), tok.SEPID())
		if !slices.Equal(got, want) {
			t.Errorf("maxLen %d: got %v, want %v", maxLen, got, want)
		}
	}
	got, _ := tok.Encode(nil, long, 2)
	if !slices.Equal(got, []int32{tok.CLSID(), tok.SEPID()}) {
		t.Errorf("maxLen 2: got %v, want [CLS] [SEP]", got)
	}
	// maxLen <= 0 means no limit.
	for _, maxLen := range []int{0, -1} {
		if got, _ := tok.Encode(nil, long, maxLen); !slices.Equal(got, full) {
			t.Errorf("maxLen %d truncated the encoding", maxLen)
		}
	}
}

func TestEncodeAppends(t *testing.T) {
	tok, _ := load(t)
	prefix := []int32{7, 8, 9}
	got, n := tok.Encode(slices.Clone(prefix), "Hello, World!", 0)
	want := append(slices.Clone(prefix), 101, 7592, 1010, 2088, 999, 102)
	if !slices.Equal(got, want) || n != 6 {
		t.Errorf("got %v n=%d, want %v n=6", got, n, want)
	}
	got, n = tok.Encode(slices.Clone(prefix), "Hello, World!", 4)
	want = append(slices.Clone(prefix), 101, 7592, 1010, 102)
	if !slices.Equal(got, want) || n != 6 {
		t.Errorf("truncated: got %v n=%d, want %v n=6", got, n, want)
	}
}

func TestSpecialTokens(t *testing.T) {
	tok, _ := load(t)
	if tok.VocabSize() != 30522 {
		t.Errorf("VocabSize = %d, want 30522", tok.VocabSize())
	}
	for _, c := range []struct {
		id   int32
		name string
	}{{tok.PadID(), "[PAD]"}, {tok.UNKID(), "[UNK]"}, {tok.CLSID(), "[CLS]"}, {tok.SEPID(), "[SEP]"}} {
		if s, ok := tok.Token(c.id); !ok || s != c.name {
			t.Errorf("Token(%d) = %q, %v; want %q", c.id, s, ok, c.name)
		}
	}
	if tok.PadID() != 0 || tok.UNKID() != 100 || tok.CLSID() != 101 || tok.SEPID() != 102 {
		t.Errorf("ids = %d %d %d %d, want 0 100 101 102", tok.PadID(), tok.UNKID(), tok.CLSID(), tok.SEPID())
	}
	if s, ok := tok.Token(2088); !ok || s != "world" {
		t.Errorf("Token(2088) = %q, %v", s, ok)
	}
	for _, id := range []int32{-1, 30522, 1 << 30} {
		if _, ok := tok.Token(id); ok {
			t.Errorf("Token(%d) reported ok", id)
		}
	}
}

// Added tokens with normalized=false are matched in the raw text before
// normalization, so "[MASK]" is one token while "[mask]" is three words.
func TestAddedTokens(t *testing.T) {
	tok, _ := load(t)
	for _, c := range []struct {
		text string
		want []int32
	}{
		{"hello [MASK] world", []int32{101, 7592, 103, 2088, 102}},
		{"hello[MASK]world", []int32{101, 7592, 103, 2088, 102}},
		{"[CLS][SEP][PAD][UNK]", []int32{101, 101, 102, 0, 100, 102}},
		{"[mask]", []int32{101, 1031, 7308, 1033, 102}},
		{"[MASK", []int32{101, 1031, 7308, 102}},
	} {
		if got, _ := tok.Encode(nil, c.text, 0); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.text, got, c.want)
		}
	}
}

// Behaviour derived from tokenizers' code and the crates it uses, beyond
// what the golden file covers.
func TestUnicodeDetails(t *testing.T) {
	tok, _ := load(t)
	enc := func(s string) []int32 {
		ids, _ := tok.Encode(nil, s, 0)
		return ids
	}
	same := []struct{ a, b string }{
		{"caf\u00e9", "cafe"},              // NFD, then Mn removed
		{"cafe\u0301", "cafe"},             // combining acute removed
		{"e\x01\u0301x", "ex"},             // control removed before NFD
		{"a\u00adb", "ab"},                 // soft hyphen (Cf) removed
		{"a\ufeffb", "ab"},                 // BOM removed
		{"a\ue001b", "ab"},                 // private use removed
		{"a\u0085b", "ab"},                 // NEL is Cc: removed, not a space
		{"a\u2028b", "a b"},                // line separator is whitespace
		{"a\u00a0b", "a b"},                // no-break space is whitespace
		{"a\x0bb", "ab"},                   // VT is Cc: removed
		{"\u212a", "k"},                    // Kelvin sign decomposes to K
		{"\u0130", "i"},                    // İ: NFD then lowercase
		{"a\xffb", "ab"},                   // invalid UTF-8 is U+FFFD: removed
		{"\u4e00\u4e01", "\u4e00 \u4e01"},  // CJK characters are words
		{"x\U0002B920y", "x \U0002B920 y"}, // CJK extension E is padded
		{"a\u037eb", "a;b"},                // Greek question mark is ';' after NFD
		{"a\u166db", "a \u166d b"},         // Po in Unicode 8 (So today): split off
	}
	for _, c := range same {
		if a, b := enc(c.a), enc(c.b); !slices.Equal(a, b) {
			t.Errorf("%q -> %v, %q -> %v; want equal", c.a, a, c.b, b)
		}
	}
	// Each of these makes one word that is not in the vocab: a mark added
	// after Unicode 8 is not removed, U+2B820 is outside HF's CJK ranges,
	// and U+2E43 (punctuation since Unicode 9) is not split off.
	for _, s := range []string{"e\u1df6", "x\U0002B820y", "a\u2e43b"} {
		if got, want := enc(s), []int32{101, 100, 102}; !slices.Equal(got, want) {
			t.Errorf("%q: got %v, want %v", s, got, want)
		}
	}
	// Words longer than 100 characters are [UNK]; 100 is still split.
	if got := enc(strings.Repeat("a", 101)); !slices.Equal(got, []int32{101, 100, 102}) {
		t.Errorf("101 a's: got %v", got)
	}
	if got := enc(strings.Repeat("a", 100)); len(got) < 3 || slices.Contains(got, 100) {
		t.Errorf("100 a's: got %v", got)
	}
	if got := enc(strings.Repeat("\u00e9", 101)); !slices.Equal(got, []int32{101, 100, 102}) {
		t.Errorf("101 é's: got %v", got)
	}
}

func TestConcurrent(t *testing.T) {
	tok, gold := load(t)
	if len(gold) > 600 && testing.Short() {
		gold = gold[:600]
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var buf []int32
			for i := range gold {
				l := gold[(i+g*377)%len(gold)]
				var n int
				buf, n = tok.Encode(buf[:0], l.Text, 0)
				if n != len(l.IDs) || !slices.Equal(buf, l.IDs) {
					errs <- l.Text
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for text := range errs {
		t.Errorf("concurrent encoding of %q differs", text)
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	tok, gold := load(t)
	buf := make([]int32, 0, 1024)
	tok.Encode(buf, gold[0].Text, 0) // warm the pool
	allocs := testing.AllocsPerRun(100, func() {
		for _, g := range gold[:50] {
			tok.Encode(buf[:0], g.Text, 0)
		}
		for _, g := range gold[6000:] {
			tok.Encode(buf[:0], g.Text, 0)
		}
	})
	if allocs > 0 {
		t.Errorf("Encode allocated %.1f times per run", allocs)
	}
}

func TestLoadErrors(t *testing.T) {
	base, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	// edit returns the model file with one change made by f.
	edit := func(f func(doc map[string]any)) []byte {
		var d map[string]any
		_ = json.Unmarshal(base, &d)
		f(d)
		b, _ := json.Marshal(d)
		return b
	}
	model := func(d map[string]any) map[string]any { return d["model"].(map[string]any) }
	cases := []struct {
		name string
		data []byte
		is   error
		msg  string
	}{
		{"broken json", []byte(`{"model": `), ErrInvalid, "unexpected end"},
		{"not an object", []byte(`[1,2]`), ErrInvalid, "cannot unmarshal"},
		{"bpe", edit(func(d map[string]any) { model(d)["type"] = "BPE" }), ErrUnsupported, `model type "BPE"`},
		{"no model", edit(func(d map[string]any) { delete(d, "model") }), ErrInvalid, "no model"},
		{"empty vocab", edit(func(d map[string]any) { model(d)["vocab"] = map[string]any{} }), ErrInvalid, "empty vocab"},
		{"missing unk", edit(func(d map[string]any) { delete(model(d)["vocab"].(map[string]any), "[UNK]") }), ErrInvalid, `unk_token "[UNK]"`},
		{"missing cls", edit(func(d map[string]any) {
			delete(d["post_processor"].(map[string]any)["special_tokens"].(map[string]any), "[CLS]")
		}), ErrInvalid, `special token "[CLS]"`},
		{"missing pad", edit(func(d map[string]any) {
			delete(model(d)["vocab"].(map[string]any), "[PAD]")
			d["added_tokens"] = []any{}
			d["padding"] = nil
		}), ErrInvalid, "no padding token"},
		{"negative id", edit(func(d map[string]any) { model(d)["vocab"].(map[string]any)["zzz"] = -5 }), ErrInvalid, "id -5"},
		{"huge id", edit(func(d map[string]any) { model(d)["vocab"].(map[string]any)["zzz"] = 1 << 30 }), ErrInvalid, "id 1073741824, outside"},
		{"duplicate id", edit(func(d map[string]any) { model(d)["vocab"].(map[string]any)["zzz"] = 2088 }), ErrInvalid, "id 2088 is both"},
		{"sequence normalizer", edit(func(d map[string]any) {
			d["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{}}
		}), ErrUnsupported, `normalizer type "Sequence"`},
		{"whitespace pre-tokenizer", edit(func(d map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Whitespace"}
		}), ErrUnsupported, `pre_tokenizer type "Whitespace"`},
		{"no post-processor", edit(func(d map[string]any) { d["post_processor"] = nil }), ErrUnsupported, "post_processor type"},
		{"lstrip added token", edit(func(d map[string]any) {
			d["added_tokens"].([]any)[4].(map[string]any)["lstrip"] = true
		}), ErrUnsupported, `"[MASK]" uses single_word, lstrip or rstrip`},
	}
	for _, c := range cases {
		_, err := FromJSON(c.data)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "embedd/tokenizer: ") {
			t.Errorf("%s: error %q; want it to wrap %v and mention %q", c.name, err, c.is, c.msg)
		}
	}

	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, cases[2].data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(path); err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, ErrUnsupported) {
		t.Errorf("FromFile: error %v; want it to name %s and wrap ErrUnsupported", err, path)
	}
	if _, err := FromFile(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FromFile of a missing file: %v", err)
	}
}

// The other supported shapes of tokenizer.json load and behave as declared.
func TestLoadVariants(t *testing.T) {
	base, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(doc map[string]any)) *Tokenizer {
		t.Helper()
		var d map[string]any
		_ = json.Unmarshal(base, &d)
		f(d)
		b, _ := json.Marshal(d)
		tok, err := FromJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bert := edit(func(d map[string]any) {
		d["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 102}, "cls": []any{"[CLS]", 101}}
		d["truncation"] = "lenient: ignored"
		d["padding"] = map[string]any{"pad_token": "[MASK]"}
	})
	if got, _ := bert.Encode(nil, "Hello", 0); !slices.Equal(got, []int32{101, 7592, 102}) {
		t.Errorf("BertProcessing: got %v", got)
	}
	if bert.PadID() != 103 {
		t.Errorf("padding.pad_token [MASK]: PadID = %d, want 103", bert.PadID())
	}
	cased := edit(func(d map[string]any) {
		d["normalizer"].(map[string]any)["lowercase"] = false
	})
	// Without lowercase (and so without strip_accents) "Hello" is not in
	// the uncased vocab: it is split into known pieces.
	if got, _ := cased.Encode(nil, "Hello", 0); slices.Equal(got, []int32{101, 7592, 102}) {
		t.Errorf("lowercase=false still lowercases: %v", got)
	}
	raw := edit(func(d map[string]any) { d["normalizer"] = nil })
	if got, _ := raw.Encode(nil, "hello\u00adworld", 0); slices.Equal(got, []int32{101, 7592, 2088, 102}) {
		t.Errorf("no normalizer still removes the soft hyphen: %v", got)
	}
}
