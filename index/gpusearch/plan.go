package gpusearch

import "github.com/embedd/embedd/gpu"

// upload is what brings a device copy of a collection's matrix in step with
// a snapshot.
type upload struct {
	// Reset says the device copy is of another generation (or holds
	// nothing): every row is copied again.
	Reset bool
	// From and To are the rows to copy, [From, To); From == To when none.
	From, To int
}

// planUpload returns the copy that brings a device copy holding the first
// have rows of generation haveGen (have == 0: nothing yet) in step with a
// snapshot of rows rows of generation gen. Within a generation rows are only
// appended, so only rows past have are copied; a snapshot with fewer rows
// than the copy (an older one) is a prefix of it and needs nothing.
func planUpload(haveGen uint64, have int, gen uint64, rows int) upload {
	if have == 0 || haveGen != gen {
		return upload{Reset: true, From: 0, To: rows}
	}
	if rows <= have {
		return upload{From: have, To: have}
	}
	return upload{From: have, To: rows}
}

// grownCap returns the row capacity of a device buffer that must hold need
// rows and now holds capRows: capRows if enough, else at least double it
// (so n appends cost O(log n) reallocations), never below need or 1,024.
func grownCap(capRows, need int) int {
	if need <= capRows {
		return capRows
	}
	return max(need, 2*capRows, 1024)
}

// isSkipped reports whether bit r of the bitmap is set; rows past its end
// are not skipped (flat.Options.Skip's rule).
func isSkipped(skip []uint64, r int) bool {
	w := r / 64
	return w < len(skip) && skip[w]&(1<<(r%64)) != 0
}

// anySkipped reports whether any of rows [0, n) is skipped.
func anySkipped(skip []uint64, n int) bool {
	full := min(n/64, len(skip))
	for _, w := range skip[:full] {
		if w != 0 {
			return true
		}
	}
	if full < len(skip) && n%64 != 0 {
		return skip[full]&(1<<(n%64)-1) != 0
	}
	return false
}

// maskDiff returns the rows [lo, hi) of the per-row bias vector to
// recompute and copy to the device for a search of rows [0, n) with skip
// bitmap skip, when the device holds the bias of rows [0, valid), each
// computed with its bit in last. Rows at or past valid are always included;
// rows below it only where their bit differs. The range is cut at 64-row
// words (and valid and n) and covers every change between its ends: one
// copy, not one per run of changes. lo == hi == 0 when nothing changed.
func maskDiff(last, skip []uint64, valid, n int) (lo, hi int) {
	lo, hi = n, 0
	if valid < n {
		lo, hi = valid, n
	}
	upto := min(valid, n) // rows whose bits are compared
	words := (upto + 63) / 64
	differs := func(w int) bool {
		return (word(last, w)^word(skip, w))&rowMask(w, 0, upto) != 0
	}
	for w := range words {
		if differs(w) {
			lo = min(lo, w*64)
			hi = max(hi, min((w+1)*64, n))
			break
		}
	}
	if lo >= hi {
		return 0, 0
	}
	for w := words - 1; w >= 0 && w*64 >= lo; w-- {
		if differs(w) {
			hi = max(hi, min((w+1)*64, n))
			break
		}
	}
	return lo, hi
}

// applyMask records in last (grown as needed, and returned) that the bias
// of rows [lo, hi) was computed with their bits in skip; other rows' bits
// are left as they were.
func applyMask(last, skip []uint64, lo, hi int) []uint64 {
	if w := (hi + 63) / 64; len(last) < w {
		last = append(last, make([]uint64, w-len(last))...)
	}
	for w := lo / 64; w < (hi+63)/64; w++ {
		m := rowMask(w, lo, hi)
		last[w] = last[w]&^m | word(skip, w)&m
	}
	return last
}

// word returns word w of a bitmap, 0 past its end.
func word(b []uint64, w int) uint64 {
	if w < len(b) {
		return b[w]
	}
	return 0
}

// rowMask returns the bits of word w that stand for rows in [lo, hi).
func rowMask(w, lo, hi int) uint64 {
	a := max(lo-w*64, 0)
	b := min(hi-w*64, 64)
	if a >= b {
		return 0
	}
	m := ^uint64(0) << a
	if b < 64 {
		m &= 1<<b - 1
	}
	return m
}

// Bounds of one query batch's device memory. scratchBudget bounds the
// scores matrix, the top-k scratch and the outputs together; stagingBytes is
// the pinned host buffer every copy goes through, which bounds a batch's
// queries and results too.
const (
	scratchBudget = 256 << 20
	stagingBytes  = 16 << 20
)

// batchSize returns how many queries one batch serves for n rows, k results
// and dimension dim: as many as keep the batch's scores (q·n float32), top-k
// scratch and outputs within budget, its queries (q·dim float32) and its
// results (q·k score and index pairs) within staging, and q within the top-k
// kernel's limit (65,535); at least 1 (one query's scores may exceed the
// budget: they are needed whole), at most nq.
func batchSize(nq, n, k, dim, budget, staging int) int {
	perQuery := 4*n + gpu.TopKScratchBytes(1, n, k) + 8*k
	q := budget / perQuery
	q = min(q, staging/(4*dim), staging/(8*k), 65535, nq)
	return max(q, 1)
}

// batches returns the query batches [q0, q1) that cover nq queries in order,
// size queries each (the last may be short).
func batches(nq, size int) [][2]int {
	var out [][2]int
	for q0 := 0; q0 < nq; q0 += size {
		out = append(out, [2]int{q0, min(q0+size, nq)})
	}
	return out
}
