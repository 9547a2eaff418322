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

// Config sizes a Batcher. Zero fields take the defaults documented on them.
type Config struct {
	// Dim is the width of the Forwarder's vectors. Required.
	Dim int
	// MaxBatchTokens bounds a batch's rows × longest row; default 8192.
	MaxBatchTokens int
	// MaxBatchSize bounds a batch's rows; default 64.
	MaxBatchSize int
	// MaxWait is how long the oldest item may wait for its batch to fill
	// while a worker is free; default 2ms.
	MaxWait time.Duration
	// QueueSize bounds the texts waiting; default 4096.
	QueueSize int
	// Workers is how many batches run at once; default 1.
	Workers int
	// Observe, when set, is called after every batch (from a worker).
	Observe func(Stats)
}

// Stats describes one batch that ran.
type Stats struct {
	Rows         int           // texts in the batch
	Tokens       int           // real tokens
	PaddedTokens int           // rows × longest row
	QueueWait    time.Duration // longest time an item of the batch waited
	Run          time.Duration // inference time
	QueueDepth   int           // texts still waiting when the batch started
	Err          error         // the Forwarder's error, if any
}

func (c Config) withDefaults() Config {
	c.MaxBatchTokens = cmp.Or(c.MaxBatchTokens, 8192)
	c.MaxBatchSize = cmp.Or(c.MaxBatchSize, 64)
	c.MaxWait = cmp.Or(c.MaxWait, 2*time.Millisecond)
	c.QueueSize = cmp.Or(c.QueueSize, 4096)
	c.Workers = cmp.Or(c.Workers, 1)
	return c
}

// request is one Submit call waiting for its items.
type request struct {
	ctx       context.Context
	out       [][]float32
	remaining int           // items not yet done; guarded by Batcher.mu
	err       error         // first failure; guarded by Batcher.mu
	done      chan struct{} // closed when remaining reaches 0
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

	mu      sync.Mutex // guards pending, nextSeq, closed, and request fields
	pending []*item    // in arrival order
	nextSeq uint64
	closed  bool
	wake    chan struct{} // signalled (non-blocking) on arrival and on close

	slots chan struct{} // one token per free worker
	work  chan job
	wg    sync.WaitGroup // the former and the workers
}

// job is a batch handed from the former to a worker.
type job struct {
	items []*item
	depth int
}

// New starts a Batcher over f. The caller owns it and must Close it; f must
// stay usable until Close returns.
func New(f Forwarder, cfg Config) (*Batcher, error) {
	cfg = cfg.withDefaults()
	if cfg.Dim <= 0 {
		return nil, fmt.Errorf("embedd/batch: Dim %d must be positive", cfg.Dim)
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
// the Forwarder) and waits for their vectors, returned in order. It returns
// ErrQueueFull at once when the queue cannot take all of them, ErrClosed
// after Close began, and ctx's error when ctx ends first (items not yet
// started are then dropped).
func (b *Batcher) Submit(ctx context.Context, seqs [][]int32) ([][]float32, error) {
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
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if len(b.pending)+len(seqs) > b.cfg.QueueSize {
		n := len(b.pending)
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d texts waiting, %d more do not fit in %d", ErrQueueFull, n, len(seqs), b.cfg.QueueSize)
	}
	for i, s := range seqs {
		b.pending = append(b.pending, &item{req: r, idx: i, seq: s, seqn: b.nextSeq, at: now})
		b.nextSeq++
	}
	b.mu.Unlock()
	b.signal()
	select {
	case <-r.done:
		b.mu.Lock()
		err := r.err
		b.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return r.out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// QueueDepth is the number of texts waiting for a batch.
func (b *Batcher) QueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
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
	for {
		<-b.slots // a worker is free
		batch, depth, ok := b.next()
		if !ok {
			return
		}
		b.work <- job{items: batch, depth: depth}
	}
}

// next waits for a batch worth running and takes it from the queue; ok is
// false when the batcher is closed and drained.
func (b *Batcher) next() (batch []*item, depth int, ok bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		b.dropCancelledLocked()
		if len(b.pending) == 0 {
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil, 0, false
			}
			<-b.wake
			continue
		}
		wait := b.cfg.MaxWait - time.Since(b.pending[0].at)
		if b.closed || wait <= 0 || b.fullLocked() {
			batch = b.takeLocked()
			depth = len(b.pending)
			b.mu.Unlock()
			return batch, depth, true
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

// dropCancelledLocked removes the items of requests whose context ended.
func (b *Batcher) dropCancelledLocked() {
	keep := b.pending[:0]
	for _, it := range b.pending {
		if it.req.ctx.Err() == nil {
			keep = append(keep, it)
		}
	}
	b.dropped.Add(uint64(len(b.pending) - len(keep)))
	clear(b.pending[len(keep):])
	b.pending = keep
}

// Dropped counts the texts of cancelled or expired requests that were
// removed from the queue before inference.
func (b *Batcher) Dropped() uint64 { return b.dropped.Load() }

// fullLocked reports whether the queue holds at least a full batch.
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

// takeLocked removes and returns the batch around the oldest item: in
// length order it grows first towards shorter rows, then longer ones,
// within the token budget and the size cap, and keeps every row at least
// half as long as the longest.
func (b *Batcher) takeLocked() []*item {
	sorted := slices.Clone(b.pending)
	slices.SortFunc(sorted, func(x, y *item) int {
		return cmp.Or(cmp.Compare(len(x.seq), len(y.seq)), cmp.Compare(x.seqn, y.seqn))
	})
	oldest := b.pending[0]
	p, _ := slices.BinarySearchFunc(sorted, oldest, func(x, t *item) int {
		return cmp.Or(cmp.Compare(len(x.seq), len(t.seq)), cmp.Compare(x.seqn, t.seqn))
	})
	lo, hi := p, p+1
	longest := len(oldest.seq)
	fits := func(rows, longest int) bool {
		return rows <= b.cfg.MaxBatchSize && rows*longest <= b.cfg.MaxBatchTokens
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
	keep := b.pending[:0]
	for _, it := range b.pending {
		if !taken[it] {
			keep = append(keep, it)
		}
	}
	clear(b.pending[len(keep):])
	b.pending = keep
	return batch
}

// worker runs batches until the former closes the work channel.
func (b *Batcher) worker() {
	var seqs [][]int32
	var dst [][]float32
	for j := range b.work {
		batch := j.items
		seqs, dst = seqs[:0], dst[:0]
		st := Stats{Rows: len(batch), QueueDepth: j.depth}
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
		st.Run, st.Err = time.Since(now), err
		b.finish(batch, err)
		b.slots <- struct{}{}
		if b.cfg.Observe != nil {
			b.cfg.Observe(st)
		}
	}
}

// finish counts the batch's items done and wakes requests that completed.
func (b *Batcher) finish(batch []*item, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, it := range batch {
		r := it.req
		if err != nil && r.err == nil {
			r.err = err
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
