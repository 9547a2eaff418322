package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// reference is the response as encoding/json writes it from structs of
// OpenAI's shape.
func reference(t *testing.T, vectors [][]float32, model string, tokens int, b64 bool) []byte {
	t.Helper()
	type embedding struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	type usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	var resp struct {
		Object string      `json:"object"`
		Data   []embedding `json:"data"`
		Model  string      `json:"model"`
		Usage  usage       `json:"usage"`
	}
	resp.Object, resp.Model, resp.Usage = "list", model, usage{tokens, tokens}
	resp.Data = []embedding{}
	for i, v := range vectors {
		var e any = v
		if b64 {
			raw := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(x))
			}
			e = base64.StdEncoding.EncodeToString(raw)
		}
		resp.Data = append(resp.Data, embedding{"embedding", i, e})
	}
	out, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendEmbeddingsIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.05)
		}
		return v
	}
	for _, c := range []struct {
		name    string
		vectors [][]float32
		model   string
	}{
		{"none", nil, "static-en"},
		{"one", [][]float32{vec(384)}, "static-en"},
		{"several", [][]float32{vec(8), vec(8), {0, -0.5, 1e-7, 3e21}}, "a <model> & \"quoted\" é"},
		{"empty vector", [][]float32{{}}, "m"},
	} {
		for _, b64 := range []bool{false, true} {
			got := AppendEmbeddings([]byte("prefix"), c.vectors, c.model, 17, b64)
			want := append([]byte("prefix"), reference(t, c.vectors, c.model, 17, b64)...)
			if !bytes.Equal(got, want) {
				t.Errorf("%s (base64 %v):\n got %s\nwant %s", c.name, b64, got, want)
			}
		}
	}
}

func TestBase64(t *testing.T) {
	for f, want := range map[string]bool{"": false, "float": false, "base64": true} {
		if got, err := Base64(f); got != want || err != nil {
			t.Errorf("Base64(%q) = %v, %v; want %v", f, got, err, want)
		}
	}
	if _, err := Base64("hex"); err == nil || err.Error() != `encoding_format "hex" is not float or base64` {
		t.Errorf("Base64(hex): %v", err)
	}
}
