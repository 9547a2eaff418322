package models

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/embedd/embedd/models/safetensors"
	"github.com/embedd/embedd/vec"
)

// staticExpected is models/testdata/static/expected.json, written by
// scripts/gen_static_fixture.py with numpy and its own tokenizer.
type staticExpected struct {
	Texts   []string    `json:"texts"`
	ST      [][]float64 `json:"st"`
	ST16    [][]float64 `json:"st16"`
	M2V     [][]float64 `json:"m2v"`
	STIDs   [][]int32   `json:"st_ids"`
	ST16IDs [][]int32   `json:"st16_ids"`
	M2VIDs  [][]int32   `json:"m2v_ids"`
}

func readStaticExpected(t *testing.T) staticExpected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "static", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e staticExpected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// loadStaticFolder loads dir through Load, with no ONNX Runtime, and
// returns its static table.
func loadStaticFolder(dir string, maxLen int) (*staticModel, error) {
	m, err := Load(nil, Config{ID: "static", Path: dir, MaxLength: maxLen}, SessionConfig{})
	if err != nil {
		return nil, err
	}
	return m.static, nil
}

// staticVector is what the embed path gives text: Tokenize, Forward,
// Finish with the folder's normalisation.
func staticVector(t *testing.T, m *Model, text string) ([]int32, []float32) {
	t.Helper()
	ids, err := m.Tokenize(nil, 0, text, TruncateEnd)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, m.Info().Dim)
	if err := m.Forward([][]int32{ids}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	return ids, m.Finish(v, Options{})
}

func TestStaticMatchesNumpy(t *testing.T) {
	e := readStaticExpected(t)
	for _, c := range []struct {
		dir       string
		want      [][]float64
		wantIDs   [][]int32
		normalize bool
		maxLen    int
	}{
		{"st", e.ST, e.STIDs, true, 6},
		{"st16", e.ST16, e.ST16IDs, true, staticDefaultMaxLen},
		{"m2v", e.M2V, e.M2VIDs, false, staticDefaultMaxLen},
	} {
		m, err := Load(nil, Config{ID: c.dir, Path: filepath.Join("testdata", "static", c.dir)}, SessionConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if (m.static.half != nil) != (c.dir == "st16") {
			t.Errorf("%s: fp16 rows kept as halves: %v, want only for st16 (F16, no weights)", c.dir, m.static.half != nil)
		}
		inf := m.Info()
		if inf.Kind != KindStatic || inf.Dim != 8 || inf.Normalize != c.normalize || inf.MaxLength != c.maxLen || inf.Pooling != PoolMean || len(inf.Devices) != 1 {
			t.Errorf("%s: info %+v, want static, dim 8, normalize %v, max length %d, mean, one CPU device", c.dir, inf, c.normalize, c.maxLen)
		}
		for i, text := range e.Texts {
			ids, got := staticVector(t, m, text)
			if !slices.Equal(ids, c.wantIDs[i]) {
				t.Errorf("%s %q: ids %v, want %v", c.dir, text, ids, c.wantIDs[i])
			}
			for j, w := range c.want[i] {
				if math.Abs(float64(got[j])-w) > 1e-6 {
					t.Errorf("%s %q: component %d is %v, numpy says %v", c.dir, text, j, got[j], w)
					break
				}
			}
		}
	}
}

func TestStaticTruncation(t *testing.T) {
	m, err := loadStaticFolder(filepath.Join("testdata", "static", "st"), 3)
	if err != nil {
		t.Fatal(err)
	}
	ids, n := m.encode([]int32{99}, "the food was delicious .", m.maxLen)
	if !slices.Equal(ids, []int32{99, 5, 6, 7}) || n != 5 {
		t.Errorf("encode with max length 3 = %v (of %d), want [99 5 6 7] (of 5): appended, cut, no [CLS]/[SEP]", ids, n)
	}
	// Model2Vec cuts the text to max length × median token length code
	// points first (here 2 × 4): "delicious" becomes "deliciou", an unknown
	// word, which is dropped; "tasty meal" keeps "tasty" and "me".
	m2v, err := loadStaticFolder(filepath.Join("testdata", "static", "m2v"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if m2v.charsPerToken != 4 {
		t.Fatalf("median token length %d, want 4", m2v.charsPerToken)
	}
	for text, want := range map[string][]int32{"delicious": {}, "tasty meal": {10}, "a tasty meal": {9, 10}} {
		if ids, _ := m2v.encode(nil, text, m2v.maxLen); !slices.Equal(ids, want) {
			t.Errorf("m2v encode(%q) = %v, want %v", text, ids, want)
		}
	}
	if got := firstRunes("ééé", 2); got != "éé" {
		t.Errorf("firstRunes(ééé, 2) = %q: it must count code points, as Python does", got)
	}
}

func TestStaticFolderDetection(t *testing.T) {
	for dir, want := range map[string]bool{
		filepath.Join("testdata", "static", "st"):  true,
		filepath.Join("testdata", "static", "m2v"): true,
		t.TempDir(): false,
	} {
		if _, ok, err := staticFolder(dir); ok != want || err != nil {
			t.Errorf("staticFolder(%s) = %v, %v; want %v", dir, ok, err, want)
		}
	}
	onnx := t.TempDir()
	writeFile(t, filepath.Join(onnx, "modules.json"), `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}]`)
	if _, ok, _ := staticFolder(onnx); ok {
		t.Error("a Transformer folder was taken for a static one")
	}
}

func TestStaticModelOptions(t *testing.T) {
	dir := filepath.Join("testdata", "static", "st")
	off := false
	m, err := Load(nil, Config{ID: "st", Path: dir, Normalize: &off, Device: "cpu"}, SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Info().Normalize || m.Session() != nil {
		t.Errorf("normalize override ignored or a session reported: %+v", m.Info())
	}
	ids, err := m.Tokenize(nil, 3, "the food was delicious and the meal", Reject)
	if err == nil || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "has 7 tokens, over model st's limit of 6") {
		t.Errorf("Reject of 7 tokens over 6: %v, %v", ids, err)
	}
	if err := m.Forward([][]int32{{5}, {48}}, [][]float32{make([]float32, 8), make([]float32, 8)}); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "text 1 has token id 48") {
		t.Errorf("Forward of an id past the vocabulary: %v", err)
	}
	v := make([]float32, 8)
	if err := m.Forward([][]int32{{5, 6}}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	if got := m.Finish(v, Options{Dimensions: 3, Normalize: NormalizeOn}); len(got) != 3 || math.Abs(float64(got[0]*got[0]+got[1]*got[1]+got[2]*got[2])-1) > 1e-6 {
		t.Errorf("Matryoshka prefix of 3, normalised: %v", got)
	}
	for _, c := range []Config{{Device: "cuda"}, {Devices: []string{"cpu", "cuda:1"}}, {Pooling: "cls"}} {
		c.ID, c.Path = "st", dir
		if _, err := Load(nil, c, SessionConfig{}); err == nil || !strings.Contains(err.Error(), "static embedding model") {
			t.Errorf("Load(%+v) = %v, want a refusal naming the static model", c, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward([][]int32{{5}}, [][]float32{v}); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v, want ErrClosed", err)
	}
}

// copyStatic copies a fixture folder so a test can break one file.
func copyStatic(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", "static", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, rel), string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestStaticLoadErrors(t *testing.T) {
	stFile := filepath.Join("0_StaticEmbedding", "model.safetensors")
	header := func(h string, body int) string {
		b := make([]byte, 8+len(h)+body)
		b[0] = byte(len(h))
		copy(b[8:], h)
		return string(b)
	}
	for _, c := range []struct {
		name, model, file, data string
		want                    error
		text                    string
	}{
		{"truncated", "st", stFile, "", safetensors.ErrTruncated, "fewer than the 8"},
		{"wrong dtype", "st", stFile, header(`{"embedding.weight":{"dtype":"I32","shape":[48,8],"data_offsets":[0,1536]}}`, 1536), safetensors.ErrDType, "want F32, F16 or BF16"},
		{"not a matrix", "st", stFile, header(`{"embedding.weight":{"dtype":"F32","shape":[384],"data_offsets":[0,1536]}}`, 1536), safetensors.ErrShape, "want [rows, columns]"},
		{"too few rows", "st", stFile, header(`{"embedding.weight":{"dtype":"F32","shape":[47,8],"data_offsets":[0,1504]}}`, 1504), safetensors.ErrShape, "47 rows"},
		{"no known tensor", "st", stFile, header(`{"emb":{"dtype":"F32","shape":[48,8],"data_offsets":[0,1536]}}`, 1536), safetensors.ErrMissing, "embedding.weight (sentence-transformers) or embeddings (Model2Vec)"},
		{"mapping out of range", "m2v", "model.safetensors", header(`{"embeddings":{"dtype":"F32","shape":[1,8],"data_offsets":[0,32]},"mapping":{"dtype":"I64","shape":[48],"data_offsets":[32,416]}}`, 416) + "\x05", safetensors.ErrFormat, "follow the last"},
		{"weights of the wrong length", "m2v", "model.safetensors", header(`{"embeddings":{"dtype":"F32","shape":[48,8],"data_offsets":[0,1536]},"weights":{"dtype":"F32","shape":[4],"data_offsets":[1536,1552]}}`, 1552), safetensors.ErrShape, "want [48]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyStatic(t, c.model)
			writeFile(t, filepath.Join(dir, c.file), c.data)
			_, err := loadStaticFolder(dir, 0)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) || !strings.HasPrefix(err.Error(), "embedd/models: ") {
				t.Errorf("got %v, want %v mentioning %q", err, c.want, c.text)
			}
		})
	}
	dir := copyStatic(t, "m2v")
	// a mapping row past the table: 1 row, token 0 mapped to row 5
	h := `{"embeddings":{"dtype":"F32","shape":[1,8],"data_offsets":[0,32]},"mapping":{"dtype":"I64","shape":[48],"data_offsets":[32,416]}}`
	b := []byte(header(h, 416))
	b[8+len(h)+32] = 5
	writeFile(t, filepath.Join(dir, "model.safetensors"), string(b))
	if _, err := loadStaticFolder(dir, 0); !errors.Is(err, safetensors.ErrShape) || !strings.Contains(err.Error(), "row 5") {
		t.Errorf("mapping out of range: %v, want ErrShape naming row 5", err)
	}
}

func TestRegistryOfStaticModelsNeedsNoRuntime(t *testing.T) {
	var logs strings.Builder
	reg, err := OpenRegistry(RegistryConfig{ORTLib: filepath.Join(t.TempDir(), "no-libonnxruntime.so"), Models: []Config{
		{ID: "st", Path: filepath.Join("testdata", "static", "st")},
		{ID: "m2v", Path: filepath.Join("testdata", "static", "m2v")},
	}}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("static models only, ONNX Runtime absent: %v", err)
	}
	defer reg.Close()
	for _, inf := range reg.Models() {
		if inf.Kind != KindStatic {
			t.Errorf("%s: kind %q, want static", inf.ID, inf.Kind)
		}
	}
	if !strings.Contains(logs.String(), "kind=static") || strings.Contains(logs.String(), "onnxruntime") {
		t.Errorf("load log should name the kind and no ONNX Runtime: %s", logs.String())
	}
}

// TestStaticPoolExact checks pool, which sums a text's rows with
// vec.AddRows or vec.AddHalfRows, against the plain loop of one vec.Add or
// vec.AddHalf per token, bit for bit: fp32 and fp16 tables, with and
// without a Model2Vec mapping, for texts of one token to more than the 256
// ids pool maps at a time, with repeated ids, at widths on and off the
// kernels' steps.
func TestStaticPoolExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const vocab, rows = 300, 200
	for _, dim := range []int{8, 100, 384, 390} {
		table := make([]float32, rows*dim)
		half := make([]uint16, rows*dim)
		for i := range table {
			table[i] = float32(rng.NormFloat64()) * float32(math.Pow(10, float64(rng.IntN(7)-3)))
			half[i] = uint16(rng.Uint32()) &^ 0x4000 // finite
		}
		mapping := make([]int32, vocab)
		for i := range mapping {
			mapping[i] = int32(rng.IntN(rows))
		}
		for _, n := range []int{1, 2, 35, 256, 257, 600} {
			ids := make([]int32, n)
			for i := range ids {
				ids[i] = int32(rng.IntN(rows))
				if i > 0 && rng.IntN(4) == 0 {
					ids[i] = ids[i-1]
				}
			}
			for _, c := range []struct {
				name string
				m    *staticModel
			}{
				{"fp32", &staticModel{table: table, dim: dim}},
				{"fp16", &staticModel{half: half, dim: dim}},
				{"fp32 mapped", &staticModel{table: table, dim: dim, mapping: mapping}},
				{"fp16 mapped", &staticModel{half: half, dim: dim, mapping: mapping}},
			} {
				want := make([]float32, dim)
				for _, id := range ids {
					r := int(id)
					if c.m.mapping != nil {
						r = int(c.m.mapping[id])
					}
					if c.m.half != nil {
						vec.AddHalf(want, half[r*dim:])
					} else {
						vec.Add(want, table[r*dim:])
					}
				}
				for i := range want {
					want[i] *= 1 / float32(n)
				}
				got := make([]float32, dim)
				for i := range got {
					got[i] = 7 // pool overwrites dst
				}
				c.m.pool(got, ids)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s, dim %d, %d ids: component %d is %v, one Add per row gives %v", c.name, dim, n, i, got[i], want[i])
					}
				}
			}
		}
	}
}
