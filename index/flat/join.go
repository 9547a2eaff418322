package flat

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pair is two rows and their score: for SelfJoin A < B, for Join A is a
// row of the first matrix and B of the second.
type Pair struct {
	A, B  int
	Score float32
}

// JoinOptions tunes SelfJoin and Join.
type JoinOptions struct {
	// Metric is Cosine (the rows of both matrices must already be unit
	// length: nothing is normalised) or Dot.
	Metric Metric
	// K, when positive, asks for each row's K best partners.
	K int
	// Threshold, when Pairs is set, sends every pair scoring at least
	// Threshold to Pairs.
	Threshold float32
	// Pairs receives the threshold pairs of block b (rows [b*BlockRows,
	// (b+1)*BlockRows) of the first matrix as A), sorted by (A, B), once
	// per block, from the worker goroutines (concurrently, in any block
	// order). At most MaxBlockPairs pairs of a block are kept (truncated
	// says some were dropped: the first found, in a fixed order, are
	// kept). An error stops the join and is returned.
	Pairs         func(b int, pairs []Pair, truncated bool) error
	MaxBlockPairs int
	// Rows, with K and Join (not SelfJoin, whose rows are complete only at
	// the end), receives block b's rows' K best (hits[i] for row first+i),
	// best first, as soon as the block is done, from the worker goroutines
	// in any block order; Join then keeps no heaps beyond the blocks in
	// flight and returns nil.
	Rows func(b, first int, hits [][]Hit) error
	// SkipBlock, if set, leaves out the blocks it reports (done in a
	// resumed join, or another shard's). With K's heaps the rows' hits are
	// then the best among the blocks scored: a shard's share, which
	// MergeHits combines with the other shards'.
	SkipBlock func(b int) bool
	// Done, if set, is called when block b is complete (after its Pairs or
	// Rows call, its scores in every heap), from the worker goroutines.
	Done func(b int)
	// Resume, with K's heaps, starts from a saved state (a Checkpoint of
	// an interrupted join over the same matrices and options): the heaps
	// begin with its hits and its done blocks are not scored again. Blocks
	// that were in flight when it was taken are scored again; a partner
	// already in a heap is not added twice, so the answer is the one an
	// uninterrupted join gives.
	Resume *JoinState
	// Checkpoint, with K's heaps, receives the join's state from one
	// goroutine: after a block completes once CheckpointEvery has passed
	// since the previous call returned, and at the end (finished or
	// cancelled) if a block completed since. An error stops the join. The
	// state is only valid during the call.
	Checkpoint func(*JoinState) error
	// CheckpointEvery is the least time between checkpoints; 0 waits 20
	// times as long as the previous checkpoint took, so that checkpoints
	// take at most about 5% of the join.
	CheckpointEvery time.Duration
	// NoHits, with Checkpoint, returns no hits: the caller reads the
	// final checkpoint instead, and no copy of every row's hits is made.
	NoHits bool
	// BlockRows is the rows of the first matrix one worker takes at a
	// time, rounded up to a multiple of 4; 0 picks about 512 KiB of rows.
	BlockRows int
	// Workers is the number of goroutines; 0 means runtime.GOMAXPROCS(0).
	Workers int
}

// Blocks is the number of blocks of n rows under o (the b of Pairs).
func (o JoinOptions) Blocks(n, dim int) int {
	br := o.blockRows(dim)
	return (n + br - 1) / br
}

// JoinState is a join's progress with K's heaps, as Checkpoint gives it
// and Resume takes it: the blocks done and every row's best partners so
// far, streamed a row at a time, so that saving or loading it needs no
// second copy of the heaps.
type JoinState struct {
	// Done says which blocks are complete (len: Blocks).
	Done []bool
	// Rows calls fn with each row's hits so far (at most K, in no
	// particular order), rows ascending (a row without hits may be left
	// out), until fn returns an error, which Rows returns; hits are only
	// valid during the call.
	Rows func(fn func(row int, hits []Hit) error) error
}

// StateOf is a JoinState over hits held in memory (hits[r] for row r).
func StateOf(done []bool, hits [][]Hit) *JoinState {
	return &JoinState{Done: done, Rows: func(fn func(int, []Hit) error) error {
		for r, hs := range hits {
			if err := fn(r, hs); err != nil {
				return err
			}
		}
		return nil
	}}
}

// MergeHits is the k best of dst and src (one row's best from two sets of
// blocks: shards' shares of a join), best first, equal scores by ascending
// row, a partner in both once. The result shares no memory with src.
func MergeHits(dst, src []Hit, k int) []Hit {
	t := topK{h: make([]cand, 0, k)}
	t.reset(k)
	for _, hs := range [2][]Hit{dst, src} {
		for _, h := range hs {
			if h.Score >= t.thr && !t.has(h.Row) {
				t.push(cand{h.Score, int32(h.Row)})
			}
		}
	}
	return sortedHits(t.h)
}

// RowsPerBlock is the rows of the first matrix in each block (the last
// may have fewer) for rows of dim dimensions.
func (o JoinOptions) RowsPerBlock(dim int) int { return o.blockRows(dim) }

func (o JoinOptions) blockRows(dim int) int {
	if o.BlockRows > 0 {
		return roundUp4(o.BlockRows)
	}
	return max(4, (512<<10)/(4*dim)&^3)
}

// SelfJoin scores every pair of m's rows once (S = MᵀM is symmetric, so
// each tile of the upper triangle is computed once and serves both rows):
// with o.K, each row's K best other rows, best first, equal scores by
// ascending row; with o.Pairs, every pair a < b scoring at least
// o.Threshold. Memory beyond m is the K-heaps of all rows and a block's
// pairs; the scan is exact. If ctx is cancelled SelfJoin stops between
// tiles and returns ctx.Err().
//
// On 2 cores of an AMD EPYC with AVX-512, 100k×384 random unit rows, top
// 10: 12.1–13.6 s, against 27.4–28.1 s for the same answer through Search
// (every row a query, k=11), 2.06–2.27× the throughput, and 72.7 s for
// FAISS 1.7.3 IndexFlatIP on 2 threads (scripts/bench_pairs_vs_faiss.sh).
func SelfJoin(ctx context.Context, m Matrix, o JoinOptions) ([][]Hit, error) {
	return join(ctx, m, m, true, o)
}

// Join scores every row of a against every row of b: with o.K, each row
// of a's K best rows of b; with o.Pairs, every pair scoring at least
// o.Threshold. Otherwise as SelfJoin.
func Join(ctx context.Context, a, b Matrix, o JoinOptions) ([][]Hit, error) {
	return join(ctx, a, b, false, o)
}

// joiner is one join's shared state.
type joiner struct {
	a, b    Matrix
	self    bool
	o       JoinOptions
	dim     int
	na, nb  int
	br, rb  int // rows per block of a; rows per slab of b (stays in L1)
	next    atomic.Int64
	heaps   []topK       // per row of a: its K best, fed by every worker
	locks   []sync.Mutex // heaps[r] is guarded by locks[r/lockRows]
	errOnce sync.Once
	err     error
	failed  atomic.Bool
	done    <-chan struct{}
	dot4    dot4Func
	// dedup (a resumed join): a partner already in a heap is not pushed
	// again (blocks in flight at the checkpoint are scored twice).
	dedup bool
	// blocksMu guards blocksDone; blockDone wakes the checkpointer.
	blocksMu   sync.Mutex
	blocksDone []bool
	blockDone  chan struct{}
}

const lockRows = 64

func join(ctx context.Context, a, b Matrix, self bool, o JoinOptions) ([][]Hit, error) {
	switch {
	case a.Dim < 1 || a.Dim != b.Dim:
		return nil, fmt.Errorf("embedd/index/flat: join of dimensions %d and %d", a.Dim, b.Dim)
	case len(a.Data)%a.Dim != 0 || len(b.Data)%b.Dim != 0:
		return nil, fmt.Errorf("embedd/index/flat: join: a matrix's length is not a multiple of dimension %d", a.Dim)
	case len(a.Data)/a.Dim > maxRows || len(b.Data)/b.Dim > maxRows:
		return nil, fmt.Errorf("embedd/index/flat: join: a matrix has more than %d rows", maxRows)
	case o.Metric != Cosine && o.Metric != Dot:
		return nil, fmt.Errorf("embedd/index/flat: join: metric %v, want cosine or dot", o.Metric)
	case o.K < 0 || o.K == 0 && o.Pairs == nil:
		return nil, fmt.Errorf("embedd/index/flat: join: K is %d and no Pairs: nothing to do", o.K)
	case o.Rows != nil && (self || o.K == 0):
		return nil, fmt.Errorf("embedd/index/flat: join: Rows needs K and a join of two matrices")
	case (o.Resume != nil || o.Checkpoint != nil) && (o.K == 0 || o.Rows != nil):
		return nil, fmt.Errorf("embedd/index/flat: join: Resume and Checkpoint need K's heaps (a SelfJoin with K)")
	case o.NoHits && o.Checkpoint == nil:
		return nil, fmt.Errorf("embedd/index/flat: join: NoHits needs a Checkpoint (the hits would be lost)")
	case o.Workers < 0:
		return nil, fmt.Errorf("embedd/index/flat: %d workers", o.Workers)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dim := a.Dim
	j := &joiner{a: a, b: b, self: self, o: o, dim: dim, na: len(a.Data) / dim, nb: len(b.Data) / dim,
		br: o.blockRows(dim), rb: max(4, rowBlockBytes/(4*dim)&^3), done: ctx.Done(), dot4: active.dot4}
	nblocks := (j.na + j.br - 1) / j.br
	j.blocksDone = make([]bool, nblocks)
	if o.K > 0 && o.Rows == nil {
		j.heaps = make([]topK, j.na)
		cands := make([]cand, j.na*o.K) // one allocation for every heap
		for i := range j.heaps {
			j.heaps[i].h = cands[i*o.K : i*o.K : (i+1)*o.K]
			j.heaps[i].reset(o.K)
		}
		j.locks = make([]sync.Mutex, (j.na+lockRows-1)/lockRows)
		if o.Resume != nil {
			if err := j.resume(o.Resume); err != nil {
				return nil, err
			}
		}
	}
	workers := o.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, nblocks))
	var ckpt sync.WaitGroup
	finish := make(chan struct{})
	if o.Checkpoint != nil {
		j.blockDone = make(chan struct{}, 1)
		ckpt.Go(func() { j.checkpoints(finish) })
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(j.run)
	}
	wg.Wait()
	close(finish)
	ckpt.Wait()
	if j.err != nil {
		return nil, j.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if j.heaps == nil || o.NoHits {
		return nil, nil
	}
	res := make([][]Hit, j.na)
	for i := range j.heaps {
		res[i] = sortedHits(j.heaps[i].h)
		j.heaps[i].h = nil // the heaps go as the hits come
	}
	return res, nil
}

// sortedHits are a heap's candidates as hits, best first.
func sortedHits(c []cand) []Hit {
	slices.SortFunc(c, func(x, y cand) int {
		if x.better(y) {
			return -1
		}
		if y.better(x) {
			return 1
		}
		return 0
	})
	hits := make([]Hit, len(c))
	for t, x := range c {
		hits[t] = Hit{Row: int(x.r), Score: x.s}
	}
	return hits
}

func (j *joiner) fail(err error) {
	j.errOnce.Do(func() { j.err = err })
	j.failed.Store(true)
}

// blockState is one worker's buffers for one block of a.
type blockState struct {
	q      []float32 // the block's rows, padded to a multiple of 4
	scores []float32 // nq×rb scores of the block against one slab
	pad    []float32 // room for a slab's last rows, padded to 4
	local  []topK    // the block's rows' K best (the row direction)
	cthr   []float32 // a slab's rows' heap thresholds (offerBoth)
	pairs  []Pair
	trunc  bool
}

// run takes blocks until none is left, the join fails or ctx ends.
func (j *joiner) run() {
	nblocks := (j.na + j.br - 1) / j.br
	st := &blockState{
		q:      make([]float32, j.br*j.dim),
		scores: make([]float32, j.br*j.rb),
		pad:    make([]float32, 4*j.dim),
		cthr:   make([]float32, j.rb),
	}
	if j.o.K > 0 {
		st.local = make([]topK, j.br)
		for i := range st.local {
			st.local[i].h = make([]cand, 0, j.o.K)
		}
	}
	for {
		blk := int(j.next.Add(1)) - 1
		if blk >= nblocks || j.failed.Load() {
			return
		}
		if ctxDone(j.done) {
			return
		}
		if j.blocksDone[blk] || j.o.SkipBlock != nil && j.o.SkipBlock(blk) {
			continue // blocksDone[blk] set before the workers started: a resumed block
		}
		if err := j.block(st, blk); err != nil {
			j.fail(err)
			return
		}
		if ctxDone(j.done) {
			return // the block stopped part way
		}
		j.blocksMu.Lock()
		j.blocksDone[blk] = true
		j.blocksMu.Unlock()
		if j.o.Done != nil {
			j.o.Done(blk)
		}
		if j.blockDone != nil {
			select {
			case j.blockDone <- struct{}{}:
			default:
			}
		}
	}
}

// ctxDone reports whether done (a context's Done channel, nil for none) is
// closed.
func ctxDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// resume starts the heaps from st (after checking that it fits the join)
// and marks its done blocks.
func (j *joiner) resume(st *JoinState) error {
	if len(st.Done) != len(j.blocksDone) {
		return fmt.Errorf("embedd/index/flat: join: resumed state has %d blocks, the join %d", len(st.Done), len(j.blocksDone))
	}
	copy(j.blocksDone, st.Done)
	j.dedup = true
	next := 0
	return st.Rows(func(r int, hs []Hit) error {
		if r < next || r >= j.na {
			return fmt.Errorf("embedd/index/flat: join: resumed state has row %d after row %d (the join has %d rows)", r, next-1, j.na)
		}
		next = r + 1
		if len(hs) > j.o.K {
			return fmt.Errorf("embedd/index/flat: join: resumed row %d has %d hits, K is %d", r, len(hs), j.o.K)
		}
		h := &j.heaps[r]
		for _, x := range hs {
			if x.Row < 0 || x.Row >= j.nb || j.self && x.Row == r || h.has(x.Row) {
				return fmt.Errorf("embedd/index/flat: join: resumed row %d has partner %d (of %d rows), or has it twice", r, x.Row, j.nb)
			}
			h.push(cand{x.Score, int32(x.Row)})
		}
		return nil
	})
}

// checkpoints calls o.Checkpoint as its doc says until finish is closed.
func (j *joiner) checkpoints(finish <-chan struct{}) {
	var last time.Time
	var took time.Duration
	pending := false
	var timer <-chan time.Time
	save := func() bool {
		start := time.Now()
		if err := j.o.Checkpoint(j.snapshot()); err != nil {
			j.fail(fmt.Errorf("embedd/index/flat: join checkpoint: %w", err))
			return false
		}
		last, took, pending, timer = time.Now(), time.Since(start), false, nil
		return true
	}
	for {
		select {
		case <-j.blockDone:
			pending = true
		case <-timer:
			timer = nil
		case <-finish:
			select {
			case <-j.blockDone:
				pending = true
			default:
			}
			if pending && !j.failed.Load() {
				save()
			}
			return
		}
		if !pending || timer != nil {
			continue
		}
		wait := j.o.CheckpointEvery
		if wait == 0 {
			wait = 20 * took
		}
		if left := wait - time.Since(last); left > 0 {
			timer = time.After(left)
			continue
		}
		if !save() {
			return
		}
	}
}

// snapshot is the join's state now: the done blocks copied first, then
// each lock's rows of heaps copied under the lock as Rows streams them. A
// block done before the copy of Done has all its scores in the heaps;
// blocks in flight may have some.
func (j *joiner) snapshot() *JoinState {
	j.blocksMu.Lock()
	done := slices.Clone(j.blocksDone)
	j.blocksMu.Unlock()
	return &JoinState{Done: done, Rows: func(fn func(int, []Hit) error) error {
		buf := make([]Hit, 0, lockRows*j.o.K)
		var ends [lockRows + 1]int
		for l := range j.locks {
			r0, r1 := l*lockRows, min((l+1)*lockRows, j.na)
			buf = buf[:0]
			j.locks[l].Lock()
			for r := r0; r < r1; r++ {
				for _, c := range j.heaps[r].h {
					buf = append(buf, Hit{Row: int(c.r), Score: c.s})
				}
				ends[r-r0+1] = len(buf)
			}
			j.locks[l].Unlock()
			for r := r0; r < r1; r++ {
				if err := fn(r, buf[ends[r-r0]:ends[r-r0+1]]); err != nil {
					return err
				}
			}
		}
		return nil
	}}
}

// block scores rows [a0, a1) of a against the rows of b they pair with:
// every row of b, or for a self-join the rows from a0 on (the tiles below
// the diagonal are the transposes of tiles above it).
func (j *joiner) block(st *blockState, blk int) error {
	dim, rb := j.dim, j.rb
	a0 := blk * j.br
	a1 := min(a0+j.br, j.na)
	nq := a1 - a0
	nqp := roundUp4(nq)
	clear(st.q[nq*dim : nqp*dim])
	copy(st.q, j.a.Data[a0*dim:a1*dim])
	for i := range st.local[:min(len(st.local), nq)] {
		st.local[i].reset(j.o.K)
	}
	st.pairs, st.trunc = st.pairs[:0], false
	b0 := 0
	if j.self {
		b0 = a0
	}
	for s0 := b0; s0 < j.nb; s0 += rb {
		if s0 != b0 && (s0-b0)%(64*rb) == 0 && ctxDone(j.done) {
			return nil
		}
		s1 := min(s0+rb, j.nb)
		n := s1 - s0
		full := n &^ 3
		rows := j.b.Data[s0*dim : s1*dim]
		for t := 0; t < nqp; t += 4 {
			q := st.q[t*dim : (t+4)*dim]
			out := st.scores[t*rb:]
			if full > 0 {
				var next *float32
				if t == 0 && s1 < j.nb {
					next = &j.b.Data[s1*dim]
				}
				j.dot4(q, rows, full, dim, out, rb, next)
			}
			if full < n {
				copy(st.pad, rows[full*dim:])
				clear(st.pad[(n-full)*dim:])
				j.dot4(q, st.pad, 4, dim, out[full:], rb, nil)
			}
		}
		j.offer(st, a0, nq, s0, n)
	}
	switch {
	case j.o.Rows != nil:
		hits := make([][]Hit, nq)
		for i := range hits {
			hits[i] = sortedHits(st.local[i].h)
		}
		if err := j.o.Rows(blk, a0, hits); err != nil {
			return err
		}
	case j.o.K > 0:
		j.mergeLocal(st, a0, nq)
	}
	if j.o.Pairs != nil {
		slices.SortFunc(st.pairs, func(x, y Pair) int {
			if x.A != y.A {
				return x.A - y.A
			}
			return x.B - y.B
		})
		return j.o.Pairs(blk, st.pairs, st.trunc)
	}
	return nil
}

// offer hands the scores of rows [a0, a0+nq) of a against rows [s0, s0+n)
// of b to the heaps and the threshold pairs. In a self-join only pairs
// with b's row above a's count; the other half of each tile goes to b's
// rows' heaps instead (the column direction).
func (j *joiner) offer(st *blockState, a0, nq, s0, n int) {
	rb := j.rb
	// The slab is entirely above the block's rows unless it overlaps them.
	diag := j.self && s0 < a0+nq
	switch {
	case j.o.K > 0 && j.self:
		j.offerBoth(st, a0, nq, s0, n, diag)
	case j.o.K > 0:
		for i := range nq {
			st.local[i].offer(st.scores[i*rb:i*rb+n], s0, nil)
		}
	}
	if j.o.Pairs != nil {
		thr := j.o.Threshold
		for i := range nq {
			for c, s := range st.scores[i*rb : i*rb+n] {
				if s < thr || diag && s0+c <= a0+i {
					continue
				}
				if len(st.pairs) >= j.o.MaxBlockPairs && j.o.MaxBlockPairs > 0 {
					st.trunc = true
					return
				}
				st.pairs = append(st.pairs, Pair{A: a0 + i, B: s0 + c, Score: s})
			}
		}
	}
}

// offerBoth offers each score of a self-join tile in both directions in
// one pass: to the block row's heap (the row of b as its partner) and to
// the heap of b's row (the block row as its partner), under the locks of
// b's rows.
func (j *joiner) offerBoth(st *blockState, a0, nq, s0, n int, diag bool) {
	rb := j.rb
	l0, l1 := s0/lockRows, (s0+n-1)/lockRows
	for l := l0; l <= l1; l++ {
		j.locks[l].Lock()
	}
	cols := j.heaps[s0 : s0+n]
	cthr := st.cthr[:n]
	cmin := cols[0].thr
	for c := range cols {
		cthr[c] = cols[c].thr
		cmin = min(cmin, cthr[c])
	}
	for i := range nq {
		rh := &st.local[i]
		rthr := rh.thr
		row := st.scores[i*rb : i*rb+n]
		first := 0
		if diag {
			first = max(0, a0+i+1-s0) // only b's rows above a0+i
		}
		// Most scores beat neither threshold: one comparison with the
		// lower of the two drops them (thresholds only rise, so bounds
		// taken before the row stay valid).
		lo := min(rthr, cmin)
		for c := first; c < len(row); c++ {
			s := row[c]
			if s < lo {
				continue
			}
			if s >= rthr {
				rh.push(cand{s, int32(s0 + c)})
				rthr = rh.thr
			}
			if s >= cthr[c] && (!j.dedup || !cols[c].has(a0+i)) {
				cols[c].push(cand{s, int32(a0 + i)})
				cthr[c] = cols[c].thr
			}
		}
	}
	for l := l0; l <= l1; l++ {
		j.locks[l].Unlock()
	}
}

// mergeLocal adds the block's row-direction heaps to the shared ones.
func (j *joiner) mergeLocal(st *blockState, a0, nq int) {
	for i := 0; i < nq; {
		r := a0 + i
		end := min(nq, (r/lockRows+1)*lockRows-a0)
		mu := &j.locks[r/lockRows]
		mu.Lock()
		for ; i < end; i++ {
			h := &j.heaps[a0+i]
			for _, c := range st.local[i].h {
				if c.s >= h.thr && (!j.dedup || !h.has(int(c.r))) {
					h.push(c)
				}
			}
		}
		mu.Unlock()
	}
}
