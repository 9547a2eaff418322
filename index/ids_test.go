package index

import (
	"errors"
	"os"
	"testing"
)

func TestIDTableChainsAndReopen(t *testing.T) {
	dir := t.TempDir()
	tb, err := createIDs(dir, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	add := func(id string) {
		if err := tb.ensure(int64(idRecordHeader + len(id))); err != nil {
			t.Fatal(err)
		}
		tb.mu.Lock()
		tb.appendLocked(id)
		tb.mu.Unlock()
	}
	for _, id := range []string{"a", "b", "a", "c", "a"} { // rows 0..4
		add(id)
	}
	check := func(tb *idTable) {
		t.Helper()
		cases := []struct {
			id   string
			rows int
			want int
		}{
			{"a", 5, 4}, {"a", 4, 2}, {"a", 2, 0}, {"a", 0, -1}, {"c", 3, -1}, {"c", 4, 3}, {"zz", 5, -1},
		}
		for _, tc := range cases {
			r, ok := tb.lookup(tc.id, tc.rows)
			if (tc.want < 0) == ok || (ok && int(r) != tc.want) {
				t.Errorf("lookup(%s, %d) = %d, %v; want %d", tc.id, tc.rows, r, ok, tc.want)
			}
		}
		if tb.rows[3] != "c" || len(tb.rows) != 5 {
			t.Errorf("rows %v", tb.rows)
		}
	}
	check(tb)
	length := tb.length
	tb.sync()
	tb.close()
	tb, err = openIDs(dir, 1, length, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	check(tb)
	tb.close()
	// The checkpoint's row count must match.
	if _, err := openIDs(dir, 1, length, 4, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("row count mismatch: %v", err)
	}
	// A length cutting a record.
	if _, err := openIDs(dir, 1, length-1, 5, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut record: %v", err)
	}
	// A zero-length record.
	f, _ := os.OpenFile(idsPath(dir, 1), os.O_RDWR, 0)
	f.WriteAt([]byte{0, 0}, fileHeaderSize)
	f.Close()
	if _, err := openIDs(dir, 1, length, 5, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zero-length id: %v", err)
	}
}
