package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips it where
// the test may not mount (not root, no tmpfs).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the disk-full test needs one", err)
	}
	t.Cleanup(func() {
		// EBUSY here is a file of the test's collections left open.
		if err := unix.Unmount(dir, 0); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// TestDiskFull: writes into a full file system fail with ErrNoSpace naming
// the directory, nothing of them is stored, and once space is freed writes
// go on without reopening; every acknowledged write survives a reopen.
func TestDiskFull(t *testing.T) {
	const dim = 64
	disk := smallDisk(t, 4<<20)
	ballast := filepath.Join(disk, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := OpenManager(filepath.Join(disk, "data"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Create("docs", Spec{Dim: dim, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acked := map[string]float32{}
	write := func(i int) error {
		var recs []Record
		for j := range 8 {
			id := fmt.Sprintf("r%d-%d", i, j)
			recs = append(recs, Record{ID: id, Vector: testVec(dim, float32(i)), Metadata: []byte(strings.Repeat("m", 200))})
		}
		err := c.Upsert(ctx, recs)
		if err == nil {
			for _, r := range recs {
				acked[r.ID] = float32(i)
			}
		}
		return err
	}
	i := 0
	for ; ; i++ {
		if err = write(i); err != nil {
			break
		}
		if i > 100000 {
			t.Fatal("a 4 MiB file system never filled")
		}
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), c.Dir()) {
		t.Fatalf("write %d into a full disk: %v, want ErrNoSpace naming %s", i, err, c.Dir())
	}
	full := c.Stats()
	if full.Live != len(acked) {
		t.Fatalf("after the refused write: %d live rows, %d acknowledged", full.Live, len(acked))
	}
	if _, err := m.Create("more", Spec{Dim: dim, Metric: L2}); err != nil && !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Create on a full disk: %v, want ErrNoSpace (or success)", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	// Space is back: the same collection takes writes, no reopen.
	for k := range 20 {
		if err := write(i + 1 + k); err != nil {
			t.Fatalf("write %d after freeing space: %v", k, err)
		}
	}
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint after freeing space: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Open(filepath.Join(disk, "data", "docs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for id, v := range acked {
		r, ok, err := c.Get(id)
		if err != nil || !ok || r.Vector[0] != v {
			t.Fatalf("acknowledged %s after reopening: %v %v (%v)", id, ok, err, r.Vector)
		}
	}
	if st := c.Stats(); st.Live != len(acked) {
		t.Fatalf("%d live rows after reopening, %d acknowledged", st.Live, len(acked))
	}
	if _, err := Verify(c.Dir()); err != nil {
		t.Fatal(err)
	}
}
