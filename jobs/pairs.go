package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
	"github.com/embedd/embedd/vec"
)

// PairsJob finds similar pairs within one set of vectors (Against nil: a
// self-join, each pair once, a line never with itself) or between two
// sets: each item's K best partners, or every pair scoring at least
// Threshold, or (Dedup) the groups of near duplicates that the threshold
// pairs connect. The vectors are mapped from .npy files, not held on the
// heap: an .npy input is mapped as it is (ids from its IDsPath file, else
// row numbers), other inputs are converted first (texts embedded with
// Embed) into the job directory.
type PairsJob struct {
	// Input is the first set; Against the second, or nil for a self-join.
	Input, Against *PairsInput
	// Embed turns text records into vectors; nil refuses texts.
	Embed Stage
	// Params are the parameters that change the output (model and its
	// options); the manifest keeps them.
	Params map[string]string
	// Metric is flat.Cosine (vectors are normalised on conversion; an
	// .npy input must already be unit length) or flat.Dot.
	Metric flat.Metric
	// K asks for each item's K best partners; otherwise Threshold.
	K         int
	Threshold float32
	// MaxPairs caps the threshold pairs written (0: no cap); Totals says
	// when it was hit.
	MaxPairs int64
	// Dedup writes {"keep","duplicates"} groups instead of pairs.
	Dedup bool
	// Dir is the job directory: converted vectors; the parts of a
	// block-by-block join (threshold pairs, dedup, a two-set top k), which
	// resume block by block; a self-join's top k, whose rows take partners
	// from every block, checkpoints every row's heap instead
	// (pairs/heaps.bin) and resumes from the last checkpoint. "" uses a
	// temporary one.
	Dir string
	// CheckpointEvery is the least time between a self-join top k's
	// checkpoints; 0 lets package flat pace them (about 5% of the join).
	CheckpointEvery time.Duration
	// Shard runs a share of the join's blocks (the first set's rows),
	// dealt so each shard gets about the same work; Merge joins the
	// shards' job directories into the output a single process writes. A
	// shard writes no Output.
	Shard Shard
	// blockDone, if set, is told of each join block completed (tests).
	blockDone func(b int)
	// Output gets the neighbours ({"id","neighbors"}), pairs
	// ({"a","b","score"}) or groups; ErrorsPath the bad input lines.
	Output Output
	// Workers is the goroutines of the join; 0 all cores.
	Workers int
	// BlockRows is the join's rows per block (and threshold part); 0 lets
	// package flat choose.
	BlockRows int
	// Progress is called about every second with rows done of rows.
	Progress func(Progress)
}

// PairsInput is one set of a PairsJob: a file of vectors (.npy, JSONL,
// Parquet) or of texts.
type PairsInput struct {
	Input
	// IDsPath is an .npy input's ids, one a line; "" numbers the rows
	// from 1.
	IDsPath string
}

// PairsTotals is what a PairsJob did.
type PairsTotals struct {
	Totals
	// Rows are the items of each set; Pairs the pairs (or groups) written.
	RowsA, RowsB int
	Pairs        int64
	JoinSeconds  float64
	// Checkpoints counts a self-join top k's saves of its heaps.
	Checkpoints int
}

// vectors is one set, mapped, with its ids.
type vectors struct {
	m    flat.Matrix
	ids  idList
	rows int
	mem  []byte
}

func (v *vectors) close() error {
	return errors.Join(unmap(v.mem), unmap(v.ids.mem))
}

func unmap(b []byte) error {
	if b == nil {
		return nil
	}
	return unix.Munmap(b)
}

// idList is the ids of a set: its ids file mapped and where each line
// starts (4 bytes a row on the heap), or the row numbers from 1.
type idList struct {
	mem []byte
	off []uint32 // line i is mem[off[i]:off[i+1]-1]; nil: row numbers
}

func (l idList) get(i int) string {
	if l.off == nil {
		return strconv.Itoa(i + 1)
	}
	return string(l.mem[l.off[i] : l.off[i+1]-1])
}

// RunPairs runs p.
func RunPairs(ctx context.Context, p PairsJob) (_ PairsTotals, err error) {
	start := time.Now()
	var tot PairsTotals
	if p.Shard.Count == 0 {
		p.Shard = Shard{0, 1}
	}
	if err := p.Shard.check(); err != nil {
		return tot, err
	}
	if p.Shard.Count > 1 && (p.Dir == "" || !p.Input.Vectors || p.Against != nil && !p.Against.Vectors) {
		return tot, errors.New("embedd/jobs: a pairs shard needs a job directory and vectors (every shard reads every vector: embed texts once, sharded, with embedd job embed --format npy and merge, then pair the .npy)")
	}
	if p.Metric != flat.Cosine && p.Metric != flat.Dot {
		return tot, fmt.Errorf("embedd/jobs: pairs: metric %v, want cosine or dot", p.Metric)
	}
	if p.K < 0 || p.K > 0 && p.Dedup {
		return tot, fmt.Errorf("embedd/jobs: pairs: k %d with dedup %v", p.K, p.Dedup)
	}
	if p.Dedup && p.Against != nil {
		return tot, errors.New("embedd/jobs: dedup is within one set (no second input)")
	}
	dir := p.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "embedd-pairs-*"); err != nil {
			return tot, fmt.Errorf("embedd/jobs: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	if err := p.prepare(dir); err != nil {
		return tot, err
	}
	a, t, err := p.load(ctx, dir, "a", p.Input)
	tot.Totals = t
	if err != nil {
		return tot, err
	}
	defer a.close()
	b := a
	if p.Against != nil {
		var tb Totals
		b, tb, err = p.load(ctx, dir, "b", p.Against)
		tot.Read, tot.Failed, tot.Resumed = tot.Read+tb.Read, tot.Failed+tb.Failed, tot.Resumed+tb.Resumed
		if err != nil {
			return tot, err
		}
		defer b.close()
		if a.m.Dim != b.m.Dim && a.rows > 0 && b.rows > 0 {
			return tot, fmt.Errorf("embedd/jobs: pairs: the sets have dimensions %d and %d", a.m.Dim, b.m.Dim)
		}
	}
	tot.RowsA, tot.RowsB = a.rows, b.rows
	joinStart := time.Now()
	if p.K > 0 && p.Against == nil {
		err = p.selfTopK(ctx, dir, a, &tot)
	} else {
		err = p.blocks(ctx, dir, a, b, &tot)
	}
	tot.JoinSeconds = time.Since(joinStart).Seconds()
	tot.Seconds = time.Since(start).Seconds()
	return tot, err
}

// prepare creates dir with the job's manifest, or checks it.
func (p *PairsJob) prepare(dir string) error {
	params := map[string]string{"metric": p.Metric.String(), "k": strconv.Itoa(p.K), "block-rows": strconv.Itoa(p.BlockRows),
		"threshold": strconv.FormatFloat(float64(p.Threshold), 'g', -1, 32), "dedup": strconv.FormatBool(p.Dedup),
		"max-pairs": strconv.FormatInt(p.MaxPairs, 10), "ids": p.Input.IDsPath}
	for k, v := range p.Params {
		params[k] = v
	}
	m := manifest{Version: manifestVersion, Kind: "pairs", Params: params, Shard: p.Shard.String()}
	var err error
	if m.Input, err = identify(p.Input.Path); err != nil {
		return err
	}
	if p.Against != nil {
		idb, err := identify(p.Against.Path)
		if err != nil {
			return err
		}
		params["against"], params["against-size"], params["against-head"], params["against-tail"] = idb.Path, strconv.FormatInt(idb.Size, 10), idb.Head, idb.Tail
		params["against-ids"] = p.Against.IDsPath
	}
	return prepareDir(dir, m)
}

// load maps set name's vectors: an .npy as it is, anything else converted
// into dir/name.npy first (resumably, through dir/name/).
func (p *PairsJob) load(ctx context.Context, dir, name string, in *PairsInput) (*vectors, Totals, error) {
	if in.Path == "-" {
		return nil, Totals{}, errors.New("embedd/jobs: pairs reads files (the vectors are mapped), not stdin")
	}
	if strings.HasSuffix(in.Path, ".npy") {
		v, err := mapNPY(in.Path, in.IDsPath)
		if err == nil && p.Metric == flat.Cosine {
			err = checkUnit(v.m)
		}
		if err != nil {
			v.close()
			return nil, Totals{}, err
		}
		return v, Totals{Read: int64(v.rows), Written: int64(v.rows)}, nil
	}
	out := filepath.Join(dir, name+".npy")
	stage, err := p.vectorStage(in)
	if err != nil {
		return nil, Totals{}, err
	}
	o := p.Output
	o.Path, o.Format, o.IDsPath = out, OutputNPY, out+".ids"
	if o.ErrorsPath != "" {
		o.ErrorsPath += "." + name
	}
	j := Job{Kind: "vectors", Params: p.Params, Input: in.Input, Stage: stage, Output: o, Dir: filepath.Join(dir, name), Progress: p.Progress}
	t, err := Run(ctx, j)
	if err != nil {
		return nil, t, err
	}
	v, err := mapNPY(out, out+".ids")
	return v, t, err
}

// vectorStage passes vector records through (normalised for cosine) or
// embeds texts, and fails a vector whose width is not the first one's.
func (p *PairsJob) vectorStage(in *PairsInput) (Stage, error) {
	dim, err := firstWidth(in.Input)
	if err != nil {
		return nil, err
	}
	embed := p.Embed
	return func(ctx context.Context, recs []Record, out []Result) error {
		if !in.Vectors {
			if embed == nil {
				return errors.New("embedd/jobs: pairs over texts needs a model")
			}
			if err := embed(ctx, recs, out); err != nil {
				return err
			}
		}
		for i := range recs {
			if out[i].Err != "" {
				continue
			}
			v := recs[i].Vector
			if !in.Vectors {
				v = out[i].Vectors[0]
			} else if len(v) != dim && dim > 0 {
				out[i].Err = fmt.Sprintf("%d dimensions, the first vector has %d", len(v), dim)
				continue
			}
			if p.Metric == flat.Cosine {
				v = slices.Clone(v)
				if norm, ok := vec.Normalize(v); !ok {
					out[i].Err = fmt.Sprintf("vector of norm %g has no direction", norm)
					continue
				}
			}
			out[i].Vectors = [][]float32{v}
		}
		return nil
	}, nil
}

// firstWidth is the width of the input's first good vector record (0 for
// texts).
func firstWidth(in Input) (int, error) {
	if !in.Vectors {
		return 0, nil
	}
	src, err := in.open(Shard{0, 1})
	if err != nil {
		return 0, err
	}
	defer src.close()
	for {
		var r Record
		ok, err := src.next(&r)
		if err != nil || !ok {
			return 0, err
		}
		if r.Err == "" {
			return len(r.Vector), nil
		}
	}
}

// mapNPY maps a C-order little-endian float32 .npy and its ids file.
func mapNPY(path, idsPath string) (*vectors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	defer f.Close()
	rows, dim, off, err := readNPYShape(f)
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	if want := off + int64(rows)*int64(dim)*4; st.Size() != want {
		return nil, fmt.Errorf("embedd/jobs: %s: %d bytes, the shape (%d, %d) needs %d", path, st.Size(), rows, dim, want)
	}
	v := &vectors{m: flat.Matrix{Dim: max(dim, 1)}}
	if rows > 0 && dim > 0 {
		if v.mem, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return nil, fmt.Errorf("embedd/jobs: mapping %s: %w", path, err)
		}
		unix.Madvise(v.mem, unix.MADV_WILLNEED)
		v.m.Data = unsafe.Slice((*float32)(unsafe.Pointer(&v.mem[off])), rows*dim)
	}
	v.rows = rows
	if idsPath == "" {
		return v, nil
	}
	if v.ids, err = mapIDs(idsPath, rows); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// mapIDs maps an ids file of rows lines.
func mapIDs(path string, rows int) (idList, error) {
	var l idList
	f, err := os.Open(path)
	if err != nil {
		return l, fmt.Errorf("embedd/jobs: ids: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return l, fmt.Errorf("embedd/jobs: ids: %w", err)
	}
	if st.Size() >= 1<<32 {
		return l, fmt.Errorf("embedd/jobs: ids %s: %d bytes is over 4 GiB", path, st.Size())
	}
	l.off = make([]uint32, 1, rows+1)
	if st.Size() > 0 {
		if l.mem, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return l, fmt.Errorf("embedd/jobs: mapping %s: %w", path, err)
		}
	}
	for i, c := range l.mem {
		if c == '\n' {
			l.off = append(l.off, uint32(i+1))
		}
	}
	if len(l.off)-1 != rows || len(l.mem) > 0 && l.mem[len(l.mem)-1] != '\n' {
		unmap(l.mem)
		return idList{}, fmt.Errorf("embedd/jobs: ids %s: %d lines for %d rows", path, len(l.off)-1, rows)
	}
	return l, nil
}

// readNPYShape reads a .npy header: '<f4', C order, two dimensions.
func readNPYShape(f *os.File) (rows, dim int, dataOff int64, err error) {
	h, err := index.ReadNPYHeader(f)
	if err != nil {
		return 0, 0, 0, err
	}
	if h.Descr != "<f4" || h.Fortran {
		return 0, 0, 0, fmt.Errorf("descr %q, fortran_order %v: want little-endian float32 ('<f4') in C order", h.Descr, h.Fortran)
	}
	if len(h.Shape) != 2 {
		return 0, 0, 0, fmt.Errorf("shape %v is not two dimensions", h.Shape)
	}
	if dataOff, err = f.Seek(0, io.SeekCurrent); err != nil {
		return 0, 0, 0, err
	}
	return h.Shape[0], h.Shape[1], dataOff, nil
}

// checkUnit refuses a matrix whose rows are not unit length (cosine scores
// of the mapped rows would be wrong).
func checkUnit(m flat.Matrix) error {
	for r := range len(m.Data) / m.Dim {
		if n := vec.SquaredNorm(m.Data[r*m.Dim : (r+1)*m.Dim]); math.Abs(float64(n)-1) > 1e-3 {
			return fmt.Errorf("embedd/jobs: row %d has norm %g: cosine over an .npy needs unit rows (use --metric dot, or JSONL/Parquet input, which is normalised)", r, math.Sqrt(float64(n)))
		}
	}
	return nil
}

// selfTopK writes each row of a with its K best other rows. A row's
// partners come from every block (S = XXᵀ is computed a triangle at a
// time), so the heaps of all rows are held to the end, checkpointed to
// pairs/heaps.bin and resumed from there; a shard leaves its share there.
func (p *PairsJob) selfTopK(ctx context.Context, dir string, a *vectors, tot *PairsTotals) error {
	// The join's state always goes to heaps.bin, and the output is read
	// back from there a row at a time: no copy of every row's hits is
	// made. Without a job directory only the final state is written.
	o := flat.JoinOptions{Metric: p.Metric, K: p.K, Workers: p.Workers, BlockRows: p.BlockRows, CheckpointEvery: p.CheckpointEvery, NoHits: true}
	if p.Dir == "" {
		o.CheckpointEvery = math.MaxInt64
	}
	nblocks := o.Blocks(a.rows, a.m.Dim)
	state := filepath.Join(dir, "pairs", "heaps.bin")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	var err error
	if o.Resume, err = readHeaps(state, nblocks, a.rows, p.K); err != nil {
		return err
	}
	o.Checkpoint = func(st *flat.JoinState) error {
		if p.Dir != "" { // else the one state written is how the output is read
			tot.Checkpoints++
		}
		return writeHeaps(state, st, a.rows, p.K)
	}
	p.shardBlocks(&o, nblocks)
	o.Done = p.blockDone
	stop := p.reportJoin(&o, a.rows, a.m.Dim, func(b int) bool { return o.Resume != nil && o.Resume.Done[b] }, tot)
	_, err = flat.SelfJoin(ctx, a.m, o)
	stop()
	if err != nil {
		return fmt.Errorf("embedd/jobs: pairs: %w", err)
	}
	st, err := readHeaps(state, nblocks, a.rows, p.K)
	if err != nil {
		return err
	}
	if st == nil {
		// No block was scored (a shard without blocks), so no checkpoint
		// was taken: Merge still finds the (empty) share.
		st = flat.StateOf(make([]bool, nblocks), nil)
		if err := writeHeaps(state, st, a.rows, p.K); err != nil {
			return err
		}
	}
	if p.Shard.Count == 1 {
		if err := p.writeNeighbors(st.Rows, a.rows, a.ids, a.ids, tot); err != nil {
			return err
		}
	}
	return p.shardDone(nblocks, tot)
}

// writeNeighbors writes each of the rows rows with its hits as
// {"id","neighbors"} lines, best first (rows streams them, ascending; a
// row it leaves out has none).
func (p *PairsJob) writeNeighbors(rows func(func(int, []flat.Hit) error) error, n int, ids, partners idList, tot *PairsTotals) error {
	out := p.Output
	out.Format, out.ErrorsPath = OutputNeighbors, ""
	s, err := out.open()
	if err != nil {
		return err
	}
	var r Result
	next := 0
	write := func(row int, hs []flat.Hit) error {
		r.ID, r.Neighbors = ids.get(row), r.Neighbors[:0]
		for _, h := range flat.MergeHits(nil, hs, p.K) { // best first
			r.Neighbors = append(r.Neighbors, Neighbor{ID: partners.get(h.Row), Score: h.Score})
		}
		if err := s.write(&r); err != nil {
			return fmt.Errorf("embedd/jobs: writing output: %w", err)
		}
		tot.Pairs += int64(len(hs))
		return nil
	}
	err = rows(func(row int, hs []flat.Hit) error {
		for ; next < row; next++ {
			if err := write(next, nil); err != nil {
				return err
			}
		}
		next = row + 1
		return write(row, hs)
	})
	for ; err == nil && next < n; next++ {
		err = write(next, nil)
	}
	if err != nil {
		s.abort()
		return err
	}
	tot.Written = int64(n)
	return s.commit()
}

// shardBlocks leaves out the blocks of other shards: the blocks are dealt
// to shards 0, 1, …, n-1, then n-1, …, 0, and so on, so that each gets
// about the same work though a self-join's later blocks are smaller.
func (p *PairsJob) shardBlocks(o *flat.JoinOptions, nblocks int) {
	if p.Shard.Count < 2 {
		return
	}
	sh, skip := p.Shard, o.SkipBlock
	o.SkipBlock = func(b int) bool { return blockShard(b, sh.Count) != sh.Index || skip != nil && skip(b) }
}

// blockShard is the shard of n that block b is dealt to.
func blockShard(b, n int) int {
	if round, i := b/n, b%n; round%2 == 1 {
		return n - 1 - i
	}
	return b % n
}

// shardDone marks the job directory complete for Merge (none for a
// temporary one).
func (p *PairsJob) shardDone(nblocks int, tot *PairsTotals) error {
	if p.Dir == "" {
		return nil
	}
	return writeJSONAtomic(filepath.Join(p.Dir, "done.json"), doneFile{Parts: nblocks, Read: tot.Read, Failed: tot.Failed, RowsA: tot.RowsA, RowsB: tot.RowsB})
}

// reportJoin reports the join's progress about every second until stop is
// called: Read is the rows of the shard's blocks, Done those of its blocks
// complete, counting the ones resumed (resumed(b) says block b was done
// before; their rows are added to tot.Resumed).
func (p *PairsJob) reportJoin(o *flat.JoinOptions, rows, dim int, resumed func(b int) bool, tot *PairsTotals) (stop func()) {
	br := o.RowsPerBlock(dim)
	var total int64
	var done atomic.Int64
	for b := range o.Blocks(rows, dim) {
		if p.Shard.Count > 1 && blockShard(b, p.Shard.Count) != p.Shard.Index {
			continue
		}
		n := int64(min(br, rows-b*br))
		total += n
		if resumed(b) {
			done.Add(n)
		}
	}
	tot.Resumed += done.Load()
	if p.Progress == nil {
		return func() {}
	}
	prev := o.Done
	o.Done = func(b int) {
		done.Add(int64(min(br, rows-b*br)))
		if prev != nil {
			prev(b)
		}
	}
	start := time.Now()
	stopped := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.Progress(Progress{Read: total, Done: done.Load(), Elapsed: time.Since(start)})
			case <-stopped:
				p.Progress(Progress{Read: total, Done: done.Load(), Elapsed: time.Since(start), Final: true})
				return
			}
		}
	}()
	return func() {
		close(stopped)
		<-finished
	}
}

// blocks runs a join block by block into part files (one per block of a,
// resumable) and writes them in order: each row's K best of b, the
// threshold pairs, or the dedup groups.
func (p *PairsJob) blocks(ctx context.Context, dir string, a, b *vectors, tot *PairsTotals) error {
	parts := filepath.Join(dir, "pairs")
	if err := os.MkdirAll(parts, 0o755); err != nil {
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	have, err := listParts(parts)
	if err != nil {
		return err
	}
	o := flat.JoinOptions{Metric: p.Metric, Threshold: p.Threshold, MaxBlockPairs: p.maxBlockPairs(), Workers: p.Workers, BlockRows: p.BlockRows,
		SkipBlock: func(blk int) bool { _, ok := have[blk]; return ok },
		Pairs: func(blk int, pairs []flat.Pair, truncated bool) error {
			return writePart(parts, blk, groupPairs(pairs, truncated))
		}}
	if p.K > 0 {
		o.K, o.Pairs = p.K, nil
		o.Rows = func(blk, first int, hits [][]flat.Hit) error {
			res := make([]Result, len(hits))
			for i, hs := range hits {
				res[i].Line = int64(first+i) + 1
				for _, h := range hs {
					res[i].Neighbors = append(res[i].Neighbors, Neighbor{ID: strconv.Itoa(h.Row), Score: h.Score})
				}
			}
			return writePart(parts, blk, res)
		}
	}
	nblocks := o.Blocks(a.rows, a.m.Dim)
	p.shardBlocks(&o, nblocks)
	stop := p.reportJoin(&o, a.rows, a.m.Dim, func(b int) bool { _, ok := have[b]; return ok }, tot)
	if p.Against == nil {
		_, err = flat.SelfJoin(ctx, a.m, o)
	} else {
		_, err = flat.Join(ctx, a.m, b.m, o)
	}
	stop()
	if err != nil {
		return fmt.Errorf("embedd/jobs: pairs: %w", err)
	}
	if p.Shard.Count == 1 {
		if have, err = listParts(parts); err != nil {
			return err
		}
		if err := p.writeBlocks(nblocks, func(int) (string, map[int]int) { return parts, have }, a.rows, a.ids, b.ids, tot); err != nil {
			return err
		}
	}
	return p.shardDone(nblocks, tot)
}

// maxBlockPairs is the most threshold pairs a block keeps.
func (p *PairsJob) maxBlockPairs() int {
	if p.MaxPairs > 0 && !p.Dedup {
		return int(min(p.MaxPairs, 10_000_000))
	}
	return 10_000_000
}

// writeBlocks writes the part files of blocks 0 to nblocks-1 (block blk's
// in parts(blk): a directory and its complete parts), in order, to the
// output: each row's K best of b, the threshold pairs (at most MaxPairs),
// or the dedup groups. rows and ids are a's, partners b's ids.
func (p *PairsJob) writeBlocks(nblocks int, parts func(blk int) (string, map[int]int), rows int, ids, partners idList, tot *PairsTotals) error {
	out := p.Output
	out.ErrorsPath = ""
	switch {
	case p.K > 0:
		out.Format = OutputNeighbors
	case p.Dedup:
		out.Format = OutputGroups
	default:
		out.Format = OutputPairs
	}
	s, err := out.open()
	if err != nil {
		return err
	}
	var uf []int32
	if p.Dedup {
		uf = make([]int32, rows)
		for i := range uf {
			uf[i] = int32(i)
		}
	}
	for blk := range nblocks {
		dir, have := parts(blk)
		n, ok := have[blk]
		if !ok {
			s.abort()
			return fmt.Errorf("%w: pairs block %d is missing from %s", ErrIncomplete, blk, dir)
		}
		err := readPart(filepath.Join(dir, partName(blk, n)), n, func(r *Result) error {
			if r.Err != "" {
				tot.Capped = true
				return nil
			}
			ra := int32(r.Line - 1)
			if p.Dedup {
				for _, nb := range r.Neighbors {
					rb, _ := strconv.Atoi(nb.ID) // written by groupPairs
					union(uf, ra, int32(rb))
				}
				tot.Pairs += int64(len(r.Neighbors))
				return nil
			}
			r.ID = ids.get(int(ra))
			for k := range r.Neighbors {
				rb, _ := strconv.Atoi(r.Neighbors[k].ID)
				r.Neighbors[k].ID = partners.get(rb)
			}
			if p.K == 0 && p.MaxPairs > 0 && tot.Pairs+int64(len(r.Neighbors)) > p.MaxPairs {
				r.Neighbors = r.Neighbors[:p.MaxPairs-tot.Pairs]
				tot.Capped = true
			}
			tot.Pairs += int64(len(r.Neighbors))
			return s.write(r)
		})
		if err != nil {
			s.abort()
			return err
		}
	}
	switch {
	case p.Dedup:
		tot.Written, err = writeGroups(s, uf, ids)
		if err != nil {
			s.abort()
			return err
		}
	case p.K > 0:
		tot.Written = int64(rows)
	default:
		tot.Written = tot.Pairs
	}
	return s.commit()
}

// mergePairs writes the output of a sharded pairs job from its shards' job
// directories (dirs[i] is shard i's) as one process would: the shards'
// heaps merged, or their blocks' parts in order.
func mergePairs(dirs []string, m manifest, done doneFile, out Output) (Totals, error) {
	k, err1 := strconv.Atoi(m.Params["k"])
	maxPairs, err2 := strconv.ParseInt(m.Params["max-pairs"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Totals{}, fmt.Errorf("embedd/jobs: merge: %s's manifest: %w", dirs[0], err)
	}
	p := PairsJob{K: k, Dedup: m.Params["dedup"] == "true", MaxPairs: maxPairs, Output: out}
	tot := PairsTotals{Totals: Totals{Read: done.Read, Failed: done.Failed}, RowsA: done.RowsA, RowsB: done.RowsB}
	against := m.Params["against"] != ""
	ids, err := shardIDs(dirs[0], m.Input.Path, m.Params["ids"], "a", done.RowsA)
	if err != nil {
		return tot.Totals, err
	}
	defer unmap(ids.mem)
	partners := ids
	if against {
		if partners, err = shardIDs(dirs[0], m.Params["against"], m.Params["against-ids"], "b", done.RowsB); err != nil {
			return tot.Totals, err
		}
		defer unmap(partners.mem)
	}
	nblocks, n := done.Parts, len(dirs)
	if k > 0 && !against {
		states := make([]*flat.JoinState, n)
		for i, dir := range dirs {
			st, err := readHeaps(filepath.Join(dir, "pairs", "heaps.bin"), nblocks, done.RowsA, k)
			if err == nil && st == nil {
				err = fmt.Errorf("%w: %s has no pairs/heaps.bin", ErrIncomplete, dir)
			}
			for b := 0; err == nil && b < nblocks; b++ {
				if blockShard(b, n) == i && !st.Done[b] {
					err = fmt.Errorf("%w: %s has not done block %d", ErrIncomplete, dir, b)
				}
			}
			if err != nil {
				return tot.Totals, err
			}
			states[i] = st
		}
		err = p.writeNeighbors(mergedRows(states, k), done.RowsA, ids, partners, &tot)
		return tot.Totals, err
	}
	haves := make([]map[int]int, n)
	for i, dir := range dirs {
		if haves[i], err = listParts(filepath.Join(dir, "pairs")); err != nil {
			return tot.Totals, err
		}
	}
	parts := func(blk int) (string, map[int]int) {
		i := blockShard(blk, n)
		return filepath.Join(dirs[i], "pairs"), haves[i]
	}
	err = p.writeBlocks(nblocks, parts, done.RowsA, ids, partners, &tot)
	return tot.Totals, err
}

// mergedRows streams each row's best of the shards' states, reading them
// side by side a row at a time (every state has every row, in order), so
// that a merge holds no copy of every row's hits.
func mergedRows(states []*flat.JoinState, k int) func(func(int, []flat.Hit) error) error {
	return func(fn func(int, []flat.Hit) error) error {
		type shard struct {
			next func() (int, []flat.Hit, bool)
			err  error
		}
		shards := make([]*shard, len(states))
		for i, st := range states {
			sh := &shard{}
			next, stop := iter.Pull2(func(yield func(int, []flat.Hit) bool) {
				sh.err = st.Rows(func(r int, hs []flat.Hit) error {
					if !yield(r, hs) {
						return errStopped
					}
					return nil
				})
			})
			defer stop()
			sh.next, shards[i] = next, sh
		}
		var merged []flat.Hit
		for r := 0; ; r++ {
			merged = nil
			for i, sh := range shards {
				row, hs, ok := sh.next()
				switch {
				case !ok && i == 0 && sh.err == nil:
					return nil // every row done (the others are checked to end too)
				case !ok:
					return cmp.Or(sh.err, fmt.Errorf("embedd/jobs: merge: shard %d's heaps end before row %d", i, r))
				case row != r:
					return fmt.Errorf("embedd/jobs: merge: shard %d's heaps have row %d where row %d belongs", i, row, r)
				}
				merged = flat.MergeHits(merged, hs, k)
			}
			if err := fn(r, merged); err != nil {
				return err
			}
		}
	}
}

// errStopped ends a state's Rows that a merge stopped reading.
var errStopped = errors.New("embedd/jobs: stopped")

// shardIDs are a pairs shard's ids of set name: an .npy input's ids file
// (none: row numbers), else the ids its conversion wrote in dir.
func shardIDs(dir, input, idsPath, name string, rows int) (idList, error) {
	if !strings.HasSuffix(input, ".npy") {
		idsPath = filepath.Join(dir, name+".npy.ids")
	}
	if idsPath == "" {
		return idList{}, nil
	}
	return mapIDs(idsPath, rows)
}

// groupPairs turns a block's sorted pairs into one Result per row of a
// (Line: the row + 1), its partners as neighbours whose IDs are their rows
// of b (translated to ids when written, so that dedup gets rows back); a
// truncated block ends with a failed Result saying so.
func groupPairs(pairs []flat.Pair, truncated bool) []Result {
	var res []Result
	for i := 0; i < len(pairs); {
		a := pairs[i].A
		r := Result{Line: int64(a) + 1}
		for ; i < len(pairs) && pairs[i].A == a; i++ {
			r.Neighbors = append(r.Neighbors, Neighbor{ID: strconv.Itoa(pairs[i].B), Score: pairs[i].Score})
		}
		res = append(res, r)
	}
	if truncated {
		res = append(res, Result{Err: "block's pairs truncated"})
	}
	return res
}

func find(uf []int32, x int32) int32 {
	for uf[x] != x {
		uf[x] = uf[uf[x]]
		x = uf[x]
	}
	return x
}

// union joins x's and y's groups under the smaller row, so each group's
// root is its first row.
func union(uf []int32, x, y int32) {
	rx, ry := find(uf, x), find(uf, y)
	switch {
	case rx < ry:
		uf[ry] = rx
	case ry < rx:
		uf[rx] = ry
	}
}

// writeGroups writes each group of two or more rows, in the order of its
// first row: the first row's id is kept, the others are its duplicates.
func writeGroups(s *sink, uf []int32, ids idList) (int64, error) {
	n := int32(len(uf))
	// Members of each root, rows ascending: counting sort by root.
	count := make([]int32, n+1)
	for i := range n {
		count[find(uf, i)+1]++
	}
	for i := range n {
		count[i+1] += count[i]
	}
	members := make([]int32, n)
	pos := slices.Clone(count[:n])
	for i := range n {
		r := find(uf, i)
		members[pos[r]] = i
		pos[r]++
	}
	var groups int64
	var r Result
	for root := range n {
		g := members[count[root]:count[root+1]]
		if len(g) < 2 {
			continue
		}
		r.ID, r.Neighbors = ids.get(int(root)), r.Neighbors[:0]
		for _, m := range g[1:] {
			r.Neighbors = append(r.Neighbors, Neighbor{ID: ids.get(int(m))})
		}
		if err := s.write(&r); err != nil {
			return groups, fmt.Errorf("embedd/jobs: writing output: %w", err)
		}
		groups++
	}
	return groups, nil
}

// ExportCollection writes collection name of the data directory dataDir
// to path as JSONL {"id","vector",…} lines (one snapshot, opened read-only,
// so a running server may keep writing), for a PairsInput. The file is
// renamed into place when complete; a collection that has not changed
// exports the same bytes, so a resumed job recognises it.
func ExportCollection(ctx context.Context, dataDir, name, path string) error {
	dir, err := index.CollectionDir(dataDir, name)
	if err != nil {
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	c, err := index.OpenReadOnly(dir)
	if err != nil {
		return fmt.Errorf("embedd/jobs: collection %s: %w", name, err)
	}
	defer c.Close()
	f, err := createAtomic(path, nil)
	if err != nil {
		return err
	}
	if _, err := c.ExportJSONL(ctx, f); err != nil {
		f.abort()
		return fmt.Errorf("embedd/jobs: exporting collection %s: %w", name, err)
	}
	return f.commit()
}
