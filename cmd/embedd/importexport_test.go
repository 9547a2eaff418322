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

type exported struct {
	ID       string          `json:"id"`
	Vector   []float32       `json:"vector"`
	Metadata json.RawMessage `json:"metadata"`
}

func exportAll(t *testing.T, dataDir, name string) map[string]exported {
	t.Helper()
	code, out, stderr := runCmd(t, "", "export", "--data-dir", dataDir, name)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	got := map[string]exported{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e exported
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		got[e.ID] = e
	}
	return got
}

func TestImportExportJSONL(t *testing.T) {
	data := t.TempDir()
	var in strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&in, `{"id": "r%d", "vector": [%d, 0.5, -1.25, %g], "metadata": {"n": %d}}`+"\n", i, i, float32(i)/7, i)
	}
	src := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(src, []byte(in.String()), 0o644)
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "docs", src); code != 1 || !strings.Contains(stderr, "give --dim N (and --metric) to create it") {
		t.Errorf("import into a missing collection without --dim: exit %d %q", code, stderr)
	}
	code, out, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "4", "--metric", "dot", "docs", src)
	if code != 0 || !strings.Contains(out, "imported 3000 records into docs") {
		t.Fatalf("import: exit %d %q %q", code, out, stderr)
	}
	got := exportAll(t, data, "docs")
	if len(got) != 3000 {
		t.Fatalf("exported %d records, want 3000", len(got))
	}
	r := got["r2999"]
	if fmt.Sprint(r.Vector) != fmt.Sprint([]float32{2999, 0.5, -1.25, float32(2999) / 7}) || string(r.Metadata) != `{"n":2999}` {
		t.Errorf("record r2999 came back as %+v", r)
	}
	// A bad line is named, and nothing after its batch is stored.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id": "ok", "vector": [1, 2, 3, 4]}`+"\n"+`{"id": "bad", "vector": [1, 2]}`+"\n"), 0o644)
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "docs", bad); code != 1 || !strings.Contains(stderr, "line 2") {
		t.Errorf("bad line: exit %d %q, want the line named", code, stderr)
	}
}

// writeNPY writes a 2-D little-endian float32 .npy file.
func writeNPY(t *testing.T, path string, rows, cols int, at func(r, c int) float32) {
	t.Helper()
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	for r := range rows {
		for c := range cols {
			binary.Write(&b, binary.LittleEndian, math.Float32bits(at(r, c)))
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportNPYWithIDs(t *testing.T) {
	data := t.TempDir()
	dir := t.TempDir()
	npy, ids := filepath.Join(dir, "v.npy"), filepath.Join(dir, "ids.txt")
	writeNPY(t, npy, 500, 3, func(r, c int) float32 { return float32(r*3 + c) })
	var idl strings.Builder
	for r := range 500 {
		fmt.Fprintf(&idl, "row-%d\n", r)
	}
	os.WriteFile(ids, []byte(idl.String()), 0o644)
	code, out, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "3", "--metric", "l2", "--ids", ids, "vecs", npy)
	if code != 0 || !strings.Contains(out, "imported 500 records") {
		t.Fatalf("npy import: exit %d %q %q", code, out, stderr)
	}
	got := exportAll(t, data, "vecs")
	if len(got) != 500 || fmt.Sprint(got["row-17"].Vector) != "[51 52 53]" {
		t.Fatalf("npy round trip: %d records, row-17 = %v", len(got), got["row-17"].Vector)
	}
	wrong := filepath.Join(dir, "w.npy")
	writeNPY(t, wrong, 2, 5, func(r, c int) float32 { return 1 })
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "vecs", wrong); code != 1 || !strings.Contains(stderr, "5") {
		t.Errorf("npy of the wrong width: exit %d %q", code, stderr)
	}
}
