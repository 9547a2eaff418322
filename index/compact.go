package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"unsafe"
)

// Compact rewrites the live rows into a new generation, reclaiming the rows
// that deletes and upserts left behind, and swaps it in atomically (the
// checkpoint names the new generation, written with a rename). Searches,
// snapshots and writes go on meanwhile: writes made during the copy are
// replayed from the WAL onto the new generation before the swap, and
// snapshots of the old generation keep it mapped until they close. Rows are
// numbered anew. With nothing to reclaim it does nothing.
func (c *Collection) Compact(ctx context.Context) error {
	if err := c.writable(); err != nil {
		return err
	}
	return noSpace(c.dir, c.runCompact(ctx))
}

// runCompact is Compact past its checks, its errors unwrapped.
func (c *Collection) runCompact(ctx context.Context) error {
	c.ckptMu.Lock()
	defer c.ckptMu.Unlock()
	if c.ckptErr != nil {
		return c.ckptErr
	}

	// 1. Everything so far goes into the new generation; the WAL from
	// base.seq+1 on (a new segment) holds what comes after.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, c.dir)
	}
	if c.gen.live == c.gen.rows {
		c.mu.Unlock()
		return nil
	}
	if err := c.rotateLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	old := c.gen
	base := old.stateLocked(c.seq)
	idBytes, metaBytes := old.ids.length, old.meta.length
	c.mu.Unlock()

	// 2. Copy the live rows of base, without any lock.
	ng, err := copyLive(ctx, c.dir, c.man, base, idBytes, metaBytes)
	if err != nil {
		return err
	}
	swapped := false
	defer func() {
		if !swapped {
			ng.release()
			ng.removeFiles()
		}
	}()
	if err := ng.sync(); err != nil {
		return err
	}
	if err := syncDir(c.dir); err != nil {
		return err
	}
	ck := ng.checkpointLocked(base.seq)
	ng.sumLocked(&ck, ng.viewsLocked())
	ck.deleted, ck.ndeleted = tombstoneBitmap(ng.del, ng.rows, base.seq) // all live

	// 3. Catch up with the writes made meanwhile and swap.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, c.dir)
	}
	if err := c.drainLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if c.seq > base.seq {
		if _, err := replayWAL(c.dir, base.seq, replayStrict, c.log, c.replayInto(ng)); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("embedd/index: compaction catching up with the log: %w", err)
		}
	}
	ckErr := writeCheckpoint(c.dir, ck)
	if ckErr != nil {
		// If the rename happened (only the directory sync failed), the
		// checkpoint on disk names the new generation: it must not be
		// removed, so swap anyway and report the error.
		if onDisk, err := readCheckpoint(c.dir); err != nil || onDisk.gen != ng.id {
			c.mu.Unlock()
			return ckErr
		}
	}
	c.gen = ng
	c.cur.Store(ng.stateLocked(c.seq))
	swapped = true
	c.mu.Unlock()

	c.ckptSeq = base.seq
	c.compactions.Add(1)
	errs := []error{ckErr, old.release()}
	for _, p := range old.files() {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("embedd/index: %w", err))
		}
	}
	errs = append(errs, removeSegmentsThrough(c.dir, base.seq), syncDir(c.dir))
	return errors.Join(errs...)
}

// copyLive writes a new generation (the next number after base's) holding
// base's live rows in order. The caller releases the result.
func copyLive(ctx context.Context, dir string, man manifest, base *state, idBytes, metaBytes int64) (_ *generation, err error) {
	ng, err := createGeneration(dir, base.gen.id+1, man, base.live, idBytes, metaBytes)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ng.release()
			ng.removeFiles()
		}
	}()
	if err := ng.mat.ensure(base.live); err != nil {
		return nil, err
	}
	if err := ng.ids.ensure(idBytes); err != nil {
		return nil, err
	}
	if err := ng.meta.ensure(metaBytes); err != nil {
		return nil, err
	}
	dim := man.Dim
	for r := range base.rows {
		if r%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("embedd/index: compaction: %w", err)
			}
		}
		if deletedAt(base.del, r, base.seq) {
			continue
		}
		row := ng.rows
		ng.mat.writeRow(row, floatBytes(base.data[r*dim:(r+1)*dim]))
		ng.ids.writeRecord(base.ids[r])
		kind, data := metaAt(base.metaMem, base.metaOffs[r])
		ng.meta.append(row, kind, data)
		ng.del = append(ng.del, 0)
		ng.rows++
		ng.live++
	}
	// Nobody else sees ng yet; index's contract is the lock.
	ng.ids.mu.Lock()
	defer ng.ids.mu.Unlock()
	if err := ng.ids.index(ng.rows); err != nil {
		return nil, err
	}
	return ng, nil
}

// floatBytes views f's memory as bytes (little-endian on the hosts this
// package runs on).
func floatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}
