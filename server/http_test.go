package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
)

const testKey = "test-key-0123456789"

func post(t *testing.T, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func get(t testing.TB, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type openAIReply struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	} `json:"error"`
}

// TestOpenAIDocumentationExample sends the request of OpenAI's API
// reference for POST /v1/embeddings, byte for byte apart from the key.
func TestOpenAIDocumentationExample(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{testKey}
	ts := startServer(t, cfg)
	body := `{
    "input": "The food was delicious and the waiter...",
    "model": "text-embedding-ada-002",
    "encoding_format": "float"
  }`
	resp, raw := post(t, ts.httpBase+"/v1/embeddings", testKey, body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var r openAIReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	var vec []float64
	if len(r.Data) == 1 {
		json.Unmarshal(r.Data[0].Embedding, &vec)
	}
	m, _ := testReg.Get("a")
	ids, _ := m.Tokenizer().Encode(nil, "The food was delicious and the waiter...", 0)
	if r.Object != "list" || len(r.Data) != 1 || r.Data[0].Object != "embedding" || r.Data[0].Index != 0 ||
		len(vec) != 384 || r.Model != "text-embedding-ada-002" || r.Usage.PromptTokens != len(ids) || r.Usage.TotalTokens != len(ids) {
		t.Fatalf("reply not shaped like OpenAI's: %s", raw)
	}
	var n float64
	for _, x := range vec {
		n += x * x
	}
	if math.Abs(math.Sqrt(n)-1) > 1e-5 {
		t.Errorf("embedding norm %g, want 1 as OpenAI's", math.Sqrt(n))
	}

	// base64, an array input and dimensions.
	resp, raw = post(t, ts.httpBase+"/v1/embeddings", testKey, `{"input": ["The food was delicious and the waiter...", "second"], "model": "a", "encoding_format": "base64", "dimensions": 32}`)
	if resp.StatusCode != 200 {
		t.Fatalf("base64: %d %s", resp.StatusCode, raw)
	}
	var r2 openAIReply
	json.Unmarshal(raw, &r2)
	var b64 string
	json.Unmarshal(r2.Data[0].Embedding, &b64)
	buf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(buf) != 32*4 || len(r2.Data) != 2 || r2.Data[1].Index != 1 {
		t.Fatalf("base64 reply: %v %d bytes %s", err, len(buf), raw)
	}
	// Its first 32 components, re-normalised, are the float answer's prefix re-normalised.
	var pn float64
	for _, x := range vec[:32] {
		pn += x * x
	}
	for j := range 32 {
		got := float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:])))
		if want := vec[j] / math.Sqrt(pn); math.Abs(got-want) > 1e-5 {
			t.Fatalf("component %d: base64 %g, float %g", j, got, want)
		}
	}
}

func TestOpenAIErrors(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{testKey}
	cfg.MaxMessageBytes = 4096
	ts := startServer(t, cfg)
	url := ts.httpBase + "/v1/embeddings"
	for _, c := range []struct {
		name, key, body string
		code            int
		want            string
	}{
		{"no key", "", `{"input": "x"}`, 401, "missing or wrong API key"},
		{"wrong key", "wrong-key-0123456789", `{"input": "x"}`, 401, "missing or wrong API key"},
		{"not json", testKey, `{"input":`, 400, "not valid JSON"},
		{"no input", testKey, `{"model": "a"}`, 400, "input is required"},
		{"token arrays", testKey, `{"input": [[1, 2]]}`, 400, "token arrays are not supported"},
		{"empty list", testKey, `{"input": []}`, 400, "texts: the list is empty"},
		{"unknown model", testKey, `{"input": "x", "model": "gpt-9"}`, 404, `model "gpt-9" is not loaded`},
		{"bad format", testKey, `{"input": "x", "encoding_format": "hex"}`, 400, `encoding_format "hex"`},
		{"too big", testKey, `{"input": "` + strings.Repeat("x", 5000) + `"}`, 413, "over the limit of 4096 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, raw := post(t, url, c.key, c.body)
			var r openAIReply
			json.Unmarshal(raw, &r)
			if resp.StatusCode != c.code || r.Error == nil || !strings.Contains(r.Error.Message, c.want) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, raw, c.code, c.want)
			}
		})
	}
	// Health needs no key; metrics does.
	if code, _ := get(t, ts.httpBase+"/healthz", ""); code != 200 {
		t.Errorf("/healthz without key: %d", code)
	}
	if code, _ := get(t, ts.httpBase+"/readyz", ""); code != 200 {
		t.Errorf("/readyz without key: %d", code)
	}
	if code, _ := get(t, ts.httpBase+"/metrics", ""); code != 401 {
		t.Errorf("/metrics without key: %d, want 401", code)
	}
	if code, _ := get(t, ts.httpBase+"/debug/pprof/", testKey); code != 404 {
		t.Errorf("pprof served while off: %d", code)
	}
}

func TestMetricsAndPprof(t *testing.T) {
	cfg := testConfig()
	cfg.Pprof = true
	ts := startServer(t, cfg)
	post(t, ts.httpBase+"/v1/embeddings", "", `{"input": ["metrics one", "metrics two"]}`)
	post(t, ts.httpBase+"/v1/embeddings", "", `{"input": ["metrics one"]}`)
	code, body := get(t, ts.httpBase+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`embedd_requests_total{code="200",method="HTTP /v1/embeddings"} 2`,
		`embedd_queue_depth{model="a"} 0`,
		`embedd_batch_size_count{model="a"}`,
		`embedd_tokens_total{model="a"}`,
		`embedd_cache_hits_total 1`,
		`embedd_cache_misses_total 2`,
		`embedd_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, ts.httpBase+"/debug/pprof/", ""); code != 200 {
		t.Errorf("pprof on: %d", code)
	}
}
