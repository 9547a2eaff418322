package index

import (
	"errors"
	"os"
	"sync/atomic"
)

// generation is the data files one compaction writes, mapped, with what is
// built from them in memory. Rows are only ever appended to a generation.
//
// A generation lives while it is referenced: the collection holds one
// reference while the generation is current, each open Snapshot another. The
// files are unmapped and closed when the count reaches zero, never earlier,
// so a snapshot's slices stay valid across compaction.
type generation struct {
	id     uint64
	dir    string
	dim    int
	metric Metric
	refs   atomic.Int64

	mat  *matrix
	ids  *idTable
	meta *metaStore

	fields fieldIndex // what filters read; see filter.go
	sums   fileSums   // the data files' checksums as of the last checkpoint; guarded by Collection.ckptMu

	// Writer side, guarded by Collection.mu (with the ids' and meta's
	// lengths and slice headers):
	rows int      // rows written, possibly past what is published
	live int      // rows not deleted
	del  []uint64 // row → seq of its delete, 0 while live; see tombstones.go
}

// createGeneration creates the empty files of generation id with room for
// about rows rows and metaBytes of metadata. The caller releases the result
// (it starts with one reference).
func createGeneration(dir string, id uint64, man manifest, rows int, idBytes, metaBytes int64) (_ *generation, err error) {
	g := &generation{id: id, dir: dir, dim: man.Dim, metric: man.Metric}
	g.refs.Store(1)
	defer func() {
		if err != nil {
			g.closeFiles()
			g.removeFiles()
		}
	}()
	if g.mat, err = createMatrix(dir, id, man.Dim, man.Metric == L2, rows); err != nil {
		return nil, err
	}
	avg := 16
	if rows > 0 {
		avg = int(idBytes/int64(rows)) + 1
	}
	if g.ids, err = createIDs(dir, id, rows, avg); err != nil {
		return nil, err
	}
	if g.meta, err = createMeta(dir, id, metaBytes, rows); err != nil {
		return nil, err
	}
	g.del = make([]uint64, 0, rows)
	return g, nil
}

// openGeneration maps the generation ck names and restores ck's state.
// private maps for a read-only opener. The caller releases the result.
func openGeneration(dir string, man manifest, ck checkpoint, private bool) (_ *generation, err error) {
	g := &generation{id: ck.gen, dir: dir, dim: man.Dim, metric: man.Metric}
	g.refs.Store(1)
	defer func() {
		if err != nil {
			g.closeFiles()
		}
	}()
	if g.mat, err = openMatrix(dir, ck.gen, man.Dim, man.Metric == L2, ck.rows, private); err != nil {
		return nil, err
	}
	if g.ids, err = openIDs(dir, ck.gen, ck.idsBytes, ck.rows, private); err != nil {
		return nil, err
	}
	if g.meta, err = openMeta(dir, ck.gen, ck.metaBytes, ck.rows, private); err != nil {
		return nil, err
	}
	g.rows = ck.rows
	if err := g.checkSums(ck, g.viewsLocked()); err != nil {
		return nil, err
	}
	var deleted int
	g.del, deleted = tombstonesFromBitmap(ck.deleted, ck.rows, max(ck.seq, 1), ck.rows+ck.rows/8+16)
	g.live = ck.rows - deleted
	return g, nil
}

// acquire takes a reference unless the generation is already released.
func (g *generation) acquire() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the files.
func (g *generation) release() error {
	if g.refs.Add(-1) == 0 {
		return g.closeFiles()
	}
	return nil
}

func (g *generation) closeFiles() error {
	return errors.Join(g.meta.close(), g.ids.close(), g.mat.close())
}

// files lists the generation's file names (norms may not exist).
func (g *generation) files() []string {
	return generationFiles(g.dir, g.id)
}

// generationFiles lists generation id's files in dataViews order.
func generationFiles(dir string, id uint64) []string {
	return append(matrixFiles(dir, id), idsPath(dir, id), metaPath(dir, id))
}

func (g *generation) removeFiles() {
	for _, p := range g.files() {
		os.Remove(p)
	}
}

// sync makes every file of the generation durable.
func (g *generation) sync() error {
	return errors.Join(g.mat.sync(), g.ids.sync(), g.meta.sync())
}

// reserve makes room for ops before applyLocked, so that applying cannot
// fail half way.
func (g *generation) reserve(ops []op) error {
	rows := 0
	var idBytes, metaBytes int64
	for i := range ops {
		if ops[i].kind == walOpUpsert {
			rows++
			idBytes += idRecordHeader + int64(len(ops[i].id))
			metaBytes += metaRecordSize(ops[i].metaKind, ops[i].meta)
		}
	}
	if rows == 0 {
		return nil
	}
	if g.rows+rows >= noRow {
		return invalidf("the collection would have over %d rows; compact it", noRow-1)
	}
	if err := g.mat.ensure(g.rows + rows); err != nil {
		return err
	}
	if err := g.ids.ensure(idBytes); err != nil {
		return err
	}
	return g.meta.ensure(metaBytes)
}

// applyLocked applies one batch with sequence number seq: every op in
// order, an upsert of a live id deleting its old row. It returns how many
// deletes found a live row. The caller holds Collection.mu (or owns g
// alone, as stateLocked) and reserved room.
func (g *generation) applyLocked(seq uint64, ops []op) (deleted int) {
	g.ids.mu.Lock()
	defer g.ids.mu.Unlock()
	for i := range ops {
		o := &ops[i]
		if old, ok := g.ids.newestLocked(o.id); ok && g.del[old] == 0 {
			atomic.StoreUint64(&g.del[old], seq)
			g.live--
			if o.kind == walOpDelete {
				deleted++
			}
		}
		if o.kind != walOpUpsert {
			continue
		}
		row := g.rows
		g.mat.writeRow(row, o.vec)
		g.ids.appendLocked(string(o.id))
		g.meta.append(row, o.metaKind, o.meta)
		g.del = append(g.del, 0)
		g.rows++
		g.live++
	}
	return deleted
}

// stateLocked is what a snapshot of the writer's current rows at seq sees.
// The caller holds Collection.mu, or owns g alone (a generation being
// opened or built by a compaction, which no snapshot or writer sees yet).
func (g *generation) stateLocked(seq uint64) *state {
	data, norms := g.mat.view(g.rows)
	return &state{
		gen:      g,
		seq:      seq,
		rows:     g.rows,
		live:     g.live,
		data:     data,
		norms:    norms,
		ids:      g.ids.rows[:g.rows:g.rows],
		metaOffs: g.meta.offs[:g.rows:g.rows],
		metaMem:  g.meta.file.bytes(),
		del:      g.del[:g.rows:g.rows],
	}
}

// checkpointLocked describes the writer's current rows as a checkpoint at
// seq, without the tombstone bitmap (persistLocked adds it later from del,
// without the lock). The caller holds Collection.mu, or owns g alone (as
// stateLocked).
func (g *generation) checkpointLocked(seq uint64) checkpoint {
	return checkpoint{gen: g.id, seq: seq, rows: g.rows, idsBytes: g.ids.length, metaBytes: g.meta.length}
}
