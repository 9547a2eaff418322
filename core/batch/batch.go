// Package batch merges the texts of concurrent requests into model batches.
//
// Every text of a request becomes an item in one bounded queue per model. A
// former goroutine waits for a free worker, then for the batch to fill (the
// token budget or the size cap reached) or for the oldest item to have waited
// MaxWait, and picks the batch around the oldest item in length order, so
// that rows of similar length share a batch (length buckets: no row is
// padded to more than twice its length) and no item starves. Workers run the
// model, write each item's vector into its request's result, and the request
// returns once all of its items are done: big requests are split across
// batches and reassembled in order. Items of a cancelled or expired request
// are dropped before inference if they have not started. A full queue
// refuses a request at once with ErrQueueFull.
//
// SubmitTimed is Submit that also tells the request when each batch that ran
// its texts started and ended, for tracing after the fact: a batch serves
// many requests, so no request's span can be open around it. Submit pays
// nothing for this.
//
// Two lanes share the workers. A request whose context carries WithBulk
// (bulk work: a batch job) queues in the bulk lane, bounded by its own
// QueueSize, so bulk work never fills the interactive queue and never makes
// an interactive request fail with ErrQueueFull. The former starts a bulk
// batch only when no interactive text waits, never mixes the lanes in one
// batch, and cuts bulk batches at BulkMaxBatchSize rows: an interactive
// text that arrives while bulk batches run waits for at most one bulk batch
// per worker, and bulk work gets every cycle interactive work leaves (a
// bulk batch starts once the interactive lane has been quiet for MaxWait,
// so that clients who just got their answer can send again first).
package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Forwarder runs one batch and writes each sequence's vector into dst[i];
// *models.Model implements it.
type Forwarder interface {
	Forward(seqs [][]int32, dst [][]float32) error
}

// Errors Submit returns besides the context's and the Forwarder's.
var (
	// ErrQueueFull means the queue cannot take the request now; retry later.
	ErrQueueFull = errors.New("embedd/batch: queue full")
	// ErrClosed means the batcher is shutting down.
	ErrClosed = errors.New("embedd/batch: closed")
)

// Config sizes a Batcher. Every field but Observe is required (the
// defaults are package core's, in one table); a row longer than
// MaxBatchTokens still runs, alone.
type Config struct {
	// Dim is the width of the Forwarder's vectors.
	Dim int
	// MaxBatchTokens bounds a batch's rows × longest row.
	MaxBatchTokens int
	// MaxBatchSize bounds a batch's rows.
	MaxBatchSize int
	// MaxWait is how long the oldest item may wait for its batch to fill
	// while a worker is free; 0 runs whatever is queued at once.
	MaxWait time.Duration
	// QueueSize bounds the texts waiting.
	QueueSize int
	// Workers is how many batches run at once.
	Workers int
	// BulkMaxBatchSize bounds the rows of a bulk-lane batch (see WithBulk),
	// and so the time an interactive text can wait behind one; 0 means
	// MaxBatchSize. It is capped at MaxBatchSize.
	BulkMaxBatchSize int
	// Observe, when set, is called after every batch (from a worker),
	// before the batch's requests complete.
	Observe func(Stats)
}

// Stats describes one batch that ran.
type Stats struct {
	Rows         int           // texts in the batch
	Tokens       int           // real tokens
	PaddedTokens int           // rows × longest row
	QueueWait    time.Duration // longest time an item of the batch waited
	Run          time.Duration // inference time
	QueueDepth   int           // texts still waiting when the batch started, in both lanes
	Bulk         bool          // whether it was a bulk-lane batch
	Err          error         // the Forwarder's error, if any
}

// Timing says when a request's texts waited and ran; SubmitTimed fills it.
type Timing struct {
	// Submitted is when the texts were queued.
	Submitted time.Time
	// Batches are the batches that ran the request's texts, in the order
	// they finished (with several workers, not always the order they
	// started). A batch's queue wait for this request is Start −
	// Submitted.
	Batches []BatchTiming
}

// BatchTiming is one batch as one request saw it.
type BatchTiming struct {
	ID           uint64    // the batch's number in this Batcher, from 1: requests that shared a batch see the same
	Start        time.Time // when a worker began the batch (the Forward call)
	End          time.Time // when the Forward call returned
	Texts        int       // the request's texts in the batch
	Rows         int       // texts in the batch, of every request
	Tokens       int       // real tokens in the batch
	PaddedTokens int       // rows × longest row
	Err          error     // the Forwarder's error, if any
}

// check names the first field out of range.
func (c Config) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"Dim", c.Dim}, {"MaxBatchTokens", c.MaxBatchTokens}, {"MaxBatchSize", c.MaxBatchSize}, {"QueueSize", c.QueueSize}, {"Workers", c.Workers}} {
		if f.v <= 0 {
			return fmt.Errorf("embedd/batch: %s %d must be positive", f.name, f.v)
		}
	}
	if c.MaxWait < 0 {
		return fmt.Errorf("embedd/batch: MaxWait %v is negative", c.MaxWait)
	}
	if c.BulkMaxBatchSize < 0 {
		return fmt.Errorf("embedd/batch: BulkMaxBatchSize %d is negative", c.BulkMaxBatchSize)
	}
	return nil
}

// bulkKey marks a context as bulk work; see WithBulk.
type bulkKey struct{}

// WithBulk returns ctx marked as bulk work: Submit and SubmitTimed queue
// its texts in the bulk lane, behind every interactive text.
func WithBulk(ctx context.Context) context.Context {
	return context.WithValue(ctx, bulkKey{}, true)
}

// IsBulk reports whether ctx was marked by WithBulk.
func IsBulk(ctx context.Context) bool {
	v, _ := ctx.Value(bulkKey{}).(bool)
	return v
}

// request is one Submit call waiting for its items.
type request struct {
	ctx       context.Context
	out       [][]float32
	remaining int           // items not yet done; guarded by Batcher.mu
	err       error         // first failure; guarded by Batcher.mu
	done      chan struct{} // closed when remaining reaches 0
	// timing is nil unless SubmitTimed made the request; its Batches are
	// guarded by Batcher.mu until done is closed, then read-only.
	timing *Timing
}

// item is one text of a request.
type item struct {
	req  *request
	idx  int
	seq  []int32
	seqn uint64 // arrival order
	at   time.Time
}

// Batcher batches texts for one model. Create it with New; Close it to stop.
type Batcher struct {
	f   Forwarder
	cfg Config

	dropped atomic.Uint64 // items of ended requests dropped before inference

	mu      sync.Mutex // guards pending, bulk, lastInteractive, nextSeq, closed, and request fields
	pending []*item    // interactive texts, in arrival order
	bulk    []*item    // bulk-lane texts, in arrival order
	// lastInteractive is when an interactive text last arrived or an
	// interactive batch last finished.
	lastInteractive time.Time
	nextSeq         uint64
	closed          bool
	wake            chan struct{} // signalled (non-blocking) on arrival and on close

	slots chan struct{} // one token per free worker
	work  chan job
	wg    sync.WaitGroup // the former and the workers
}

// job is a batch handed from the former to a worker.
type job struct {
	items []*item
	depth int
	bulk  bool
	id    uint64 // from 1, in the order the former formed the batches
}

// ran is what finish passes on to timed requests about a batch that ran.
type ran struct {
	id                   uint64
	start, end           time.Time
	tokens, paddedTokens int
	err                  error
}

// New starts a Batcher over f. The caller owns it and must Close it; f must
// stay usable until Close returns.
func New(f Forwarder, cfg Config) (*Batcher, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.BulkMaxBatchSize == 0 || cfg.BulkMaxBatchSize > cfg.MaxBatchSize {
		cfg.BulkMaxBatchSize = cfg.MaxBatchSize
	}
	b := &Batcher{
		f: f, cfg: cfg,
		wake:  make(chan struct{}, 1),
		slots: make(chan struct{}, cfg.Workers),
		work:  make(chan job),
	}
	for range cfg.Workers {
		b.slots <- struct{}{}
		b.wg.Go(b.worker)
	}
	b.wg.Go(b.former)
	return b, nil
}

// Submit queues seqs (each at most the model's maximum length, checked by
// the Forwarder) and waits for their vectors, returned in order; in the
// bulk lane when ctx carries WithBulk. It returns ErrQueueFull at once when
// the request's lane cannot take all of them, ErrClosed
// after Close began, and ctx's error when ctx ends first (items not yet
// started are then dropped).
func (b *Batcher) Submit(ctx context.Context, seqs [][]int32) ([][]float32, error) {
	return b.submit(ctx, seqs, nil)
}

// SubmitTimed is Submit that also reports when the texts were queued and
// when the batches that ran them started and ended. The Timing is complete
// when the vectors are returned or the Forwarder failed; after the other
// errors (the queue full, the batcher closed, ctx ended) it holds only
// Submitted, or nothing.
func (b *Batcher) SubmitTimed(ctx context.Context, seqs [][]int32) ([][]float32, Timing, error) {
	var tm Timing
	vecs, err := b.submit(ctx, seqs, &tm)
	return vecs, tm, err
}

// submit is Submit; a non-nil tm asks for the request's timing, which is
// filled in when the request completes.
func (b *Batcher) submit(ctx context.Context, seqs [][]int32, tm *Timing) ([][]float32, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{ctx: ctx, out: make([][]float32, len(seqs)), remaining: len(seqs), done: make(chan struct{})}
	flat := make([]float32, len(seqs)*b.cfg.Dim)
	for i := range r.out {
		r.out[i] = flat[i*b.cfg.Dim : (i+1)*b.cfg.Dim : (i+1)*b.cfg.Dim]
	}
	now := time.Now()
	if tm != nil {
		r.timing = &Timing{Submitted: now}
		tm.Submitted = now
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	lane, name := &b.pending, ""
	if IsBulk(ctx) {
		lane, name = &b.bulk, "bulk "
	} else {
		b.lastInteractive = now
	}
	if len(*lane)+len(seqs) > b.cfg.QueueSize {
		n := len(*lane)
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d %stexts waiting, %d more do not fit in %d", ErrQueueFull, n, name, len(seqs), b.cfg.QueueSize)
	}
	for i, s := range seqs {
		*lane = append(*lane, &item{req: r, idx: i, seq: s, seqn: b.nextSeq, at: now})
		b.nextSeq++
	}
	b.mu.Unlock()
	b.signal()
	select {
	case <-r.done:
		b.mu.Lock()
		err := r.err
		b.mu.Unlock()
		if tm != nil {
			*tm = *r.timing // complete: no worker writes after done is closed
		}
		if err != nil {
			return nil, err
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// QueueDepth is the number of interactive texts waiting for a batch.
func (b *Batcher) QueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// BulkQueueDepth is the number of bulk-lane texts waiting for a batch.
func (b *Batcher) BulkQueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.bulk)
}

func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// former picks batches and hands them to free workers until Close drains
// the queue.
func (b *Batcher) former() {
	defer close(b.work)
	var id uint64
	for {
		<-b.slots // a worker is free
		batch, depth, bulk, ok := b.next()
		if !ok {
			return
		}
		id++
		b.work <- job{items: batch, depth: depth, bulk: bulk, id: id}
	}
}

// next waits for a batch worth running and takes it from the queue:
// interactive texts first, bulk ones only when no interactive text waits;
// ok is false when the batcher is closed and drained.
func (b *Batcher) next() (batch []*item, depth int, bulk, ok bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		b.pending = b.dropCancelledLocked(b.pending)
		b.bulk = b.dropCancelledLocked(b.bulk)
		var wait time.Duration
		switch {
		case len(b.pending) == 0 && len(b.bulk) > 0:
			// Interactive clients that just got their answer send again
			// within microseconds: a bulk batch waits until the
			// interactive lane has been quiet for MaxWait.
			if wait = b.cfg.MaxWait - time.Since(b.lastInteractive); b.closed || wait <= 0 {
				batch = takeLocked(&b.bulk, b.cfg.BulkMaxBatchSize, b.cfg.MaxBatchTokens)
				depth = len(b.bulk)
				b.mu.Unlock()
				return batch, depth, true, true
			}
		case len(b.pending) == 0:
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil, 0, false, false
			}
			<-b.wake
			continue
		default:
			if wait = b.cfg.MaxWait - time.Since(b.pending[0].at); b.closed || wait <= 0 || b.fullLocked() {
				batch = takeLocked(&b.pending, b.cfg.MaxBatchSize, b.cfg.MaxBatchTokens)
				depth = len(b.pending) + len(b.bulk)
				b.mu.Unlock()
				return batch, depth, false, true
			}
		}
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-b.wake:
		case <-timer.C:
		}
	}
}

// dropCancelledLocked removes the items of requests whose context ended
// from a lane and returns what is left of it.
func (b *Batcher) dropCancelledLocked(lane []*item) []*item {
	keep := lane[:0]
	for _, it := range lane {
		if it.req.ctx.Err() == nil {
			keep = append(keep, it)
		}
	}
	b.dropped.Add(uint64(len(lane) - len(keep)))
	clear(lane[len(keep):])
	return keep
}

// Dropped counts the texts of cancelled or expired requests that were
// removed from the queue before inference.
func (b *Batcher) Dropped() uint64 { return b.dropped.Load() }

// fullLocked reports whether the interactive lane holds at least a full
// batch.
func (b *Batcher) fullLocked() bool {
	if len(b.pending) >= b.cfg.MaxBatchSize {
		return true
	}
	tokens := 0
	for _, it := range b.pending {
		tokens += len(it.seq)
	}
	return tokens >= b.cfg.MaxBatchTokens
}

// takeLocked removes from a lane and returns the batch around its oldest
// item: in length order it grows first towards shorter rows, then longer
// ones, within maxTokens and maxRows, and keeps every row at least half as
// long as the longest.
func takeLocked(lane *[]*item, maxRows, maxTokens int) []*item {
	sorted := slices.Clone(*lane)
	slices.SortFunc(sorted, func(x, y *item) int {
		return cmp.Or(cmp.Compare(len(x.seq), len(y.seq)), cmp.Compare(x.seqn, y.seqn))
	})
	oldest := (*lane)[0]
	p, _ := slices.BinarySearchFunc(sorted, oldest, func(x, t *item) int {
		return cmp.Or(cmp.Compare(len(x.seq), len(t.seq)), cmp.Compare(x.seqn, t.seqn))
	})
	lo, hi := p, p+1
	longest := len(oldest.seq)
	fits := func(rows, longest int) bool {
		return rows <= maxRows && rows*longest <= maxTokens
	}
	for lo > 0 && fits(hi-lo+1, longest) && 2*len(sorted[lo-1].seq) >= longest {
		lo--
	}
	for hi < len(sorted) && fits(hi-lo+1, len(sorted[hi].seq)) && 2*len(sorted[lo].seq) >= len(sorted[hi].seq) {
		hi++
	}
	batch := sorted[lo:hi:hi]
	taken := make(map[*item]bool, len(batch))
	for _, it := range batch {
		taken[it] = true
	}
	keep := (*lane)[:0]
	for _, it := range *lane {
		if !taken[it] {
			keep = append(keep, it)
		}
	}
	clear((*lane)[len(keep):])
	*lane = keep
	return batch
}

// worker runs batches until the former closes the work channel.
func (b *Batcher) worker() {
	var seqs [][]int32
	var dst [][]float32
	for j := range b.work {
		batch := j.items
		seqs, dst = seqs[:0], dst[:0]
		st := Stats{Rows: len(batch), QueueDepth: j.depth, Bulk: j.bulk}
		longest := 0
		now := time.Now()
		for _, it := range batch {
			seqs = append(seqs, it.seq)
			dst = append(dst, it.req.out[it.idx])
			st.Tokens += len(it.seq)
			longest = max(longest, len(it.seq))
			st.QueueWait = max(st.QueueWait, now.Sub(it.at))
		}
		st.PaddedTokens = longest * len(batch)
		err := b.f.Forward(seqs, dst)
		end := time.Now()
		st.Run, st.Err = end.Sub(now), err
		// Observe before the requests complete, so that whoever saw a
		// request answered also sees its batch in the statistics.
		if b.cfg.Observe != nil {
			b.cfg.Observe(st)
		}
		b.finish(batch, j.bulk, ran{id: j.id, start: now, end: end, tokens: st.Tokens, paddedTokens: st.PaddedTokens, err: err})
		b.slots <- struct{}{}
	}
}

// finish counts the batch's items done, tells timed requests about the
// batch, and wakes requests that completed.
func (b *Batcher) finish(batch []*item, bulk bool, rn ran) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !bulk {
		b.lastInteractive = rn.end
	}
	for _, it := range batch {
		r := it.req
		if rn.err != nil && r.err == nil {
			r.err = rn.err
		}
		if r.timing != nil {
			r.timing.add(len(batch), rn)
		}
		r.remaining--
		if r.remaining == 0 {
			close(r.done)
		}
	}
}

// Close stops taking requests, runs what is queued, and waits for the
// workers. Requests submitted after Close began get ErrClosed. It is
// idempotent.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
	b.wg.Wait()
}

// add counts one of the request's texts in a batch of rows that ran as rn:
// the first text opens the batch's record, the others (handled in the same
// finish call, so the record is still the last) count into it.
func (t *Timing) add(rows int, rn ran) {
	if n := len(t.Batches); n > 0 && t.Batches[n-1].ID == rn.id {
		t.Batches[n-1].Texts++
		return
	}
	t.Batches = append(t.Batches, BatchTiming{
		ID: rn.id, Start: rn.start, End: rn.end, Texts: 1, Rows: rows,
		Tokens: rn.tokens, PaddedTokens: rn.paddedTokens, Err: rn.err,
	})
}
