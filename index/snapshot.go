package index

import (
	"iter"
	"sync"
	"sync/atomic"
)

// state is one published, immutable view of a collection: the first rows
// rows of a generation as of batch seq. The slices are headers captured when
// the state was made; writers only append past them (or, for del, store
// delete seqs that are later than seq for rows a reader can see).
type state struct {
	deletedOnce sync.Once
	deleted     []uint64 // DeletedBitmap, made on first use

	gen      *generation
	seq      uint64
	rows     int
	live     int
	data     []float32 // rows*dim, row-major, straight from the mapping
	norms    []float32 // squared norms (L2 only)
	ids      []string
	metaOffs []uint64
	metaMem  []byte
	del      []uint64
}

// Snapshot is a consistent, immutable view of a collection: every row it
// exposes is complete, and it sees each batch of writes whole or not at all.
// Searches and writes go on while it is open. A Snapshot is safe for
// concurrent use.
//
// The slices it returns point into memory-mapped files and are valid until
// Close; they must not be modified. An open Snapshot keeps its generation's
// files mapped, even across compaction, so close it when done.
type Snapshot struct {
	st     *state
	closed atomic.Bool
}

// Snapshot returns a view of the collection's acknowledged writes. The
// caller must Close it; the collection may be closed first, its files are
// released when the last snapshot closes.
func (c *Collection) Snapshot() (*Snapshot, error) {
	if c == nil {
		return nil, ErrClosed
	}
	for {
		st := c.cur.Load()
		if st == nil {
			return nil, ErrClosed
		}
		if st.gen.acquire() {
			return &Snapshot{st: st}, nil
		}
		// The generation was released after a compaction swapped in a
		// new one; load the new state.
	}
}

// Close releases the snapshot's files. It is nil-safe and idempotent.
func (s *Snapshot) Close() error {
	if s == nil || !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return s.st.gen.release()
}

// Len is the number of rows, deleted ones included: rows are numbered
// 0..Len()-1.
func (s *Snapshot) Len() int { return s.st.rows }

// Live is the number of rows not deleted.
func (s *Snapshot) Live() int { return s.st.live }

// Dim is the collection's dimension.
func (s *Snapshot) Dim() int { return s.st.gen.dim }

// Metric is the collection's metric.
func (s *Snapshot) Metric() Metric { return s.st.gen.metric }

// Seq is the sequence number of the last write batch the snapshot includes.
func (s *Snapshot) Seq() uint64 { return s.st.seq }

// Generation identifies the data files the snapshot reads; compaction
// starts a new generation, in which rows are numbered anew.
func (s *Snapshot) Generation() uint64 { return s.st.gen.id }

// Data is every row, row-major: Len()*Dim() float32, unit length in cosine
// collections. It is the memory-mapped file itself (no copy), valid until
// Close, and must not be modified.
func (s *Snapshot) Data() []float32 { return s.st.data }

// Norms are the rows' squared L2 norms in l2 collections, nil otherwise.
// Valid until Close; must not be modified.
func (s *Snapshot) Norms() []float32 { return s.st.norms }

// Row is row i's vector, a slice of Data.
func (s *Snapshot) Row(i int) []float32 {
	d := s.st.gen.dim
	return s.st.data[i*d : (i+1)*d : (i+1)*d]
}

// Deleted reports whether row i is deleted in this snapshot (deleted, or
// replaced by a later upsert of its id).
func (s *Snapshot) Deleted(i int) bool { return deletedAt(s.st.del, i, s.st.seq) }

// DeletedBitmap is Deleted for every row as a bitmap: bit i%64 of word i/64
// is set when row i is deleted, (Len()+63)/64 words, the skip set a search
// kernel takes. It is made once per published state (so searches between
// writes share it) and must not be modified.
func (s *Snapshot) DeletedBitmap() []uint64 {
	st := s.st
	st.deletedOnce.Do(func() {
		st.deleted, _ = tombstoneBitmap(st.del, st.rows, st.seq)
	})
	return st.deleted
}

// ID is row i's id.
func (s *Snapshot) ID(i int) string { return s.st.ids[i] }

// Metadata is row i's metadata (nil if none) and whether it is a JSON
// object. Valid until Close; must not be modified.
func (s *Snapshot) Metadata(i int) (data []byte, isJSON bool) {
	kind, data := metaAt(s.st.metaMem, s.st.metaOffs[i])
	return data, kind == metaKindJSON
}

// Lookup returns the live row holding id in this snapshot.
func (s *Snapshot) Lookup(id string) (row int, ok bool) {
	r, ok := s.st.gen.ids.lookup(id, s.st.rows)
	if !ok || s.Deleted(int(r)) {
		return 0, false
	}
	return int(r), true
}

// LiveRows yields the live rows in row order.
func (s *Snapshot) LiveRows() iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range s.st.rows {
			if !s.Deleted(i) && !yield(i) {
				return
			}
		}
	}
}

// Record returns row i as a Record whose slices are copies.
func (s *Snapshot) Record(i int) Record {
	meta, isJSON := s.Metadata(i)
	r := Record{ID: s.ID(i), Vector: append([]float32(nil), s.Row(i)...), MetadataJSON: isJSON}
	if meta != nil {
		r.Metadata = append([]byte(nil), meta...)
	}
	return r
}
