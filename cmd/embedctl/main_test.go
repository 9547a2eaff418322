package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/embedd/embedd/client/clienttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// result is one embedctl run.
type result struct {
	code           int
	stdout, stderr string
}

// embedctl runs the command against s with stdin.
func embedctl(t *testing.T, s *clienttest.Server, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"--addr", s.Addr(), "--timeout", "10s"}, args...)
	code := run(all, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// jsonLines decodes each line of out into a T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		vs = append(vs, v)
	}
	return vs
}

type embedLine struct {
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

func checkEmbeddings(t *testing.T, out string, texts []string, dims int) {
	t.Helper()
	lines := jsonLines[embedLine](t, out)
	if len(lines) != len(texts) {
		t.Fatalf("%d output lines for %d texts", len(lines), len(texts))
	}
	for i, l := range lines {
		if l.Index != i || !slices.Equal(l.Embedding, clienttest.Vector(texts[i], dims)) {
			t.Fatalf("line %d = %+v, want index %d and the vector of %q", i, l, i, texts[i])
		}
	}
}

func TestEmbedArgs(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 6})
	texts := []string{"hello", "world", "a third"}
	r := embedctl(t, s, "", append([]string{"embed", "--chunk", "2"}, texts...)...).want(t, 0)
	checkEmbeddings(t, r.stdout, texts, 6)
	if n := s.Calls("Embed"); n != 2 {
		t.Errorf("%d Embed calls for 3 texts in chunks of 2", n)
	}
	// Flags after the texts, as people type them.
	r = embedctl(t, s, "", "embed", "hello", "--dimensions", "3").want(t, 0)
	if l := jsonLines[embedLine](t, r.stdout); len(l) != 1 || len(l[0].Embedding) != 3 {
		t.Errorf("--dimensions 3: %s", r.stdout)
	}
}

func TestEmbedStdinStreams(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 4})
	var texts []string
	var in strings.Builder
	for i := range 1000 {
		texts = append(texts, fmt.Sprintf("line %d", i))
		fmt.Fprintln(&in, texts[i])
	}
	r := embedctl(t, s, in.String(), "embed", "--chunk", "64").want(t, 0)
	checkEmbeddings(t, r.stdout, texts, 4)
	if s.Calls("EmbedStream") != 1 || s.Calls("Embed") != 0 {
		t.Errorf("stdin went through %d streams and %d Embed calls, want one stream", s.Calls("EmbedStream"), s.Calls("Embed"))
	}
}

func TestEmbedErrors(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	in := "fine\n" + strings.Repeat("ok\n", 150) + "invalid: this one\nnever sent\n"
	r := embedctl(t, s, in, "embed", "--chunk", "100").want(t, 1)
	// Chunk 2 holds texts 100-152; the server names texts[51] within it:
	// text 151 (counted from 0, as the output's index) on line 152.
	if want := "embedctl embed: text 151 (line 152): INVALID_ARGUMENT: "; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q, want it to start %q", r.stderr, want)
	}
	if n := len(jsonLines[embedLine](t, r.stdout)); n != 100 {
		t.Errorf("%d vectors printed before the failing chunk, want 100", n)
	}

	r = embedctl(t, s, "", "embed", "--model", "nope", "x").want(t, 1)
	if want := "embedctl embed: Embed: NOT_FOUND: model \"nope\" is not loaded"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q, want it to start %q", r.stderr, want)
	}
	r = embedctl(t, s, "", "embed", "--truncate=false", strings.Repeat("long", 10)).want(t, 1)
	if !strings.Contains(r.stderr, "INVALID_ARGUMENT") || !strings.Contains(r.stderr, "over the model's maximum") {
		t.Errorf("--truncate=false: %q", r.stderr)
	}
	embedctl(t, s, "", "embed").want(t, 2)
	embedctl(t, s, "", "embed", "--normalize", "maybe", "x").want(t, 2)
	embedctl(t, s, "", "embed", "--dimensions", "-1", "x").want(t, 2)
	embedctl(t, s, "", "embed", "--nope").want(t, 2)
	r = embedctl(t, s, strings.Repeat("x", maxLineBytes+1)+"\n", "embed").want(t, 1)
	if !strings.Contains(r.stderr, "over 16777216 bytes") {
		t.Errorf("an over-long line: %q", r.stderr)
	}
}

func TestAPIKeyAndTLS(t *testing.T) {
	cfg, ca := clienttest.SelfSigned(t)
	s := clienttest.Start(t, clienttest.Config{APIKey: "k1", TLS: cfg})
	r := embedctl(t, s, "", "--tls-ca", ca, "embed", "x").want(t, 1)
	if want := "embedctl embed: Embed: UNAUTHENTICATED: missing or wrong API key"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("without a key: %q", r.stderr)
	}
	embedctl(t, s, "", "--tls-ca", ca, "--api-key", "k1", "embed", "x").want(t, 0)
	t.Setenv("EMBEDD_API_KEY", "k1")
	embedctl(t, s, "", "--tls-ca", ca, "embed", "x").want(t, 0)
	if s.LastAuth() != "Bearer k1" {
		t.Errorf("the server saw %q", s.LastAuth())
	}
	// Plaintext to the TLS server: UNAVAILABLE, named.
	r = embedctl(t, s, "", "--timeout", "2s", "embed", "x").want(t, 1)
	if !strings.Contains(r.stderr, "UNAVAILABLE") {
		t.Errorf("plaintext to TLS: %q", r.stderr)
	}
	r = embedctl(t, s, "", "--tls-ca", ca+".missing", "embed", "x").want(t, 1)
	if !strings.Contains(r.stderr, "TLS CA file") {
		t.Errorf("a missing CA file: %q", r.stderr)
	}
}

func TestTokenize(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	long := strings.Repeat("z", 30)
	r := embedctl(t, s, "ab\n"+long+"\n", "tokenize", "--truncate").want(t, 0)
	type idsLine struct{ IDs []int32 }
	lines := jsonLines[idsLine](t, r.stdout)
	if len(lines) != 2 || !slices.Equal(lines[0].IDs, clienttest.Tokens("ab", true)) || !slices.Equal(lines[1].IDs, clienttest.Tokens(long, true)) {
		t.Errorf("tokenize: %s", r.stdout)
	}
	r = embedctl(t, s, "", "tokenize", "ab").want(t, 0)
	if r.stdout != `{"ids":[101,1097,1098,102]}`+"\n" {
		t.Errorf("tokenize ab: %q", r.stdout)
	}
	embedctl(t, s, "", "tokenize").want(t, 2)
}

func TestModelsAndHealth(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 8})
	r := embedctl(t, s, "", "models").want(t, 0)
	if !strings.HasPrefix(r.stdout, "ID ") || !strings.Contains(r.stdout, "fake-model  onnx  8 ") {
		t.Errorf("models table:\n%s", r.stdout)
	}
	r = embedctl(t, s, "", "models", "--json").want(t, 0)
	if ms := jsonLines[modelJSON](t, r.stdout); len(ms) != 1 || ms[0].ID != clienttest.ModelID || ms[0].Kind != "onnx" || ms[0].MaxLength != clienttest.MaxLength || !ms[0].Default {
		t.Errorf("models --json: %s", r.stdout)
	}

	r = embedctl(t, s, "", "health").want(t, 0)
	if r.stdout != "SERVING\n" {
		t.Errorf("health: %q", r.stdout)
	}
	s.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := embedctl(t, s, "", "health").want(t, 1); r.stdout != "NOT_SERVING\n" {
		t.Errorf("health: %q", r.stdout)
	}
	embedctl(t, s, "", "health", "--service", "embedd.v1.EmbeddingService").want(t, 0)
	r = embedctl(t, s, "", "health", "--service", "nope").want(t, 1)
	if !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Errorf("health of an unknown service: %q", r.stderr)
	}
}

func TestCollections(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 8})
	r := embedctl(t, s, "", "collections", "create", "docs", "--dim", "3", "--metric", "dot").want(t, 0)
	if r.stdout != `{"name":"docs","dimension":3,"metric":"dot","count":0}`+"\n" {
		t.Errorf("create: %q", r.stdout)
	}
	embedctl(t, s, "", "collections", "create", "texts", "--model", clienttest.ModelID).want(t, 0)
	r = embedctl(t, s, "", "collections", "create", "docs", "--dim", "3").want(t, 1)
	if !strings.Contains(r.stderr, "CreateCollection: ALREADY_EXISTS") {
		t.Errorf("create twice: %q", r.stderr)
	}
	embedctl(t, s, "", "collections", "create", "x").want(t, 2)
	embedctl(t, s, "", "collections", "create", "x", "--dim", "3", "--metric", "hamming").want(t, 2)
	embedctl(t, s, "", "collections").want(t, 2)
	embedctl(t, s, "", "collections", "rename").want(t, 2)

	r = embedctl(t, s, "", "collections", "list").want(t, 0)
	if want := "NAME   DIMENSION  METRIC  COUNT  MODEL\ndocs   3          dot     0      \ntexts  8          cosine  0      fake-model\n"; r.stdout != want {
		t.Errorf("list:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = embedctl(t, s, "", "collections", "list", "--json").want(t, 0)
	if cs := jsonLines[collectionJSON](t, r.stdout); len(cs) != 2 || cs[1].Model != clienttest.ModelID {
		t.Errorf("list --json: %s", r.stdout)
	}
	embedctl(t, s, "", "collections", "drop", "docs", "texts").want(t, 0)
	r = embedctl(t, s, "", "collections", "drop", "docs").want(t, 1)
	if !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Errorf("drop twice: %q", r.stderr)
	}
}

func TestRecords(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 2})
	embedctl(t, s, "", "collections", "create", "docs", "--dim", "2").want(t, 0)
	records := `{"id":"a","vector":[1,0],"metadata":{"lang":"en","n":1}}
{"id":"b","vector":[0,1],"metadata":{"lang":"fr"}}

{"id":"c","vector":[0.6,0.8],"metadata":{"lang":"en"}}
{"id":"d","text":"some text"}
{"id":"e","vector":[-1,0]}
`
	r := embedctl(t, s, records, "upsert", "docs", "--batch", "2").want(t, 0)
	if r.stdout != `{"upserted":5}`+"\n" {
		t.Errorf("upsert: %q", r.stdout)
	}
	if n := s.Calls("Upsert"); n != 3 {
		t.Errorf("%d Upsert calls for 5 records in batches of 2", n)
	}

	r = embedctl(t, s, "", "get", "docs", "c", "zz", "a").want(t, 1)
	got := jsonLines[recordJSON](t, r.stdout)
	if len(got) != 2 || got[0].ID != "c" || !slices.Equal(got[0].Vector, []float32{0.6, 0.8}) || string(got[1].Metadata) != `{"lang":"en","n":1}` {
		t.Errorf("get: %s", r.stdout)
	}
	if r.stderr != "embedctl get: not found in docs: zz\n" {
		t.Errorf("get stderr: %q", r.stderr)
	}

	r = embedctl(t, s, "", "search", "docs", "--vector", "[1, 0.1]", "--k", "2", "--filter", "lang=en").want(t, 0)
	hits := jsonLines[hitJSON](t, r.stdout)
	if len(hits) != 2 || hits[0].ID != "a" || hits[0].Rank != 1 || hits[1].ID != "c" || string(hits[0].Metadata) != `{"lang":"en","n":1}` {
		t.Errorf("search: %s", r.stdout)
	}
	r = embedctl(t, s, "", "search", "docs", "--text", "some text", "--k", "1", "--metadata=false", "--vectors").want(t, 0)
	if hits := jsonLines[hitJSON](t, r.stdout); len(hits) != 1 || hits[0].ID != "d" || hits[0].Metadata != nil || len(hits[0].Vector) != 2 {
		t.Errorf("search --text: %s", r.stdout)
	}
	embedctl(t, s, "", "search", "docs").want(t, 2)
	embedctl(t, s, "", "search", "docs", "--text", "x", "--vector", "[1,2]").want(t, 2)
	embedctl(t, s, "", "search", "docs", "--vector", "[oops]").want(t, 2)
	embedctl(t, s, "", "search", "docs", "--text", "x", "--filter", "novalue").want(t, 2)
	r = embedctl(t, s, "", "search", "docs", "--vector", "[1,2,3]").want(t, 1)
	if !strings.Contains(r.stderr, "Search: INVALID_ARGUMENT: queries[0]: 3 components") {
		t.Errorf("search with a wrong-sized vector: %q", r.stderr)
	}

	r = embedctl(t, s, "", "delete", "docs", "a", "zz").want(t, 0)
	if r.stdout != `{"deleted":1}`+"\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	embedctl(t, s, "", "delete", "docs").want(t, 2)
}

func TestUpsertErrors(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 2})
	embedctl(t, s, "", "collections", "create", "docs", "--dim", "2").want(t, 0)
	for _, tc := range []struct{ in, want string }{
		{`{"id":"a","vector":[1,0]}` + "\n" + `{"id":"b","vector":[1,0],"extra":1}`, "line 2: not a record"},
		{`{"vector":[1,0]}`, `line 1: "id": missing or empty`},
		{`{"id":"a"}`, `line 1: give "vector" or "text"`},
		{`{"id":"a","vector":[1],"text":"t"}`, `line 1: give "vector" or "text", not both`},
		{`{"id":"a","vector":[1,0],"metadata":[1]}`, `line 1: "metadata": [1] is not a JSON object`},
		{`{"id":"a","vector":[1,0]} {"id":"b"}`, "line 1: more than one JSON value"},
		{`{"id":"a","vector":[1,0,0]}`, "embedctl upsert: line 1: Upsert: INVALID_ARGUMENT: records[0].vector: 3 components"},
	} {
		r := embedctl(t, s, tc.in, "upsert", "docs").want(t, 1)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("upsert %s:\n%q, want it to contain %q", tc.in, r.stderr, tc.want)
		}
	}
	if n := s.Calls("Upsert"); n != 1 {
		t.Errorf("%d Upsert calls: bad lines must be caught before sending", n)
	}
	r := embedctl(t, s, "", "upsert", "nope").want(t, 0) // nothing to send
	if r.stdout != `{"upserted":0}`+"\n" {
		t.Errorf("empty upsert: %q", r.stdout)
	}
	embedctl(t, s, `{"id":"a","vector":[1,0]}`, "upsert", "nope").want(t, 1)
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage: embedctl") {
		t.Errorf("no arguments: %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"frobnicate"}, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d, %q", code, errOut.String())
	}
	out.Reset()
	if code := run([]string{"help"}, strings.NewReader(""), &out, io.Discard); code != 0 || !strings.Contains(out.String(), "collections create NAME") {
		t.Errorf("help: %d, %q", code, out.String())
	}
	if code := run([]string{"embed", "-h"}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
		t.Errorf("embed -h: %d", code)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		dim  int
	}{
		{[]string{"name", "--dim", "3"}, []string{"name"}, 3},
		{[]string{"--dim", "3", "a", "b"}, []string{"a", "b"}, 3},
		{[]string{"a", "--dim=4", "b"}, []string{"a", "b"}, 4},
		{[]string{"a", "--", "--dim", "5"}, []string{"a", "--dim", "5"}, 0},
		{nil, nil, 0},
	} {
		fs := (&env{stderr: io.Discard}).newFlagSet("t", "t")
		dim := fs.Int("dim", 0, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *dim != tc.dim {
			t.Errorf("%q: %q, dim %d, %v; want %q, dim %d", tc.args, pos, *dim, err, tc.pos, tc.dim)
		}
	}
}
