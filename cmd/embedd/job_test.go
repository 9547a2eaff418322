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
