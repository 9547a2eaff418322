package index

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestNextCapacity(t *testing.T) {
	cases := []struct{ cur, need, want int64 }{
		{0, 1, minCapacity},
		{minCapacity, minCapacity + 1, 2 * minCapacity},
		{1 << 20, 5 << 20, 8 << 20},
		{1 << 30, 1<<30 + 1, 2 << 30},
		{4 << 30, 4<<30 + 1, 5 << 30}, // past 1 GiB, steps of 1 GiB
	}
	for _, tc := range cases {
		if got := nextCapacity(tc.cur, tc.need); got != tc.want {
			t.Errorf("nextCapacity(%d, %d) = %d, want %d", tc.cur, tc.need, got, tc.want)
		}
	}
}

// Growing past the reservation maps again; slices of the old mapping stay
// valid and see the same file.
func TestMappedFileGrowsWithoutMovingOldSlices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	m, err := createMappedFile(path, makeHeader(idsMagic, 0, 1), 0, 2*minCapacity)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if m.size != minCapacity || len(m.mem) != 2*minCapacity {
		t.Fatalf("size %d, mapping %d", m.size, len(m.mem))
	}
	old := m.bytes()
	copy(old[100:], "hello")
	if err := m.ensure(2 * minCapacity); err != nil { // within the reservation
		t.Fatal(err)
	}
	if &m.bytes()[0] != &old[0] || len(m.old) != 0 {
		t.Fatal("growing within the reservation mapped again")
	}
	if err := m.ensure(10 * minCapacity); err != nil { // past it
		t.Fatal(err)
	}
	if len(m.old) != 1 || &m.bytes()[0] == &old[0] {
		t.Fatal("growing past the reservation did not map again")
	}
	if string(old[100:105]) != "hello" || string(m.bytes()[100:105]) != "hello" {
		t.Fatal("old and new mappings disagree")
	}
	copy(m.bytes()[200:], "world")
	if string(old[200:205]) != "world" {
		t.Fatal("a write through the new mapping is not visible through the old (MAP_SHARED)")
	}
	if st, _ := os.Stat(path); st.Size() != m.size || m.size < 10*minCapacity {
		t.Fatalf("file is %d bytes, size %d", st.Size(), m.size)
	}
	if err := m.sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if err := m.close(); err != nil {
		t.Fatal("second close:", err)
	}
	var nilFile *mappedFile
	if err := nilFile.close(); err != nil {
		t.Fatal(err)
	}
}

// A private mapping takes writes into its own pages; the file is untouched,
// and it cannot grow.
func TestPrivateMappingNeverWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w, err := createMappedFile(path, makeHeader(metaMagic, 0, 1), 0, minCapacity)
	if err != nil {
		t.Fatal(err)
	}
	copy(w.bytes()[fileHeaderSize:], "shared")
	w.sync()
	before, _ := os.ReadFile(path)
	p, err := openMappedFile(path, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	copy(p.bytes()[fileHeaderSize:], "PRIVATE")
	if err := p.ensure(p.size + 1); !errors.Is(err, errNoRoom) {
		t.Fatalf("private ensure = %v", err)
	}
	w.close()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("a write through the private mapping reached the file")
	}
}

func TestHeaderChecks(t *testing.T) {
	h := makeHeader(vectorsMagic, 384, 7)
	if err := checkHeader(h, vectorsMagic, 384, 7, "p"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"magic": checkHeader(h, normsMagic, 384, 7, "p"),
		"dim":   checkHeader(h, vectorsMagic, 385, 7, "p"),
		"gen":   checkHeader(h, vectorsMagic, 384, 8, "p"),
		"short": checkHeader(h[:10], vectorsMagic, 384, 7, "p"),
	} {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	h[20] ^= 1
	if err := checkHeader(h, vectorsMagic, 384, 7, "p"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileAtomic(dir, "x", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(dir, "x", []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "x"))
	ents, _ := os.ReadDir(dir)
	if string(got) != "two" || len(ents) != 1 {
		t.Fatalf("content %q, %d entries", got, len(ents))
	}
}
