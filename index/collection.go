package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Record is one row as it is written and read back.
type Record struct {
	// ID names the row: 1 to 256 bytes of UTF-8, unique in the collection.
	// Upserting an id that exists replaces its row.
	ID string
	// Vector has the collection's dimension and finite components, not all
	// zero under cosine. Cosine collections store (and return) it
	// normalised to unit length.
	Vector []float32
	// Metadata is optional; nil or empty means none (unless MetadataJSON).
	Metadata []byte
	// MetadataJSON says Metadata is a JSON object: it is validated, stored
	// compacted, and searches can filter on its top-level fields.
	MetadataJSON bool
}

// Stats are a collection's counters.
type Stats struct {
	// Rows is the rows in the current generation, deleted ones included;
	// Live is the rows not deleted.
	Rows, Live int
	// Seq is the last acknowledged write batch.
	Seq uint64
	// Generation is the current generation's number (compaction adds one).
	Generation uint64
	// WALRecords, WALSyncs and WALBytes count what the committer wrote
	// since open: with group commit, WALSyncs is far below WALRecords under
	// concurrent writers.
	WALRecords, WALSyncs, WALBytes int64
	// Checkpoints and Compactions completed since open.
	Checkpoints, Compactions int64
}

// Collection is one collection of vectors in its own directory, open for
// writing by this process (or read-only, see OpenReadOnly). It is safe for
// concurrent use: searches and snapshots never wait for a write to become
// durable, and writers only wait for each other to apply (not to fsync).
type Collection struct {
	dir      string
	man      manifest
	opts     options
	log      *slog.Logger
	readOnly bool
	lock     *os.File // flock'd LOCK file; nil when read-only
	id       uint64   // Matrix.Collection for the search backend

	cur atomic.Pointer[state] // the published state snapshots see; nil once closed

	// Lock order: ckptMu before mu, mu before a generation's ids.mu; the
	// field index's locks (filter.go) and the Manager's are taken with none
	// of these held. Helpers named …Locked say which lock their caller holds.

	// ckptMu serialises checkpoints, compactions and Close's final
	// checkpoint, and guards ckptSeq and ckptErr. It is held across their
	// fsyncs; mu is taken inside it only for short steps.
	ckptMu  sync.Mutex
	ckptSeq uint64 // seq of the last durable checkpoint
	ckptErr error  // a failed data-file sync: later checkpoints could not trust a retried fsync, so they stop

	// mu guards the writer side: gen (and the writer fields of the current
	// generation), seq, walStart, closed and ops. Requests are sent to the
	// committer under mu, so the WAL's order is seq order. It is never held
	// across an fsync of the data files.
	mu       sync.Mutex
	gen      *generation
	seq      uint64
	walStart uint64 // start of the segment the committer writes
	closed   bool
	ops      []op // decoding scratch
	// The committer's segment as the writer side sees it: its file, the
	// bytes of the records sent to it, and the bytes reserved for it
	// (reserveSegment), so that a write the disk has no room for fails
	// before it is applied instead of breaking the log.
	walFile          *os.File
	walEnd, walAlloc int64

	wal      *committer    // nil when read-only; its goroutine ends when Close closes wal.reqs
	kick     chan struct{} // wakes the checkpointer for a checkpoint
	compact  chan struct{} // wakes the checkpointer for an automatic compaction
	quit     chan struct{} // closed by Close: the checkpointer stops
	ckptDone chan struct{} // closed when the checkpointer has stopped

	checkpoints, compactions atomic.Int64
}

// Create makes a collection in dir (created if missing; it must not hold a
// collection already) with spec, fixed from then on, and opens it. The
// caller must Close the result.
func Create(dir string, spec Spec, opts ...Option) (*Collection, error) {
	man, err := newManifest(spec)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err == nil {
		return nil, fmt.Errorf("%w: a collection is in %s", ErrExists, dir)
	}
	if err := initDir(dir, man); err != nil {
		return nil, err
	}
	return Open(dir, opts...)
}

// initDir writes an empty collection: generation 1, its checkpoint, and the
// manifest last, which marks the directory complete.
func initDir(dir string, man manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	g, err := createGeneration(dir, 1, man, 0, 0, 0)
	if err != nil {
		return err
	}
	ck := g.checkpointLocked(0)
	g.sumLocked(&ck, g.viewsLocked())
	err = errors.Join(g.sync(), g.release())
	if err == nil {
		err = writeCheckpoint(dir, ck)
	}
	if err == nil {
		err = writeManifest(dir, man)
	}
	return err
}

// Open opens the collection in dir for writing, recovering from a crash:
// the checkpointed state plus the WAL, whose damaged tail (a write that was
// never acknowledged) is cut with a log line. Only one process may have a
// collection open for writing; another gets ErrLocked. A directory without a
// collection is ErrNotFound. The caller must Close the result; the mapped
// files stay until every Snapshot is closed too.
func Open(dir string, opts ...Option) (*Collection, error) {
	c, _, err := openWriter(dir, buildOptions(opts), replayRecover)
	return c, err
}

// openWriter opens dir for writing, replaying the WAL in mode
// (replayRecover, or replaySalvage for Repair), and says how replay went.
func openWriter(dir string, o options, mode replayMode) (_ *Collection, res replayResult, err error) {
	c := &Collection{dir: dir, opts: o, log: o.logger, id: newCollectionID()}
	if c.man, err = readManifest(dir); err != nil {
		return nil, res, err
	}
	if c.lock, err = lockDir(dir); err != nil {
		return nil, res, err
	}
	defer func() {
		if err != nil {
			c.gen.releaseIfSet()
			c.lock.Close()
		}
	}()
	ck, err := readCheckpoint(dir)
	if err != nil {
		return nil, res, err
	}
	removeStray(dir, ck.gen)
	if c.gen, err = openGeneration(dir, c.man, ck, false); err != nil {
		return nil, res, err
	}
	if res, err = replayWAL(dir, ck.seq, mode, c.log, c.replayInto(c.gen)); err != nil {
		return nil, res, err
	}
	if mode == replaySalvage {
		// Before a new segment or a checkpoint replaces them.
		if res.backups, err = keepDamaged(res.damaged); err != nil {
			return nil, res, err
		}
	}
	c.seq, c.ckptSeq = res.last, ck.seq
	var w *walWriter
	if res.tail.start != 0 && (res.tailRecords > 0 || res.tail.start == res.last+1) {
		w, err = openSegmentForAppend(res.tail, res.tailEnd)
	} else {
		if res.tail.start != 0 {
			os.Remove(res.tail.path)
		}
		w, err = createSegment(dir, res.last+1)
	}
	if err != nil {
		return nil, res, err
	}
	if err := removeSegmentsThrough(dir, ck.seq); err != nil {
		w.close()
		return nil, res, err
	}
	c.setSegmentLocked(w)
	c.cur.Store(c.gen.stateLocked(c.seq))
	c.kick = make(chan struct{}, 1)
	c.compact = make(chan struct{}, 1)
	c.quit = make(chan struct{})
	c.ckptDone = make(chan struct{})
	c.wal = newCommitter(w, &c.cur, o.groupBytes, c.maybeCheckpoint)
	go c.wal.run()
	go c.checkpointer()
	c.maybeCheckpoint(w.size)
	return c, res, nil
}

// OpenReadOnly opens the collection in dir without writing anything and
// without taking the writer's lock, so it works while another process has
// the collection open for writing: the checkpointed files are mapped
// MAP_PRIVATE (sharing the page cache, copying nothing up front) and the WAL
// is replayed into this process's private pages. The result is the state as
// of some moment while it opened; it does not follow later writes, and its
// writes fail with ErrReadOnly. (After a power failure, until a writer has
// opened the collection once, it may stop short of the latest writes: the
// data files' growth is made durable by checkpoints, not by each write.) The
// caller must Close it.
func OpenReadOnly(dir string, opts ...Option) (*Collection, error) {
	o := buildOptions(opts)
	c := &Collection{dir: dir, opts: o, log: o.logger, readOnly: true, id: newCollectionID()}
	var err error
	if c.man, err = readManifest(dir); err != nil {
		return nil, err
	}
	// A writer may checkpoint or compact while this opens, removing the
	// files or segments it was about to read; then start over.
	for attempt := 0; ; attempt++ {
		var ck checkpoint
		if ck, err = readCheckpoint(dir); err != nil {
			return nil, err
		}
		g, err := openGeneration(dir, c.man, ck, true)
		if errors.Is(err, fs.ErrNotExist) && attempt < 20 {
			continue
		}
		if err != nil {
			return nil, err
		}
		apply := c.replayInto(g)
		res, err := replayWAL(dir, ck.seq, replayReadOnly, c.log, func(seq uint64, p []byte) error {
			err := apply(seq, p)
			if errors.Is(err, errNoRoom) {
				// The writer grew the files after this mapped them: the
				// state so far is consistent; stop here.
				return errStop
			}
			return err
		})
		if errors.Is(err, errStop) {
			err = nil
		}
		if err != nil {
			g.release()
			if errors.Is(err, errRetry) && attempt < 20 {
				continue
			}
			return nil, err
		}
		c.gen, c.seq, c.ckptSeq = g, res.last, ck.seq
		c.cur.Store(g.stateLocked(c.seq))
		return c, nil
	}
}

var errStop = errors.New("embedd/index: stop replay")

// replayInto returns the function that applies one WAL record to g during
// recovery.
func (c *Collection) replayInto(g *generation) func(seq uint64, p []byte) error {
	return func(seq uint64, p []byte) error {
		var err error
		if _, c.ops, err = decodeBatch(p, c.man.Dim, c.ops); err != nil {
			return err
		}
		if err := g.reserve(c.ops); err != nil {
			return err
		}
		g.applyLocked(seq, c.ops)
		clear(c.ops)
		return nil
	}
}

func (g *generation) releaseIfSet() {
	if g != nil {
		g.release()
	}
}

// lockDir takes the writer's lock on dir.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("embedd/index: locking %s: %w", dir, err)
	}
	return f, nil
}

// removeStray removes what a crash may leave: data files of a generation
// other than the checkpointed one (a compaction that did not finish, or one
// that finished but had not cleaned up) and temporary files.
func removeStray(dir string, gen uint64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		base, _, ok := strings.Cut(name, ".")
		prefix, hex, ok2 := strings.Cut(base, "-")
		if !ok || !ok2 || len(hex) != 16 {
			continue
		}
		switch prefix {
		case "vectors", "norms", "ids", "meta":
		default:
			continue
		}
		if g, err := strconv.ParseUint(hex, 16, 64); err == nil && g != gen {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// Dir is the collection's directory.
func (c *Collection) Dir() string { return c.dir }

// Spec is what the collection is: dimension, metric, model.
func (c *Collection) Spec() Spec { return c.man.spec() }

// Dim is the collection's dimension.
func (c *Collection) Dim() int { return c.man.Dim }

// Metric is the collection's metric.
func (c *Collection) Metric() Metric { return c.man.Metric }

// ReadOnly reports whether the collection was opened with OpenReadOnly.
func (c *Collection) ReadOnly() bool { return c.readOnly }

// Stats returns the collection's counters.
func (c *Collection) Stats() Stats {
	var s Stats
	if st := c.cur.Load(); st != nil {
		s.Rows, s.Live, s.Seq, s.Generation = st.rows, st.live, st.seq, st.gen.id
	}
	if c.wal != nil {
		s.WALRecords, s.WALSyncs, s.WALBytes = c.wal.records.Load(), c.wal.syncs.Load(), c.wal.nbytes.Load()
	}
	s.Checkpoints, s.Compactions = c.checkpoints.Load(), c.compactions.Load()
	return s
}

func (c *Collection) writable() error {
	if c == nil {
		return ErrClosed
	}
	if c.readOnly {
		return fmt.Errorf("%w: %s was opened read-only", ErrReadOnly, c.dir)
	}
	return nil
}

// Upsert writes recs as one batch: each record replaces the row of its id if
// there is one. It returns once the batch is durable (its WAL record
// fsynced); readers see all of it or none of it. Every record is validated
// first: if any is invalid, the error (wrapping ErrInvalid) names it and
// nothing is stored. Within a batch, a later record of the same id wins.
//
// If ctx ends first, Upsert returns ctx's error, and the batch may or may
// not be applied.
func (c *Collection) Upsert(ctx context.Context, recs []Record) error {
	if err := c.writable(); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedd/index: upsert: %w", err)
	}
	b := newBatch(len(recs) * (4*c.man.Dim + 32))
	for i := range recs {
		if err := b.upsert(&recs[i], c.man.Dim, c.man.Metric, where{kind: "record", i: i}); err != nil {
			return err
		}
	}
	_, err := c.commit(ctx, b)
	return err
}

// Delete deletes the rows of ids as one durable batch and returns how many
// of them existed. Ids that do not exist are not an error. Invalid ids
// (wrapping ErrInvalid) fail the whole batch.
func (c *Collection) Delete(ctx context.Context, ids []string) (int, error) {
	if err := c.writable(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("embedd/index: delete: %w", err)
	}
	b := newBatch(len(ids) * 24)
	for i, id := range ids {
		if err := b.delete(id, where{kind: "id", i: i}); err != nil {
			return 0, err
		}
	}
	return c.commit(ctx, b)
}

// commit applies b in memory (past what readers see), queues its record and
// waits until the committer made it durable and published it.
func (c *Collection) commit(ctx context.Context, b *batch) (int, error) {
	req, deleted, err := c.submit(b)
	if err != nil {
		return 0, err
	}
	select {
	case err := <-req.done:
		if err != nil {
			return 0, noSpace(c.dir, err)
		}
		return deleted, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("embedd/index: waiting for the write to be durable (it may still be applied): %w", ctx.Err())
	}
}

func (c *Collection) submit(b *batch) (*commitReq, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, fmt.Errorf("%w: %s", ErrClosed, c.dir)
	}
	if err := c.wal.failure(); err != nil {
		return nil, 0, fmt.Errorf("embedd/index: the write-ahead log failed earlier; reopen the collection: %w", err)
	}
	seq := c.seq + 1
	rec := b.seal(seq)
	var err error
	if _, c.ops, err = decodeBatch(b.payload(), c.man.Dim, c.ops); err != nil {
		return nil, 0, err
	}
	defer clear(c.ops)
	// Room first, in the WAL and the data files: a write that does not fit
	// fails here, with nothing applied.
	if c.walAlloc, err = reserveSegment(c.walFile, walPath(c.dir, c.walStart), c.walAlloc, c.walEnd+int64(len(rec))); err != nil {
		return nil, 0, noSpace(c.dir, err)
	}
	if err := c.gen.reserve(c.ops); err != nil {
		return nil, 0, noSpace(c.dir, err)
	}
	deleted := c.gen.applyLocked(seq, c.ops)
	c.seq = seq
	c.walEnd += int64(len(rec))
	req := &commitReq{rec: rec, after: c.gen.stateLocked(seq), done: make(chan error, 1)}
	c.wal.reqs <- req
	return req, deleted, nil
}

// Get returns the record of id as of the latest acknowledged write.
func (c *Collection) Get(id string) (Record, bool, error) {
	s, err := c.Snapshot()
	if err != nil {
		return Record{}, false, err
	}
	defer s.Close()
	row, ok := s.Lookup(id)
	if !ok {
		return Record{}, false, nil
	}
	return s.Record(row), true, nil
}

// drainLocked waits until everything sent to the committer is durable and
// published. The caller holds mu.
func (c *Collection) drainLocked() error {
	req := &commitReq{done: make(chan error, 1)}
	c.wal.reqs <- req
	return <-req.done
}

// rotateLocked makes everything so far durable and switches the committer
// to a new segment starting at seq+1. The caller holds mu.
func (c *Collection) rotateLocked() error {
	if c.walStart == c.seq+1 {
		return c.drainLocked() // the current segment holds nothing yet
	}
	w, err := createSegment(c.dir, c.seq+1)
	if err != nil {
		return err
	}
	req := &commitReq{rotate: w, done: make(chan error, 1)}
	c.wal.reqs <- req
	if err := <-req.done; err != nil {
		return err
	}
	c.setSegmentLocked(w)
	return nil
}

// setSegmentLocked records w as the segment the committer writes from now
// on. The caller holds mu (or owns c alone, opening it).
func (c *Collection) setSegmentLocked(w *walWriter) {
	c.walStart, c.walFile, c.walEnd, c.walAlloc = w.start, w.f, w.size, w.size
}

// Checkpoint makes the data files durable and records the WAL position they
// include, so that recovery replays only what came after; the WAL segments
// before it are removed. Writes go on meanwhile. Checkpoints also run in the
// background (WithCheckpointBytes) and at Close.
func (c *Collection) Checkpoint(ctx context.Context) error {
	if err := c.writable(); err != nil {
		return err
	}
	return noSpace(c.dir, c.runCheckpoint(ctx))
}

// runCheckpoint is Checkpoint past its checks, its errors unwrapped.
func (c *Collection) runCheckpoint(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedd/index: checkpoint: %w", err)
	}
	c.ckptMu.Lock()
	defer c.ckptMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, c.dir)
	}
	if c.seq == c.ckptSeq {
		c.mu.Unlock()
		return nil
	}
	if err := c.rotateLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	g, ck, views, del := c.gen, c.gen.checkpointLocked(c.seq), c.gen.viewsLocked(), c.gen.del[:c.gen.rows:c.gen.rows]
	c.mu.Unlock()
	return c.persistLocked(g, ck, views, del)
}

// persistLocked makes ck durable: syncs g's files (their bytes up to ck's
// lengths, views, are final; writers may append past them meanwhile), adds
// their checksums and the tombstones as of ck.seq, writes CHECKPOINT and
// removes the segments it covers. The caller holds ckptMu.
func (c *Collection) persistLocked(g *generation, ck checkpoint, views dataViews, del []uint64) error {
	if c.ckptErr != nil {
		return c.ckptErr
	}
	if err := g.sync(); err != nil {
		// The kernel may have dropped the pages that failed to write, so a
		// later fsync could succeed without them: keep the WAL instead.
		c.ckptErr = fmt.Errorf("embedd/index: checkpoints stop until the collection is reopened (the WAL keeps every write): %w", err)
		return c.ckptErr
	}
	g.sumLocked(&ck, views)
	ck.deleted, ck.ndeleted = tombstoneBitmap(del, ck.rows, ck.seq)
	if err := writeCheckpoint(c.dir, ck); err != nil {
		return err
	}
	c.ckptSeq = ck.seq
	c.checkpoints.Add(1)
	return removeSegmentsThrough(c.dir, ck.seq)
}

// maybeCheckpoint is the committer's hook after each flush (and opening's):
// a segment past the threshold wakes the checkpointer for a checkpoint, and
// enough dead rows (WithAutoCompact) for a compaction.
func (c *Collection) maybeCheckpoint(segmentBytes int64) {
	if c.opts.checkpointBytes > 0 && segmentBytes >= c.opts.checkpointBytes {
		wake(c.kick)
	}
	if c.opts.needsCompaction(c.cur.Load(), c.man.Dim) {
		wake(c.compact)
	}
}

// needsCompaction reports whether st has enough dead rows for an automatic
// compaction (WithAutoCompact).
func (o *options) needsCompaction(st *state, dim int) bool {
	if st == nil || o.compactRatio <= 0 {
		return false
	}
	dead := st.rows - st.live
	return dead > 0 && float64(dead) >= o.compactRatio*float64(st.rows) && int64(dead)*int64(dim)*4 >= o.compactBytes
}

// wake sends on a one-slot channel unless a wake-up is already waiting.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// checkpointer runs background checkpoints and compactions until Close,
// which cancels a compaction under way.
func (c *Collection) checkpointer() {
	defer close(c.ckptDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.quit
		cancel()
	}()
	var retryCompact time.Time // after a failed compaction, the next try waits until then
	for {
		var what string
		var err error
		select {
		case <-c.quit:
			return
		case <-c.kick:
			what, err = "checkpoint", c.Checkpoint(ctx)
		case <-c.compact:
			if time.Now().Before(retryCompact) {
				continue
			}
			if what, err = "compaction", c.Compact(ctx); err != nil {
				retryCompact = time.Now().Add(time.Minute)
			}
		}
		if err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
			c.log.Error("embedd/index: background "+what+" failed", "dir", c.dir, "err", err)
		}
	}
}

// Close makes a final checkpoint (unless the WAL failed), stops the
// collection's goroutines and releases its files (the mapped ones once every
// Snapshot is closed too) and its lock. Writes that were waiting are answered
// first. It is nil-safe and idempotent; calls after it fail with ErrClosed.
func (c *Collection) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	if !c.readOnly {
		close(c.quit)
		<-c.ckptDone
		c.ckptMu.Lock() // a running checkpoint or compaction finishes (or gives up) first
		req := &commitReq{done: make(chan error, 1)}
		c.wal.reqs <- req
		<-req.done
		close(c.wal.reqs)
		<-c.wal.exited
		if c.wal.failure() == nil && c.seq > c.ckptSeq {
			c.mu.Lock()
			g, ck, views, del := c.gen, c.gen.checkpointLocked(c.seq), c.gen.viewsLocked(), c.gen.del[:c.gen.rows:c.gen.rows]
			c.mu.Unlock()
			errs = append(errs, c.persistLocked(g, ck, views, del))
		}
		c.ckptMu.Unlock()
	}
	c.cur.Store(nil)
	if r, ok := c.opts.backend.(Releaser); ok {
		r.Release(c.id)
	}
	errs = append(errs, c.gen.release())
	if c.lock != nil {
		errs = append(errs, c.lock.Close())
	}
	return errors.Join(errs...)
}
