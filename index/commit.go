package index

import (
	"sync/atomic"
)

// commitReq is one request to the committer: a WAL record to make durable
// (then publish after and answer nil), a barrier (rec and rotate nil: answered
// once everything sent before it is durable), or a rotation to a new
// segment (after everything before it is durable).
type commitReq struct {
	rec    []byte
	after  *state
	rotate *walWriter
	done   chan error // buffered, one answer
}

// committer is the group commit: one goroutine owns the WAL segment being
// written. It takes every request waiting in reqs (up to groupBytes of
// records), writes them with one write, fsyncs once, publishes the state
// after the last of them and then answers them all. Requests are sent under
// Collection.mu in seq order, so the log's order is the order the writes were
// applied in memory.
//
// A failed write or fsync is sticky: the log's state is unknown, so every
// later request fails with the same error and nothing more is published;
// reads go on from the last published state, and reopening recovers.
type committer struct {
	reqs       chan *commitReq
	pub        *atomic.Pointer[state]
	groupBytes int
	full       func(segmentBytes int64) // after each flush; may kick a checkpoint
	exited     chan struct{}

	w   *walWriter // owned by run
	buf []byte     // owned by run

	failed                 atomic.Pointer[error]
	records, syncs, nbytes atomic.Int64
}

func newCommitter(w *walWriter, pub *atomic.Pointer[state], groupBytes int, full func(int64)) *committer {
	return &committer{
		reqs:       make(chan *commitReq, 1024),
		pub:        pub,
		groupBytes: groupBytes,
		full:       full,
		exited:     make(chan struct{}),
		w:          w,
	}
}

// failure is the sticky error, if any.
func (c *committer) failure() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// run is the committer goroutine; it returns when reqs is closed, closing
// the segment it holds.
func (c *committer) run() {
	defer close(c.exited)
	defer func() { c.w.close() }() // the segment current at exit, not the first one
	group := make([]*commitReq, 0, 64)
	for {
		req, ok := <-c.reqs
		if !ok {
			return
		}
		group = append(group[:0], req)
		closed := false
		size := len(req.rec)
	collect:
		for req.rotate == nil && size < c.groupBytes {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					closed = true
					break collect
				}
				group = append(group, r)
				size += len(r.rec)
				if r.rotate != nil {
					break collect
				}
			default:
				break collect
			}
		}
		c.flush(group)
		clear(group)
		if closed {
			return
		}
	}
}

// flush makes group's records durable with one fsync, then publishes and
// answers. A rotation can only be the group's last request.
func (c *committer) flush(group []*commitReq) {
	err := c.failure()
	var last *state
	n := 0
	var data []byte
	for _, r := range group {
		if r.rec == nil {
			continue
		}
		n++
		last = r.after
		if n == 1 {
			data = r.rec
			continue
		}
		if n == 2 {
			c.buf = append(c.buf[:0], data...)
		}
		c.buf = append(c.buf, r.rec...)
		data = c.buf
	}
	if err == nil && n > 0 {
		if err = c.w.write(data); err == nil {
			err = c.w.sync()
		}
		if err != nil {
			sticky := err
			c.failed.CompareAndSwap(nil, &sticky)
		} else {
			c.records.Add(int64(n))
			c.syncs.Add(1)
			c.nbytes.Add(int64(len(data)))
			c.pub.Store(last)
		}
	}
	if cap(c.buf) > 4*c.groupBytes {
		c.buf = nil // one huge batch should not pin its buffer
	}
	rotErr := err
	if r := group[len(group)-1]; r.rotate != nil {
		if err == nil {
			// The old segment is synced; a failed close loses nothing.
			rotErr = c.w.close()
			c.w = r.rotate
		} else {
			r.rotate.close()
		}
	}
	for _, r := range group {
		if r.rotate != nil {
			r.done <- rotErr
		} else {
			r.done <- err
		}
	}
	if err == nil && c.full != nil {
		c.full(c.w.size)
	}
}
