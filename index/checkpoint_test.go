package index

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	del := make([]uint64, 130)
	del[0], del[64], del[129] = 5, 7, 9
	words, n := tombstoneBitmap(del, 130, 8) // row 129 deleted after seq 8
	ck := checkpoint{gen: 3, seq: 8, rows: 130, idsBytes: 1000, metaBytes: 64, deleted: words, ndeleted: n}
	if err := writeCheckpoint(dir, ck); err != nil {
		t.Fatal(err)
	}
	got, err := readCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.gen != 3 || got.seq != 8 || got.rows != 130 || got.idsBytes != 1000 || got.metaBytes != 64 || got.ndeleted != 2 || !slices.Equal(got.deleted, words) {
		t.Fatalf("got %+v", got)
	}
	path := filepath.Join(dir, checkpointName)
	b, _ := os.ReadFile(path)
	for _, off := range []int{0, 17, len(b) - 9, len(b) - 1} {
		bad := slices.Clone(b)
		bad[off] ^= 1
		if _, err := decodeCheckpoint(bad, path); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bit flipped at %d: %v", off, err)
		}
	}
	if _, err := decodeCheckpoint(b[:40], path); !errors.Is(err, ErrCorrupt) {
		t.Error("short checkpoint accepted")
	}
	os.Remove(path)
	if _, err := readCheckpoint(dir); !errors.Is(err, ErrCorrupt) {
		t.Errorf("missing checkpoint: %v", err)
	}
}
