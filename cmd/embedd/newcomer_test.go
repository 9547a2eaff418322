package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/embedd/embedd/index"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// Issue 12.5: -h exits 0 for every command, misuse exits 2.
func TestHelpAndMisuseExitCodes(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"config"}, {"config", "check"}, {"embed"}, {"tokenize"}, {"import"}, {"export"}, {"repair"}, {"verify"}} {
		for _, h := range []string{"-h", "--help"} {
			if code, _, stderr := runCmd(t, "", append(cmd, h)...); code != 0 {
				t.Errorf("embedd %s %s: exit %d, want 0 (%s)", strings.Join(cmd, " "), h, code, stderr)
			}
		}
		if code, _, _ := runCmd(t, "", append(cmd, "--no-such-flag")...); code != 2 {
			t.Errorf("embedd %s --no-such-flag: exit %d, want 2", strings.Join(cmd, " "), code)
		}
	}
	if code, out, _ := runCmd(t, "", "config", "check", "-h"); code != 0 || !strings.Contains(out, "usage: embedd config check FILE") {
		t.Errorf("config check -h: exit %d, %q: -h is not a file name", code, out)
	}
}

// jsonl writes n records of dimension dim (and then the extra lines) to a
// file and returns its path.
func jsonl(t *testing.T, n, dim int, extra ...string) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		v := make([]float32, dim)
		v[i%dim] = float32(i + 1)
		js, _ := json.Marshal(v)
		fmt.Fprintf(&b, "{\"id\": \"r%d\", \"vector\": %s}\n", i, js)
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	path := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}

// Issue 12.2: an import that fails removes the collection it created, so
// the retry with the right --dim works; into an existing collection it says
// what was stored.
func TestImportFailureLeavesNoCollection(t *testing.T) {
	data := t.TempDir()
	four := jsonl(t, 2, 4)
	code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "3", "c", four)
	if code != 1 || !strings.Contains(stderr, "collection c, created for this import, is removed again") {
		t.Fatalf("import with the wrong --dim: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "c")); !os.IsNotExist(err) {
		t.Fatalf("the failed import left %s behind: %v", filepath.Join(data, "c"), err)
	}
	if code, out, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "4", "c", four); code != 0 || !strings.Contains(out, "imported 2 records into c") {
		t.Fatalf("the retry with the right --dim: exit %d, %q %q", code, out, stderr)
	}
	// Into the existing collection: the file is checked whole first, so a
	// bad line after a full batch (1024 records) stores nothing, and the
	// message says so.
	bad := jsonl(t, 1030, 4, `{"id": "x", "vector": [1, 2]}`)
	code, _, stderr = runCmd(t, "", "import", "--data-dir", data, "c", bad)
	if code != 1 || !strings.Contains(stderr, "line 1031") || !strings.Contains(stderr, "nothing was stored in c") {
		t.Fatalf("a failed import into an existing collection: exit %d, %q", code, stderr)
	}
	if code, out, stderr := runCmd(t, "", "export", "--data-dir", data, "c"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("after the failed import the collection holds %d records, want the 2 from before (exit %d, %q)", strings.Count(out, "\n"), code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "--dim", "5", "c", four); code != 1 || !strings.Contains(stderr, "--dim 5: collection c exists with dimension 4") {
		t.Errorf("--dim that is not the collection's: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "import", "--data-dir", data, "d", four); code != 1 || !strings.Contains(stderr, "collection d does not exist") || !strings.Contains(stderr, "give --dim N") {
		t.Errorf("a missing collection without --dim: exit %d, %q", code, stderr)
	}
}

// Issue 12.3: importing into a collection a server holds says so and what
// to do, with or without --dim.
func TestImportIntoHeldCollection(t *testing.T) {
	data := t.TempDir()
	held, err := index.Create(filepath.Join(data, "c"), index.Spec{Dim: 4, Metric: index.Cosine})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, args := range [][]string{{}, {"--dim", "4"}} {
		code, _, stderr := runCmd(t, "", append(append([]string{"import", "--data-dir", data}, args...), "c", jsonl(t, 1, 4))...)
		if code != 1 || !strings.Contains(stderr, "collection c is held by a running server") || !strings.Contains(stderr, `"embedctl upsert c"`) || strings.Contains(stderr, "exists") {
			t.Errorf("import %v into a held collection: exit %d, %q", args, code, stderr)
		}
	}
}

// Issue 12.6: --ids applies to .npy only: with JSONL it is refused.
func TestImportRefusesIDsWithJSONL(t *testing.T) {
	code, _, stderr := runCmd(t, "", "import", "--data-dir", t.TempDir(), "--dim", "4", "--ids", "ids.txt", "c", jsonl(t, 1, 4))
	if code != 2 || !strings.Contains(stderr, "--ids ids.txt is for .npy input only") {
		t.Errorf("--ids with JSONL: exit %d, %q", code, stderr)
	}
}

// Issue 11.7: config check reports API keys no request could match.
func TestConfigCheckReportsUnmatchableKeys(t *testing.T) {
	needFixtures(t)
	modelDir, _ := filepath.Abs(filepath.Join("..", "..", ".cache", "models", "minilm-l6-random"))
	cfg := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(cfg, []byte(`{"models": [{"id": "m", "path": "`+modelDir+`"}], "api_keys": ["good-key-0123456789", " spaced-key-0123456789"]}`), 0o644)
	code, _, stderr := runCmd(t, "", "config", "check", cfg)
	if code != 1 || !strings.Contains(stderr, "api_keys[1]: (22 characters) has a space, a control or a non-ASCII character: no request could ever match it") || strings.Contains(stderr, "api_keys[0]") {
		t.Errorf("config check: exit %d, %q", code, stderr)
	}
}

// Issue 12.9 and 12.7: serve takes --data-dir as import and export do
// (over EMBEDD_DATA_DIR), and logs durations as durations.
func TestServeDataDirFlagAndDurationLogs(t *testing.T) {
	needFixtures(t)
	envDir, flagDir := t.TempDir(), t.TempDir()
	sp := startServe(t, buildEmbedd(t), envDir, "--data-dir", flagDir)
	if _, err := embeddv1.NewIndexServiceClient(sp.conn).CreateCollection(context.Background(), &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 2}); err != nil {
		t.Fatal(err)
	}
	if err := sp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := sp.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(flagDir, "docs")); err != nil {
		t.Errorf("the collection is not in --data-dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(envDir, "docs")); err == nil {
		t.Error("the collection went to EMBEDD_DATA_DIR although --data-dir was given")
	}
	found := false
	for l := range sp.logs {
		var rec map[string]any
		json.Unmarshal([]byte(l), &rec)
		if rec["msg"] == "embedd: shutting down" {
			found = true
			if rec["grace"] != "30s" {
				t.Errorf("shutdown log line %s: want \"grace\":\"30s\"", l)
			}
		}
	}
	if !found {
		t.Error("no shutdown log line")
	}
}
