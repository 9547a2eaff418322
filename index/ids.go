package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
)

// noRow ends a prev chain.
const noRow = math.MaxUint32

// idTable maps ids to rows and back for one generation. On disk it is
// ids-<gen>.dat: after the header, one record per row in row order,
// | len u16 | id |. In memory:
//
//   - rows, row → id, is append-only: an element never changes once
//     written, so a snapshot keeps a slice of it and reads without a lock;
//   - byID maps an id to the newest row that held it (which may since have
//     been deleted) and prev links each row to the previous row with the same
//     id, so a snapshot finds the row that was current at its sequence number
//     even after later upserts of the same id.
type idTable struct {
	file   *mappedFile
	length int64    // logical bytes, header included; guarded by Collection.mu
	rows   []string // row → id; header guarded by Collection.mu

	mu   sync.RWMutex      // guards byID and prev
	byID map[string]uint32 // id → newest row holding it
	prev []uint32          // row → previous row with the same id, or noRow
}

func idsPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("ids-%016x.dat", gen))
}

// createIDs creates an empty id table for generation gen, with room for
// about rows ids of avgLen bytes. The caller closes it.
func createIDs(dir string, gen uint64, rows int, avgLen int) (*idTable, error) {
	f, err := createMappedFile(idsPath(dir, gen), makeHeader(idsMagic, 0, gen),
		fileHeaderSize+int64(rows)*int64(idRecordHeader+avgLen), smallReserve)
	if err != nil {
		return nil, err
	}
	return &idTable{file: f, length: fileHeaderSize, byID: make(map[string]uint32, rows)}, nil
}

// openIDs maps generation gen's id table and reads its first length bytes,
// which must hold exactly rows ids. The caller closes it.
func openIDs(dir string, gen uint64, length int64, rows int, private bool) (_ *idTable, err error) {
	f, err := openLog(idsPath(dir, gen), idsMagic, gen, length, private)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	t := &idTable{file: f, length: length}
	if err := t.index(rows); err != nil {
		return nil, err
	}
	return t, nil
}

// index builds rows, byID and prev from the records in the file up to
// t.length, which must hold exactly rows ids. One string holds every id
// read, so indexing a large table makes one allocation for the ids rather
// than one per row (and shares nothing with an older generation). The
// caller holds t.mu or owns t alone.
func (t *idTable) index(rows int) error {
	t.rows = make([]string, 0, rows)
	t.byID = make(map[string]uint32, rows)
	t.prev = make([]uint32, 0, rows)
	mem := t.file.mem
	all := string(mem[fileHeaderSize:t.length])
	for off := 0; off < len(all); {
		if off+idRecordHeader > len(all) {
			return corruptf("%s: id record at offset %d is cut short", t.file.path, fileHeaderSize+off)
		}
		n := int(binary.LittleEndian.Uint16(mem[fileHeaderSize+off:]))
		off += idRecordHeader
		if n == 0 || n > MaxIDBytes || off+n > len(all) {
			return corruptf("%s: id record at offset %d has bad length %d", t.file.path, fileHeaderSize+off-idRecordHeader, n)
		}
		t.addLocked(all[off : off+n])
		off += n
	}
	if len(t.rows) != rows {
		return corruptf("%s: %d ids, want %d rows", t.file.path, len(t.rows), rows)
	}
	return nil
}

// addLocked records id as the next row in memory. The caller holds t.mu (or
// owns t alone).
func (t *idTable) addLocked(id string) {
	row := uint32(len(t.rows))
	p, ok := t.byID[id]
	if !ok {
		p = noRow
	}
	t.prev = append(t.prev, p)
	t.byID[id] = row
	t.rows = append(t.rows, id)
}

// ensure makes room for extra more bytes of records.
func (t *idTable) ensure(extra int64) error { return t.file.ensure(t.length + extra) }

// appendLocked writes id as the next row's record and records it in memory.
// The caller holds t.mu and ensured room.
func (t *idTable) appendLocked(id string) {
	t.writeRecord(id)
	t.addLocked(id)
}

// writeRecord writes id's record to the file only; index reads it later.
// The caller ensured room.
func (t *idTable) writeRecord(id string) {
	mem := t.file.mem
	binary.LittleEndian.PutUint16(mem[t.length:], uint16(len(id)))
	copy(mem[t.length+idRecordHeader:], id)
	t.length += idRecordHeader + int64(len(id))
}

// newestLocked returns the newest row that held id. The caller holds t.mu.
func (t *idTable) newestLocked(id []byte) (uint32, bool) {
	r, ok := t.byID[string(id)]
	return r, ok
}

// lookup returns the newest row below rows that held id: the row a snapshot
// of rows rows sees for it.
func (t *idTable) lookup(id string, rows int) (uint32, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.byID[id]
	for ok && int(r) >= rows {
		r = t.prev[r]
		ok = r != noRow
	}
	return r, ok
}

func (t *idTable) sync() error { return t.file.sync() }

// close unmaps and closes the file; nil-safe and idempotent.
func (t *idTable) close() error {
	if t == nil {
		return nil
	}
	return errors.Join(t.file.close())
}
