package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTexts writes n text lines (line 4 empty) and returns the path.
func writeTexts(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		if i == 3 {
			b.WriteString("\n")
			continue
		}
		fmt.Fprintf(&b, "sentence %d about a %s\n", i, []string{"cat", "river", "market", "song"}[i%4])
	}
	p := filepath.Join(t.TempDir(), "texts.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJobEmbedFormatsAgree embeds one file through the core into JSONL,
// .npy and Parquet: the same vectors in each, a failed line in the error
// file and exit status 3; and two shards of a Kubernetes Indexed Job
// merged into the same bytes.
func TestJobEmbedFormatsAgree(t *testing.T) {
	needFixtures(t)
	in := writeTexts(t, 120)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	code, _, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--out", out, in)
	if code != 3 || !strings.Contains(stderr, "read 120, written 119, failed 1") {
		t.Fatalf("exit %d, want 3 (one empty line):\n%s", code, stderr)
	}
	if e := string(readAll(t, out+".errors.jsonl")); e != `{"line":4,"id":"4","error":"empty text"}`+"\n" {
		t.Fatalf("error file %q", e)
	}
	var rows []struct {
		ID        string    `json:"id"`
		Embedding []float32 `json:"embedding"`
	}
	for _, l := range strings.Split(strings.TrimSpace(string(readAll(t, out))), "\n") {
		var r struct {
			ID        string    `json:"id"`
			Embedding []float32 `json:"embedding"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if len(rows) != 119 || rows[3].ID != "5" {
		t.Fatalf("%d rows, the fourth %q; want 119, id 5", len(rows), rows[3].ID)
	}
	npy := filepath.Join(dir, "out.npy")
	if code, _, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--out", npy, in); code != 3 {
		t.Fatalf("npy: exit %d\n%s", code, stderr)
	}
	b := readAll(t, npy)
	dim := len(rows[0].Embedding)
	if !bytes.Contains(b[:128], fmt.Appendf(nil, "'shape': (119, %d)", dim)) || len(b) != 128+119*dim*4 {
		t.Fatalf("npy header %q, %d bytes", b[:128], len(b))
	}
	for i, r := range rows {
		for j, x := range r.Embedding {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(b[128+4*(i*dim+j):])); got != x {
				t.Fatalf("npy row %d component %d: %v, JSONL %v", i, j, got, x)
			}
		}
	}
	if ids := strings.Fields(string(readAll(t, npy+".ids"))); len(ids) != 119 || ids[3] != "5" {
		t.Fatalf("ids file: %d ids", len(ids))
	}
	// Kubernetes Indexed Job shards merged: the JSONL again, byte for byte
	// (shards 1, 3 and 7 and a changed parameter: package jobs' tests).
	var dirs []string
	for i := range 2 {
		jd := filepath.Join(dir, fmt.Sprintf("shard-%d", i))
		dirs = append(dirs, jd)
		t.Setenv("JOB_COMPLETION_INDEX", fmt.Sprint(i))
		if code, _, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--shards", "2", "--job-dir", jd, "--part-size", "16", "--out", filepath.Join(jd, "out.jsonl"), in); code != 0 && code != 3 {
			t.Fatalf("shard %d: exit %d\n%s", i, code, stderr)
		}
	}
	merged := filepath.Join(dir, "merged.jsonl")
	if code, _, stderr := runCmd(t, "", append([]string{"job", "merge", "--out", merged}, dirs...)...); code != 3 {
		t.Fatalf("merge: exit %d\n%s", code, stderr)
	}
	if !bytes.Equal(readAll(t, merged), readAll(t, out)) || !bytes.Equal(readAll(t, merged+".errors.jsonl"), readAll(t, out+".errors.jsonl")) {
		t.Fatal("two merged shards differ from one process")
	}
}

// TestJobUsage: bad flags are usage errors (exit 2) that say what is wrong.
func TestJobUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job"}, "usage: embedd job"},
		{[]string{"job", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"job", "embed", "--shard", "1/3", "in.txt"}, "a shard needs --job-dir"},
		{[]string{"job", "embed", "--shard", "3/3", "--job-dir", "d", "in.txt"}, "want 0 <= i < n"},
		{[]string{"job", "embed", "--format", "csv", "in.txt"}, `output format "csv"`},
		{[]string{"job", "pairs", "x.npy"}, "give --self or --against FILE"},
		{[]string{"job", "dedup", "--self", "x.npy"}, "dedup needs --threshold"},
		{[]string{"job", "search", "q.txt"}, "--collection is required"},
	} {
		code, _, stderr := runCmd(t, "", tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJobSearchVectors searches a collection with a file of vector
// queries: each line's top k, best first, in input order, and a query of
// the wrong width failed on its own.
func TestJobSearchVectors(t *testing.T) {
	needFixtures(t)
	data := t.TempDir()
	var recs, queries strings.Builder
	for i := range 50 {
		fmt.Fprintf(&recs, `{"id":"r%d","vector":[%d,1,0]}`+"\n", i, i)
	}
	for _, q := range []string{`[1,0,0]`, `[-1,0,0]`, `[1,2]`, `[0,1,0]`} {
		fmt.Fprintf(&queries, `{"id":"q%d","vector":%s}`+"\n", queries.Len(), q)
	}
	dir := t.TempDir()
	src, qs := filepath.Join(dir, "recs.jsonl"), filepath.Join(dir, "q.jsonl")
	os.WriteFile(src, []byte(recs.String()), 0o644)
	os.WriteFile(qs, []byte(queries.String()), 0o644)
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "3", "--metric", "dot", "docs", src); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	code, out, stderr := runCmd(t, "", "job", "search", "--progress", "off", "--data-dir", data, "--collection", "docs", "--vectors", "--k", "2", qs)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (one bad query):\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"id":"q0","neighbors":[{"id":"r49","score":49},{"id":"r48","score":48}]}`) ||
		!strings.HasPrefix(lines[1], `{"id":"q`) || !strings.Contains(lines[1], `{"id":"r0","score":0}`) {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(stderr, `"line":3`) {
		t.Fatalf("the bad query is not in the errors on stderr:\n%s", stderr)
	}
}

// TestJobEmbedRefusedText: a text the core refuses (over the model's
// length with --truncate=false) fails its line alone; --max-errors 1 stops
// the job at it with exit status 1.
func TestJobEmbedRefusedText(t *testing.T) {
	needFixtures(t)
	in := filepath.Join(t.TempDir(), "in.txt")
	long := strings.Repeat("word ", 2000)
	os.WriteFile(in, []byte("short one\n"+long+"\nshort two\n"), 0o644)
	code, out, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--truncate=false", in)
	if code != 3 || strings.Count(out, "\n") != 2 || !strings.Contains(stderr, `{"line":2,"id":"2","error":`) {
		t.Fatalf("exit %d, %d lines out:\n%s", code, strings.Count(out, "\n"), stderr)
	}
	if code, _, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--truncate=false", "--max-errors", "1", "--workers", "1", "--part-size", "1", in); code != 1 || !strings.Contains(stderr, "too many failed records") {
		t.Fatalf("--max-errors 1: exit %d\n%s", code, stderr)
	}
}

// TestJobPairsAndDedup runs pairs and dedup over a JSONL of vectors: the
// nearest of each, the pairs over a threshold once each (a < b), and the
// duplicates grouped under their first line.
func TestJobPairsAndDedup(t *testing.T) {
	in := filepath.Join(t.TempDir(), "v.jsonl")
	os.WriteFile(in, []byte(`{"id":"a","vector":[1,0,0]}
{"id":"b","vector":[0.99,0.1,0]}
{"id":"c","vector":[0,1,0]}
{"id":"d","vector":[2,0,0]}
{"id":"e","vector":[0,0,0]}
`), 0o644)
	code, out, stderr := runCmd(t, "", "job", "pairs", "--progress", "off", "--self", "--k", "1", in)
	if code != 3 || !strings.HasPrefix(out, `{"id":"a","neighbors":[{"id":"d","score":1}]}`+"\n"+`{"id":"b","neighbors":[{"id":"a","score":0.99`) || !strings.Contains(stderr, "has no direction") {
		t.Fatalf("pairs --k 1: exit %d\n%s\n%s", code, out, stderr)
	}
	// As two shards of a Kubernetes Indexed Job, merged: the same bytes.
	one := out
	var dirs []string
	for i := range 2 {
		jd := filepath.Join(t.TempDir(), fmt.Sprintf("shard-%d", i))
		dirs = append(dirs, jd)
		t.Setenv("JOB_COMPLETION_INDEX", fmt.Sprint(i))
		if code, _, stderr := runCmd(t, "", "job", "pairs", "--progress", "off", "--shards", "2", "--job-dir", jd, "--self", "--k", "1", in); code != 3 || !strings.Contains(stderr, "embedd job merge writes the output") {
			t.Fatalf("pairs shard %d: exit %d\n%s", i, code, stderr)
		}
	}
	if code, out, stderr := runCmd(t, "", append([]string{"job", "merge"}, dirs...)...); code != 3 || out != one {
		t.Fatalf("pairs shards merged: exit %d\n%s\nwant\n%s\n%s", code, out, one, stderr)
	}
	if code, _, stderr := runCmd(t, "", "job", "pairs", "--shard", "0/2", "--job-dir", t.TempDir(), "--self", "--out", "x.jsonl", in); code != 2 || !strings.Contains(stderr, "writes no --out") {
		t.Fatalf("pairs shard with --out: exit %d\n%s", code, stderr)
	}
	code, out, stderr = runCmd(t, "", "job", "pairs", "--progress", "off", "--self", "--threshold", "0.9", in)
	if code != 3 || strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, `{"a":"a","b":"b","score":0.99`) || !strings.Contains(out, `{"a":"a","b":"d","score":1}`) {
		t.Fatalf("pairs --threshold: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, "", "job", "dedup", "--progress", "off", "--self", "--threshold", "0.999", in)
	if code != 3 || out != `{"keep":"a","duplicates":["d"]}`+"\n" {
		t.Fatalf("dedup: exit %d\n%s\n%s", code, out, stderr)
	}
	// The same from a collection (the zero vector cannot be stored under
	// cosine, so it is left out).
	data := t.TempDir()
	four := filepath.Join(t.TempDir(), "four.jsonl")
	b, _ := os.ReadFile(in)
	os.WriteFile(four, b[:bytes.LastIndex(b[:len(b)-1], []byte("\n"))+1], 0o644)
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "3", "--metric", "cosine", "vecs", four); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	code, out, stderr = runCmd(t, "", "job", "dedup", "--progress", "off", "--data-dir", data, "--collection", "vecs", "--self", "--threshold", "0.999")
	if code != 0 || out != `{"keep":"a","duplicates":["d"]}`+"\n" {
		t.Fatalf("dedup --collection: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestJobEmbedIntoThenSearch embeds a file straight into a new collection
// (--into), then searches it with the same texts: each finds itself first.
func TestJobEmbedIntoThenSearch(t *testing.T) {
	needFixtures(t)
	data := t.TempDir()
	in := filepath.Join(t.TempDir(), "docs.jsonl")
	os.WriteFile(in, []byte(`{"id":"d1","text":"a cat sleeps on the warm mat"}
{"id":"d2","text":"the stock market fell sharply today"}
{"id":"d3","text":"rain is expected over the mountains"}
`), 0o644)
	if code, _, stderr := runCmd(t, "", "job", "embed", "--progress", "off", "--data-dir", data, "--into", "docs", in); code != 0 {
		t.Fatalf("embed --into: exit %d\n%s", code, stderr)
	}
	code, out, stderr := runCmd(t, "", "job", "search", "--progress", "off", "--data-dir", data, "--collection", "docs", "--k", "1", in)
	if code != 0 {
		t.Fatalf("search: exit %d\n%s", code, stderr)
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		if !strings.Contains(out, `{"id":"`+id+`","neighbors":[{"id":"`+id+`","score":`) {
			t.Fatalf("%s does not find itself first:\n%s", id, out)
		}
	}
}
