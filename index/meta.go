package index

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
)

// metaStore is the per-row metadata of one generation: meta-<gen>.dat holds,
// after the header, a record for each row that has metadata, in row order:
// | row u32 | kind u8 | len u32 | data |. Kind 1 is opaque bytes, kind 2 a
// JSON object (validated and compacted when written), which is what filters
// read. In memory, offs maps each row to its record's offset (0: none); it is
// append-only, so snapshots keep a slice of it.
type metaStore struct {
	file   *mappedFile
	length int64    // logical bytes, header included; guarded by Collection.mu
	offs   []uint64 // row → record offset or 0; header guarded by Collection.mu
}

func metaPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("meta-%016x.dat", gen))
}

// createMeta creates an empty metadata file for generation gen with room for
// capacity bytes of records. The caller closes it.
func createMeta(dir string, gen uint64, capacity int64, rows int) (*metaStore, error) {
	f, err := createMappedFile(metaPath(dir, gen), makeHeader(metaMagic, 0, gen), fileHeaderSize+capacity, smallReserve)
	if err != nil {
		return nil, err
	}
	return &metaStore{file: f, length: fileHeaderSize, offs: make([]uint64, 0, rows)}, nil
}

// openMeta maps generation gen's metadata and indexes its first length
// bytes, which must only name rows below rows. The caller closes it.
func openMeta(dir string, gen uint64, length int64, rows int, private bool) (_ *metaStore, err error) {
	f, err := openLog(metaPath(dir, gen), metaMagic, gen, length, private)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	mem := f.bytes()
	m := &metaStore{file: f, length: length, offs: make([]uint64, rows, rows+rows/8+16)}
	next := 0 // rows below next are indexed
	for off := int64(fileHeaderSize); off < length; {
		if off+metaRecordHeader > length {
			return nil, corruptf("%s: metadata record at offset %d is cut short", f.path, off)
		}
		row := int(binary.LittleEndian.Uint32(mem[off:]))
		kind := mem[off+4]
		n := int64(binary.LittleEndian.Uint32(mem[off+5:]))
		switch {
		case row < next || row >= rows:
			return nil, corruptf("%s: metadata record at offset %d names row %d out of order (rows %d)", f.path, off, row, rows)
		case kind != metaKindBytes && kind != metaKindJSON:
			return nil, corruptf("%s: metadata record at offset %d has kind %d", f.path, off, kind)
		case n > MaxMetadataBytes || off+metaRecordHeader+n > length:
			return nil, corruptf("%s: metadata record at offset %d has bad length %d", f.path, off, n)
		}
		m.offs[row] = uint64(off)
		next = row + 1
		off += metaRecordHeader + n
	}
	return m, nil
}

// metaRecordSize is the bytes a row's metadata takes in the file.
func metaRecordSize(kind byte, data []byte) int64 {
	if kind == metaKindNone {
		return 0
	}
	return metaRecordHeader + int64(len(data))
}

// ensure makes room for extra more bytes of records.
func (m *metaStore) ensure(extra int64) error { return m.file.ensure(m.length + extra) }

// append records row's metadata (kind none: no record). Rows are appended in
// order; the caller ensured room.
func (m *metaStore) append(row int, kind byte, data []byte) {
	if kind == metaKindNone {
		m.offs = append(m.offs, 0)
		return
	}
	mem := m.file.mem
	off := m.length
	binary.LittleEndian.PutUint32(mem[off:], uint32(row))
	mem[off+4] = kind
	binary.LittleEndian.PutUint32(mem[off+5:], uint32(len(data)))
	copy(mem[off+metaRecordHeader:], data)
	m.length += metaRecordHeader + int64(len(data))
	m.offs = append(m.offs, uint64(off))
}

// metaAt reads the record at off in mem (a mapping a snapshot holds).
func metaAt(mem []byte, off uint64) (kind byte, data []byte) {
	if off == 0 {
		return metaKindNone, nil
	}
	kind = mem[off+4]
	n := uint64(binary.LittleEndian.Uint32(mem[off+5:]))
	start := off + metaRecordHeader
	return kind, mem[start : start+n : start+n]
}

func (m *metaStore) sync() error { return m.file.sync() }

// close unmaps and closes the file; nil-safe and idempotent.
func (m *metaStore) close() error {
	if m == nil {
		return nil
	}
	return m.file.close()
}
