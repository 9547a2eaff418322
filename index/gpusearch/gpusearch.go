package gpusearch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
)

// Backend is an index.Backend that searches on one CUDA device. Each
// collection it has searched keeps a float32 copy of its matrix, and a
// per-row bias vector, in device memory until the collection is released
// (index.Releaser) or the Backend is closed. It is safe for concurrent use;
// device work is serialised on one stream.
type Backend struct {
	name string
	dev  *gpu.Device
	s    *gpu.Stream
	blas *gpu.BLAS
	topk *gpu.TopK

	// mu guards everything below and serialises all device work: the
	// staging buffer, the scratch buffers and the stream are shared.
	mu     sync.Mutex
	closed bool
	cols   map[uint64]*devMatrix
	// released holds collections released while a search of one of their
	// snapshots may still come: such a search frees its copy at the end.
	released map[uint64]struct{}
	staging  *gpu.PinnedBuffer
	queries  devBuf // batch queries, q·dim float32
	scores   devBuf // q·n float32, row-major (ScoresGemm)
	ones     devBuf // q float32 ones: the rank-1 bias update's right factor
	scratch  devBuf // top-k scratch
	outS     devBuf // q·k float32
	outI     devBuf // q·k int32
	onesLen  int    // ones filled with 1.0 so far
}

// devMatrix is one collection's device copy.
type devMatrix struct {
	gen  uint64
	dim  int
	rows int // rows copied: the generation's first rows rows
	data devBuf

	// The bias vector: per row, -Inf for a skipped row, else -|r|²/2 for
	// L2 and 0 for cosine and dot. Scores get it added by a rank-1 GEMM,
	// which masks skipped rows on the device and turns q·r into flat's L2
	// ranking q·r - |r|²/2.
	metric    flat.Metric
	biasValid int       // rows whose device bias is current for lastSkip
	lastSkip  []uint64  // the bitmap the device bias was computed with
	hostBias  []float32 // host copy of the device bias
	bias      devBuf
}

// devBuf is a device buffer that grows.
type devBuf struct {
	b *gpu.DeviceBuffer
}

// ensure makes the buffer hold at least size bytes; keep bytes of the old
// contents are copied over on s when it grows.
func (d *devBuf) ensure(dev *gpu.Device, s *gpu.Stream, size, keep int) error {
	if d.b != nil && d.b.Len() >= size {
		return nil
	}
	nb, err := gpu.NewDeviceBuffer(dev, size)
	if err != nil {
		return err
	}
	if d.b != nil && keep > 0 {
		if err := s.CopyDtoD(nb.Ptr(), d.b.Ptr(), keep); err != nil {
			return errors.Join(err, nb.Close())
		}
		if err := s.Synchronize(); err != nil {
			return errors.Join(err, nb.Close())
		}
	}
	err = d.b.Close()
	d.b = nb
	return err
}

func (d *devBuf) ptr() gpu.DevicePtr { return d.b.Ptr() }

func (d *devBuf) Close() error {
	err := d.b.Close()
	d.b = nil
	return err
}

// New opens device ordinal of lib and prepares it for search: a stream, a
// cuBLAS handle, the top-k kernel (compiled with NVRTC) and a pinned staging
// buffer. lib must outlive the result; the caller closes the result with
// Close (before closing lib, and after closing every collection that uses
// it). A nil lib gives an error wrapping gpu.ErrNoCUDA.
func New(lib *gpu.Lib, ordinal int) (_ *Backend, err error) {
	if lib == nil {
		return nil, fmt.Errorf("embedd/index/gpusearch: no CUDA library: %w", gpu.ErrNoCUDA)
	}
	b := &Backend{name: fmt.Sprintf("cuda:%d", ordinal), cols: make(map[uint64]*devMatrix), released: make(map[uint64]struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("embedd/index/gpusearch: device %d: %w", ordinal, err), b.Close())
		}
	}()
	if b.dev, err = lib.Open(ordinal); err != nil {
		return nil, err
	}
	if b.s, err = gpu.NewStream(b.dev); err != nil {
		return nil, err
	}
	if b.blas, err = gpu.NewBLAS(b.s); err != nil {
		return nil, err
	}
	if b.topk, err = gpu.NewTopK(b.dev); err != nil {
		return nil, err
	}
	if b.staging, err = gpu.NewPinnedBuffer(b.dev, stagingBytes); err != nil {
		return nil, err
	}
	return b, nil
}

// Name returns "cuda:N" for device ordinal N.
func (b *Backend) Name() string { return b.name }

// Close frees every collection's device copy and the backend's device
// objects, in reverse order of creation, joining errors. It is nil-safe
// and idempotent. Searches must have returned.
func (b *Backend) Close() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for id, m := range b.cols {
		errs = append(errs, m.close())
		delete(b.cols, id)
	}
	for _, d := range []*devBuf{&b.outI, &b.outS, &b.scratch, &b.ones, &b.scores, &b.queries} {
		errs = append(errs, d.Close())
	}
	errs = append(errs, b.staging.Close(), b.topk.Close(), b.blas.Close(), b.s.Close(), b.dev.Close())
	return errors.Join(errs...)
}

func (m *devMatrix) close() error {
	return errors.Join(m.bias.Close(), m.data.Close())
}

// Release frees the device copy of a collection (index.Releaser). A later
// search of the collection copies it again.
func (b *Backend) Release(collection uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(collection)
	if !b.closed {
		b.released[collection] = struct{}{}
	}
}

// releaseLocked frees a collection's device copy. Called with mu held.
func (b *Backend) releaseLocked(collection uint64) {
	if m, ok := b.cols[collection]; ok {
		delete(b.cols, collection)
		_ = m.close() // nothing to do about a failed cudaFree here
	}
}

// Search implements index.Backend with flat.Search's result contract. k
// above gpu.MaxK (2,048) and empty matrices are served by flat.Search on
// the CPU.
func (b *Backend) Search(ctx context.Context, m index.Matrix, queries []float32, k int, o flat.Options) ([][]flat.Hit, error) {
	dim := m.Dim
	n := m.Rows
	if dim < 1 || n != len(m.Data)/dim || len(m.Data)%dim != 0 || len(queries)%dim != 0 || k < 1 ||
		o.Metric < flat.Cosine || o.Metric > flat.L2 || (o.Metric == flat.L2 && len(m.Norms) != n) ||
		n == 0 || k > gpu.MaxK || n >= 1<<31-1 || len(queries) == 0 {
		// Let flat validate, and serve what the device does not.
		return flat.Search(ctx, m.Matrix, queries, k, o)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q, err := prepareQueries(queries, dim, o.Metric)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("embedd/index/gpusearch: search on a closed Backend")
	}
	if _, ok := b.released[m.Collection]; ok {
		// A snapshot that outlived its collection's Close: search it, then
		// free the copy again.
		defer b.releaseLocked(m.Collection)
	}
	dm, err := b.sync(m, o)
	if err != nil {
		// The copy's bookkeeping may be off: start over next time.
		b.releaseLocked(m.Collection)
		return nil, fmt.Errorf("embedd/index/gpusearch: copying the matrix to %s: %w", b.name, err)
	}
	masked := o.Metric == flat.L2 || anySkipped(o.Skip, n)
	nq := len(q) / dim
	kk := min(k, n)
	res := make([][]flat.Hit, nq)
	size := batchSize(nq, n, kk, dim, scratchBudget, stagingBytes)
	for _, bt := range batches(nq, size) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hits, err := b.searchBatch(dm, n, q[bt[0]*dim:bt[1]*dim], kk, masked)
		if err != nil {
			return nil, fmt.Errorf("embedd/index/gpusearch: search on %s: %w", b.name, err)
		}
		for i, hs := range hits {
			res[bt[0]+i] = finish(hs, m.Matrix, queries[(bt[0]+i)*dim:(bt[0]+i+1)*dim], o)
		}
	}
	return res, nil
}

// sync brings the collection's device copy (matrix and bias) in step with
// m and o.Skip and returns it. Called with mu held.
func (b *Backend) sync(m index.Matrix, o flat.Options) (*devMatrix, error) {
	dm := b.cols[m.Collection]
	if dm == nil {
		dm = &devMatrix{}
		b.cols[m.Collection] = dm
	}
	dim, n := m.Dim, m.Rows
	if dm.dim != dim || dm.metric != o.Metric {
		dm.rows, dm.biasValid = 0, 0
	}
	up := planUpload(dm.gen, dm.rows, m.Generation, n)
	if up.Reset {
		dm.rows, dm.biasValid, dm.lastSkip, dm.hostBias = 0, 0, nil, nil
		dm.gen, dm.dim, dm.metric = m.Generation, dim, o.Metric
	}
	if up.To > up.From {
		capRows := 0
		if dm.data.b != nil {
			capRows = dm.data.b.Len() / (4 * dim)
		}
		if c := grownCap(capRows, up.To); c > capRows {
			if err := dm.data.ensure(b.dev, b.s, 4*dim*c, 4*dim*dm.rows); err != nil {
				return nil, err
			}
		}
		if err := b.copyIn(dm.data.ptr().Add(4*dim*up.From), m.Data[up.From*dim:up.To*dim]); err != nil {
			return nil, err
		}
		dm.rows = up.To
	}
	biasCap := 0
	if dm.bias.b != nil {
		biasCap = dm.bias.b.Len() / 4
	}
	if c := grownCap(biasCap, n); c > biasCap {
		if err := dm.bias.ensure(b.dev, b.s, 4*c, 4*dm.biasValid); err != nil {
			return nil, err
		}
	}
	// The bias: only rows whose skip bit changed, and new rows.
	lo, hi := maskDiff(dm.lastSkip, o.Skip, dm.biasValid, n)
	if hi > lo {
		if len(dm.hostBias) < hi {
			dm.hostBias = slices.Grow(dm.hostBias, hi-len(dm.hostBias))[:hi]
		}
		for r := lo; r < hi; r++ {
			switch {
			case isSkipped(o.Skip, r):
				dm.hostBias[r] = float32(math.Inf(-1))
			case o.Metric == flat.L2:
				dm.hostBias[r] = -m.Norms[r] / 2
			default:
				dm.hostBias[r] = 0
			}
		}
		if err := b.copyIn(dm.bias.ptr().Add(4*lo), dm.hostBias[lo:hi]); err != nil {
			return nil, err
		}
		dm.lastSkip = applyMask(dm.lastSkip, o.Skip, lo, hi)
		dm.biasValid = max(dm.biasValid, hi)
	}
	return dm, nil
}

// copyIn copies src to dst through the pinned staging buffer and waits.
func (b *Backend) copyIn(dst gpu.DevicePtr, src []float32) error {
	buf := b.staging.Bytes()
	all := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src))
	for off := 0; off < len(all); off += len(buf) {
		n := copy(buf, all[off:])
		if err := b.s.CopyHtoD(dst.Add(off), buf[:n]); err != nil {
			return err
		}
		if err := b.s.Synchronize(); err != nil {
			return err
		}
	}
	return nil
}

// candidate is a top-k result as the device returns it.
type candidate struct {
	row   int32
	score float32
}

// searchBatch scores the queries q (prepared, row-major) against the first
// n rows of dm and returns each one's kk best (row -1 past the end), best
// first. Called with mu held.
func (b *Backend) searchBatch(dm *devMatrix, n int, q []float32, kk int, masked bool) ([][]candidate, error) {
	dim := dm.dim
	nq := len(q) / dim
	if err := b.queries.ensure(b.dev, b.s, 4*len(q), 0); err != nil {
		return nil, err
	}
	if err := b.copyIn(b.queries.ptr(), q); err != nil {
		return nil, err
	}
	if err := b.scores.ensure(b.dev, b.s, 4*nq*n, 0); err != nil {
		return nil, err
	}
	if err := b.blas.Sgemm(gpu.ScoresGemm(n, nq, dim), 1, dm.data.ptr(), b.queries.ptr(), 0, b.scores.ptr()); err != nil {
		return nil, err
	}
	if masked {
		if b.onesLen < nq {
			if err := b.ones.ensure(b.dev, b.s, 4*nq, 0); err != nil {
				return nil, err
			}
			ones := make([]float32, nq)
			for i := range ones {
				ones[i] = 1
			}
			if err := b.copyIn(b.ones.ptr(), ones); err != nil {
				return nil, err
			}
			b.onesLen = nq
		}
		// S (column-major n×q) += bias (n×1) · onesᵀ (1×q).
		g := gpu.Gemm{TransA: gpu.OpN, TransB: gpu.OpN, M: n, N: nq, K: 1, LDA: n, LDB: 1, LDC: n}
		if err := b.blas.Sgemm(g, 1, dm.bias.ptr(), b.ones.ptr(), 1, b.scores.ptr()); err != nil {
			return nil, err
		}
	}
	if err := b.scratch.ensure(b.dev, b.s, max(gpu.TopKScratchBytes(nq, n, kk), 1), 0); err != nil {
		return nil, err
	}
	if err := b.outS.ensure(b.dev, b.s, 4*nq*kk, 0); err != nil {
		return nil, err
	}
	if err := b.outI.ensure(b.dev, b.s, 4*nq*kk, 0); err != nil {
		return nil, err
	}
	if err := b.topk.Run(b.s, b.scores.ptr(), nq, n, kk, b.outS.ptr(), b.outI.ptr(), b.scratch.ptr()); err != nil {
		return nil, err
	}
	buf := b.staging.Bytes()
	sz := 4 * nq * kk
	if err := b.s.CopyDtoH(buf[:sz], b.outS.ptr()); err != nil {
		return nil, err
	}
	if err := b.s.CopyDtoH(buf[sz:2*sz], b.outI.ptr()); err != nil {
		return nil, err
	}
	if err := b.s.Synchronize(); err != nil {
		return nil, err
	}
	scores := unsafe.Slice((*float32)(unsafe.Pointer(&buf[0])), nq*kk)
	rows := unsafe.Slice((*int32)(unsafe.Pointer(&buf[sz])), nq*kk)
	out := make([][]candidate, nq)
	for i := range out {
		c := make([]candidate, kk)
		for j := range c {
			c[j] = candidate{row: rows[i*kk+j], score: scores[i*kk+j]}
		}
		out[i] = c
	}
	return out, nil
}

var (
	_ index.Backend  = (*Backend)(nil)
	_ index.Releaser = (*Backend)(nil)
)
