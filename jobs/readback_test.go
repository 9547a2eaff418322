package jobs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestParquetReadBackByHyparquet reads the Parquet output with an
// independent reader (hyparquet under Node, installed by
// scripts/install_parquet_reader.sh): the ids and vectors are the JSONL
// output's, float32 for float32. EMBEDD_REQUIRE_NODE (set by
// scripts/test.sh) makes a missing reader a failure instead of a skip.
func TestParquetReadBackByHyparquet(t *testing.T) {
	script, _ := filepath.Abs("../.cache/readparquet/read.mjs")
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "hyparquet"))
	if nodeErr != nil || modErr != nil {
		if os.Getenv("EMBEDD_REQUIRE_NODE") != "" {
			t.Fatalf("no Parquet reader with EMBEDD_REQUIRE_NODE set: node %v, hyparquet %v", nodeErr, modErr)
		}
		t.Skipf("run scripts/install_parquet_reader.sh (needs node): node %v, hyparquet %v", nodeErr, modErr)
	}
	in := writeInput(t, 20000) // three row groups of the writer's 8,192
	dir := t.TempDir()
	pq := reference(t, in, Output{Path: filepath.Join(dir, "out.parquet")})
	js := reference(t, in, Output{Path: filepath.Join(dir, "out.jsonl")})
	got, err := exec.Command("node", script, pq).Output()
	if err != nil {
		t.Fatalf("hyparquet: %v", err)
	}
	type row struct {
		ID        string    `json:"id"`
		Embedding []float64 `json:"embedding"`
	}
	rows := func(b []byte) []row {
		var rs []row
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r row
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	a, b := rows(got), rows(readFile(t, js))
	if len(a) != len(b) || len(a) < 19000 {
		t.Fatalf("hyparquet read %d rows, the JSONL has %d", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID || len(a[i].Embedding) != len(b[i].Embedding) {
			t.Fatalf("row %d: %q (%d values) against %q (%d)", i, a[i].ID, len(a[i].Embedding), b[i].ID, len(b[i].Embedding))
		}
		for j := range a[i].Embedding {
			if float32(a[i].Embedding[j]) != float32(b[i].Embedding[j]) {
				t.Fatalf("row %d component %d: %v against %v", i, j, a[i].Embedding[j], b[i].Embedding[j])
			}
		}
	}
}
