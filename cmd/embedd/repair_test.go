package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/embedd/embedd/index"
)

// crashImage writes n records into collection name under a new data
// directory and returns a copy of that directory taken while the
// collection was open: what a crash leaves, the writes only in the WAL.
func crashImage(t *testing.T, name string, n int) string {
	t.Helper()
	live := t.TempDir()
	c, err := index.Create(filepath.Join(live, name), index.Spec{Dim: 4, Metric: index.Dot}, index.WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := c.Upsert(context.Background(), []index.Record{{ID: fmt.Sprintf("k%d", i), Vector: []float32{float32(i), 1, 2, 3}}}); err != nil {
			t.Fatal(err)
		}
	}
	image := t.TempDir()
	if err := os.CopyFS(image, os.DirFS(live)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return image
}

func TestRepairCommand(t *testing.T) {
	data := crashImage(t, "docs", 100)
	segs, _ := filepath.Glob(filepath.Join(data, "docs", "wal-*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil || len(b) < 4200 {
		t.Fatalf("WAL of %d bytes: %v", len(b), err)
	}
	b[4000] ^= 0x5a
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := index.Open(filepath.Join(data, "docs")); err == nil || !strings.Contains(err.Error(), "not a torn write") {
		t.Fatalf("Open of the damaged collection = %v", err)
	}
	code, out, stderr := runCmd(t, "", "repair", "--data-dir", data, "docs")
	if code != 0 || !strings.Contains(out, "damage: "+segs[0]+" at offset ") || !strings.Contains(out, "99 batches replayed, 1 lost") {
		t.Fatalf("repair: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	c, err := index.Open(filepath.Join(data, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Stats(); st.Live != 99 {
		t.Fatalf("after repair: %+v", st)
	}
	if code, _, stderr := runCmd(t, "", "repair", "--data-dir", data, "docs"); code != 1 || !strings.Contains(stderr, "locked") {
		t.Fatalf("repair of an open collection: exit %d: %s", code, stderr)
	}
	if code, _, _ := runCmd(t, "", "repair", "--data-dir", data); code != 2 {
		t.Fatalf("repair without a collection: exit %d", code)
	}
}

func TestVerifyCommand(t *testing.T) {
	data := crashImage(t, "docs", 10)
	if err := os.CopyFS(filepath.Join(data, "other"), os.DirFS(filepath.Join(data, "docs"))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"docs", "other"} {
		c, err := index.Open(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil { // a checkpoint with checksums
			t.Fatal(err)
		}
	}
	if code, out, stderr := runCmd(t, "", "verify", "--data-dir", data); code != 0 || !strings.Contains(out, "docs: ok (3 files") || !strings.Contains(out, "other: ok") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}
	vecs, _ := filepath.Glob(filepath.Join(data, "other", "vectors-*.f32"))
	f, err := os.OpenFile(vecs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x7f}, 64+5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, _ := runCmd(t, "", "verify", "--data-dir", data, "docs", "other")
	if code != 1 || !strings.Contains(out, "docs: ok") || !strings.Contains(out, "other: FAILED") || !strings.Contains(out, vecs[0]) {
		t.Fatalf("verify after a flip: exit %d\n%s", code, out)
	}
}
