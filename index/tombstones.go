package index

import "sync/atomic"

// Tombstones are kept per generation as one uint64 per row: the seq of the
// batch that deleted the row, or 0 while it is live. A row is deleted in a
// snapshot when that seq is non-zero and at most the snapshot's, so a delete
// never has to copy anything for the readers that predate it. The writer
// stores with atomic.StoreUint64 and readers load with atomic.LoadUint64.
// On disk (in CHECKPOINT) they are a bitmap of the rows deleted as of the
// checkpoint's seq.

// deletedAt reports whether row is deleted as of seq.
func deletedAt(del []uint64, row int, seq uint64) bool {
	d := atomic.LoadUint64(&del[row])
	return d != 0 && d <= seq
}

// tombstoneBitmap returns the bitmap of rows below rows deleted as of seq,
// and how many there are.
func tombstoneBitmap(del []uint64, rows int, seq uint64) (words []uint64, count int) {
	words = make([]uint64, (rows+63)/64)
	for r := range rows {
		if deletedAt(del, r, seq) {
			words[r/64] |= 1 << (r % 64)
			count++
		}
	}
	return words, count
}

// tombstonesFromBitmap is the inverse: deleted rows get seq (the checkpoint's,
// which every later snapshot's is at least). capHint sizes the result.
func tombstonesFromBitmap(words []uint64, rows int, seq uint64, capHint int) (del []uint64, count int) {
	del = make([]uint64, rows, max(rows, capHint))
	for r := range rows {
		if words[r/64]&(1<<(r%64)) != 0 {
			del[r] = seq
			count++
		}
	}
	return del, count
}
