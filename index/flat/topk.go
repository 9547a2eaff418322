package flat

import "math"

// cand is a candidate row and its ranking key (larger is better: the
// similarity, or q·r - |r|²/2 for L2): 8 bytes, so that a self-join's
// heaps of every row (K of them a row) take half the memory an int row
// would. Matrices have fewer than maxRows rows.
type cand struct {
	s float32
	r int32
}

// maxRows bounds the rows of a matrix (a row is an int32 in a cand).
const maxRows = 1<<31 - 1

// better reports whether a ranks before b: larger key, then smaller row.
func (a cand) better(b cand) bool {
	return a.s > b.s || a.s == b.s && a.r < b.r
}

// topK keeps the k best candidates offered to it in a heap whose root is
// the worst of them. thr is the root's key once the heap is full and -Inf
// before, so a key below thr can be dropped with one comparison.
type topK struct {
	h   []cand
	k   int
	thr float32
}

var negInf = float32(math.Inf(-1))

func (t *topK) reset(k int) {
	t.h = t.h[:0]
	t.k = k
	t.thr = negInf
}

// offer offers rows base, base+1, ... with keys sc.
func (t *topK) offer(sc []float32, base int, skip []uint64) {
	thr := t.thr
	for j, s := range sc {
		if s < thr || skip != nil && skipped(skip, base+j) {
			continue
		}
		t.push(cand{s, int32(base + j)})
		thr = t.thr
	}
}

// offerL2 offers rows base, base+1, ... with dot products sc and squared
// norms norms, keyed by q·r - |r|²/2 = (|q|² - |q-r|²)/2.
func (t *topK) offerL2(sc, norms []float32, base int, skip []uint64) {
	thr := t.thr
	norms = norms[:len(sc)]
	for j, s := range sc {
		s -= 0.5 * norms[j]
		if s < thr || skip != nil && skipped(skip, base+j) {
			continue
		}
		t.push(cand{s, int32(base + j)})
		thr = t.thr
	}
}

// has reports whether row r is among the candidates kept.
func (t *topK) has(r int) bool {
	for _, c := range t.h {
		if int(c.r) == r {
			return true
		}
	}
	return false
}

func (t *topK) push(c cand) {
	h := t.h
	if len(h) < t.k {
		h = append(h, c)
		// Sift up.
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[p].better(h[i]) {
				break
			}
			h[p], h[i] = h[i], h[p]
			i = p
		}
		t.h = h
		if len(h) == t.k {
			t.thr = h[0].s
		}
		return
	}
	if !c.better(h[0]) {
		return
	}
	// Replace the root and sift down.
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		if r := l + 1; r < len(h) && h[l].better(h[r]) {
			l = r
		}
		if !c.better(h[l]) {
			break
		}
		h[i] = h[l]
		i = l
	}
	h[i] = c
	t.thr = h[0].s
}
