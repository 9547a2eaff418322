package index

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

func TestMetaStore(t *testing.T) {
	dir := t.TempDir()
	m, err := createMeta(dir, 2, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	entries := []struct {
		kind byte
		data string
	}{{metaKindNone, ""}, {metaKindJSON, `{"a":1}`}, {metaKindBytes, "\x00raw"}, {metaKindNone, ""}}
	for row, e := range entries {
		if err := m.ensure(metaRecordSize(e.kind, []byte(e.data))); err != nil {
			t.Fatal(err)
		}
		m.append(row, e.kind, []byte(e.data))
	}
	check := func(m *metaStore) {
		t.Helper()
		for row, e := range entries {
			kind, data := metaAt(m.file.bytes(), m.offs[row])
			if kind != e.kind || string(data) != e.data {
				t.Errorf("row %d: kind %d %q, want %d %q", row, kind, data, e.kind, e.data)
			}
		}
	}
	check(m)
	length := m.length
	m.sync()
	m.close()
	if m, err = openMeta(dir, 2, length, 4, false); err != nil {
		t.Fatal(err)
	}
	check(m)
	m.close()
	if _, err := openMeta(dir, 2, length, 2, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("record names a row past the checkpoint's: %v", err)
	}
	f, _ := os.OpenFile(metaPath(dir, 2), os.O_RDWR, 0)
	f.WriteAt(binary.LittleEndian.AppendUint32(nil, 0), fileHeaderSize+metaRecordHeader+7) // second record's row: 0 < 1
	f.Close()
	if _, err := openMeta(dir, 2, length, 4, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("rows out of order: %v", err)
	}
}
