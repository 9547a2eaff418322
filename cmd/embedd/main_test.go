package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embedd/embedd/models"
)

// needFixtures skips when scripts/setup.sh has not run (CI sets
// EMBEDD_REQUIRE_ORT, which makes a missing fixture a failure instead).
func needFixtures(t *testing.T) {
	t.Helper()
	_, err := models.FindORTLibrary("")
	if err == nil {
		_, err = os.Stat(filepath.Join(models.DefaultRegistryConfig().Models[0].Path, "model.onnx"))
	}
	if err != nil {
		if os.Getenv("EMBEDD_REQUIRE_ORT") != "" {
			t.Fatalf("fixtures missing with EMBEDD_REQUIRE_ORT set: %v", err)
		}
		t.Skipf("run scripts/setup.sh first: %v", err)
	}
}

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

type embedLine struct {
	Index     int       `json:"index"`
	Embedding []float64 `json:"embedding"`
}

func parseEmbedLines(t *testing.T, out string) []embedLine {
	t.Helper()
	var got []embedLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e embedLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("output line %q is not JSON: %v", l, err)
		}
		got = append(got, e)
	}
	return got
}

func TestEmbedArgsAndStdinAgree(t *testing.T) {
	needFixtures(t)
	code, out, stderr := runCmd(t, "", "embed", "first text", "second text")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fromArgs := parseEmbedLines(t, out)
	code, out, stderr = runCmd(t, "first text\nsecond text\n", "embed")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fromStdin := parseEmbedLines(t, out)
	if len(fromArgs) != 2 || len(fromStdin) != 2 {
		t.Fatalf("got %d and %d lines, want 2 each", len(fromArgs), len(fromStdin))
	}
	for i := range 2 {
		a, b := fromArgs[i], fromStdin[i]
		if a.Index != i || b.Index != i || len(a.Embedding) != 384 {
			t.Fatalf("line %d: index %d/%d, %d components", i, a.Index, b.Index, len(a.Embedding))
		}
		var n float64
		for j := range a.Embedding {
			if a.Embedding[j] != b.Embedding[j] {
				t.Fatalf("text %d component %d differs between args and stdin", i, j)
			}
			n += a.Embedding[j] * a.Embedding[j]
		}
		if math.Abs(math.Sqrt(n)-1) > 1e-5 {
			t.Errorf("text %d: norm %g, want 1 (the model folder asks for Normalize)", i, math.Sqrt(n))
		}
	}
	if fromArgs[0].Embedding[0] == fromArgs[1].Embedding[0] {
		t.Error("two different texts gave the same first component")
	}
}

func TestEmbedStdinChunksKeepOrder(t *testing.T) {
	needFixtures(t)
	var in strings.Builder
	const n = embedChunk + 7 // two chunks
	for i := range n {
		in.WriteString(strings.Repeat("x", i%13+1) + "\n")
	}
	code, out, stderr := runCmd(t, in.String(), "embed", "--dimensions", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := parseEmbedLines(t, out)
	if len(got) != n {
		t.Fatalf("%d lines out, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Index != i || len(e.Embedding) != 8 {
			t.Fatalf("line %d: index %d with %d components", i, e.Index, len(e.Embedding))
		}
	}
	// Lines i and i+13 hold the same text: same vector.
	for j, v := range got[0].Embedding {
		if got[13].Embedding[j] != v {
			t.Fatalf("same text, different vectors across the chunk: %v vs %v", got[0].Embedding, got[13].Embedding)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	needFixtures(t)
	notALib := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	os.WriteFile(notALib, []byte("not a shared library"), 0o644)
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no command", "", nil, 2, "usage: embedd"},
		{"unknown command", "", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown model", "", []string{"embed", "--model", "nope", "x"}, 1, `model "nope" is not loaded`},
		{"invalid utf-8 line", "ok\nbad \xff\n", []string{"embed"}, 1, "text 1: is not valid UTF-8"},
		{"too long rejected", strings.Repeat("word ", 300) + "\n", []string{"embed", "--model", "minilm-l6-random", "--truncate=false"}, 1, "text 0: has 302 tokens, over model minilm-l6-random's limit of 256"},
		{"empty stdin", "", []string{"embed"}, 1, "no input"},
		{"bad normalize", "", []string{"embed", "--normalize", "maybe", "x"}, 2, `--normalize "maybe"`},
		{"bad dimensions", "", []string{"embed", "--model", "minilm-l6-random", "--dimensions", "999", "x"}, 1, "dimensions 999 is not in [1, 384]"},
		{"missing config", "", []string{"embed", "--config", "/nonexistent/c.json", "x"}, 1, "/nonexistent/c.json"},
		{"missing model folder", "", []string{"embed", "x"}, 1, "/nonexistent/model"},
		{"ort lib is not a library", "", []string{"embed", "--ort-lib", notALib, "x"}, 1, "loading ONNX Runtime from"},
		{"ort lib missing", "", []string{"embed", "--ort-lib", "/nonexistent/libonnxruntime.so.1", "x"}, 1, "/nonexistent/libonnxruntime.so.1"},
		{"serve, search on a missing GPU", "", []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "off", "--search-device", "cuda:1"}, 1, "search_device"},
		{"tokenize invalid utf-8", "fine\n\xc3\x28\n", []string{"tokenize"}, 1, "text 1 (line 2) is not valid UTF-8"},
		{"tokenize with args", "", []string{"tokenize", "text"}, 2, "texts come on stdin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "missing model folder" {
				t.Setenv("EMBEDD_MODEL_DIR", "/nonexistent/model")
			}
			t.Setenv("EMBEDD_DATA_DIR", t.TempDir())
			code, _, stderr := runCmd(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
}

func TestTokenizeCommand(t *testing.T) {
	needFixtures(t)
	// tokenize needs only the tokenizer: it works without ONNX Runtime.
	t.Setenv("ORT_LIB", filepath.Join(t.TempDir(), "no-onnxruntime.so"))
	code, out, stderr := runCmd(t, "Hello, world!\n\n"+strings.Repeat("word ", 300)+"\n", "tokenize", "--model", "minilm-l6-random")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{`{"ids":[101,7592,1010,2088,999,102]}`, `{"ids":[101,102]}`}
	if len(lines) != 3 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("got %q, want first lines %q", lines, want)
	}
	var long struct{ IDs []int }
	json.Unmarshal([]byte(lines[2]), &long)
	if len(long.IDs) != 302 {
		t.Errorf("untruncated long line has %d ids, want 302", len(long.IDs))
	}
	_, out, _ = runCmd(t, strings.Repeat("word ", 300)+"\n", "tokenize", "--model", "minilm-l6-random", "--truncate")
	json.Unmarshal([]byte(out), &long)
	if len(long.IDs) != 256 || long.IDs[255] != 102 {
		t.Errorf("--truncate gave %d ids ending in %d, want 256 ending in [SEP] 102", len(long.IDs), long.IDs[len(long.IDs)-1])
	}
}
