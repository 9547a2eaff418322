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
// collection it has searched keeps a copy of its matrix (float32, or half
// with WithFP16), and a per-row bias vector, in device memory until the
// collection is released (index.Releaser) or the Backend is closed;
// collections beyond the device budget are streamed instead (doc.go). It
// is safe for concurrent use; device work is serialised on one compute
// stream (and, streaming, one copy stream).
type Backend struct {
	name string
	dev  *gpu.Device
	s    *gpu.Stream
	blas *gpu.BLAS
	topk *gpu.TopK
	opts options

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

	// Streaming (collections beyond budget, stream.go): a copy stream,
	// two pinned host chunks and two device chunks (rows and bias), and
	// per slot an event for "chunk copied" and one for "chunk searched".
	budget    int64
	copyS     *gpu.Stream
	copied    [2]*gpu.Event
	computed  [2]*gpu.Event
	pinned    [2]*gpu.PinnedBuffer
	chunkDev  [2]devBuf
	chunkBias [2]devBuf
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
// buffer, and for streaming a copy stream and its events. opts: WithFP16,
// WithDeviceBudget. lib must outlive the result; the caller closes the
// result with Close (before closing lib, and after closing every
// collection that uses it). A nil lib gives an error wrapping
// gpu.ErrNoCUDA.
func New(lib *gpu.Lib, ordinal int, opts ...Option) (_ *Backend, err error) {
	if lib == nil {
		return nil, fmt.Errorf("embedd/index/gpusearch: no CUDA library: %w", gpu.ErrNoCUDA)
	}
	b := &Backend{name: fmt.Sprintf("cuda:%d", ordinal), cols: make(map[uint64]*devMatrix), released: make(map[uint64]struct{})}
	for _, o := range opts {
		o(&b.opts)
	}
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
	if b.copyS, err = gpu.NewStream(b.dev); err != nil {
		return nil, err
	}
	for j := range 2 {
		if b.copied[j], err = gpu.NewEvent(b.dev); err != nil {
			return nil, err
		}
		if b.computed[j], err = gpu.NewEvent(b.dev); err != nil {
			return nil, err
		}
	}
	b.budget = b.opts.budget
	if b.budget <= 0 {
		free, _, err := b.dev.MemGetInfo()
		if err != nil {
			return nil, err
		}
		b.budget = int64(float64(free) * defaultBudgetFraction)
	}
	return b, nil
}

// Name returns "cuda:N" for device ordinal N.
func (b *Backend) Name() string { return b.name }

// FP16 reports whether the device copies are stored as half (WithFP16).
func (b *Backend) FP16() bool { return b.opts.fp16 }

// elem returns the bytes of one stored element on the device: 2 for fp16
// storage, 4 for float32.
func (b *Backend) elem() int {
	if b.opts.fp16 {
		return 2
	}
	return 4
}

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
	for j := 1; j >= 0; j-- {
		errs = append(errs, b.chunkBias[j].Close(), b.chunkDev[j].Close(), b.pinned[j].Close())
	}
	for _, d := range []*devBuf{&b.outI, &b.outS, &b.scratch, &b.ones, &b.scores, &b.queries} {
		errs = append(errs, d.Close())
	}
	for j := 1; j >= 0; j-- {
		errs = append(errs, b.computed[j].Close(), b.copied[j].Close())
	}
	errs = append(errs, b.copyS.Close(), b.staging.Close(), b.topk.Close(), b.blas.Close(), b.s.Close(), b.dev.Close())
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
	if !fitsResident(n, dim, b.elem(), b.budget) {
		// Beyond the budget: stream it, and free a copy made when it fit.
		b.releaseLocked(m.Collection)
		return b.searchStreamed(ctx, m, q, queries, k, o)
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
		es := b.elem()
		capRows := 0
		if dm.data.b != nil {
			capRows = dm.data.b.Len() / (es * dim)
		}
		// Grow by doubling, but not past what the budget allows: a copy
		// within the budget must not fail for its spare capacity.
		if c := min(grownCap(capRows, up.To), max(up.To, int(b.budget/int64(es*dim+4)))); c > capRows {
			if err := dm.data.ensure(b.dev, b.s, es*dim*c, es*dim*dm.rows); err != nil {
				return nil, err
			}
		}
		if err := b.copyElems(dm.data.ptr().Add(es*dim*up.From), m.Data[up.From*dim:up.To*dim]); err != nil {
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
			dm.hostBias[r] = rowBias(o, m.Norms, r)
		}
		if err := b.copyIn(dm.bias.ptr().Add(4*lo), dm.hostBias[lo:hi]); err != nil {
			return nil, err
		}
		dm.lastSkip = applyMask(dm.lastSkip, o.Skip, lo, hi)
		dm.biasValid = max(dm.biasValid, hi)
	}
	return dm, nil
}

// rowBias is row r's entry of the bias vector: -Inf for a skipped row,
// -|r|²/2 for a live L2 row, 0 otherwise.
func rowBias(o flat.Options, norms []float32, r int) float32 {
	switch {
	case isSkipped(o.Skip, r):
		return float32(math.Inf(-1))
	case o.Metric == flat.L2:
		return -norms[r] / 2
	}
	return 0
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

// copyElems copies src to dst in the device storage format: as float32
// (copyIn), or for fp16 storage converted to half on the host, a staging
// buffer at a time, and waits.
func (b *Backend) copyElems(dst gpu.DevicePtr, src []float32) error {
	if !b.opts.fp16 {
		return b.copyIn(dst, src)
	}
	buf := b.staging.Bytes()
	h := halfView(buf)
	for off := 0; off < len(src); off += len(h) {
		n := min(len(h), len(src)-off)
		if err := toHalves(h, src[off:off+n]); err != nil {
			return err
		}
		if err := b.s.CopyHtoD(dst.Add(2*off), buf[:2*n]); err != nil {
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
	if err := b.queries.ensure(b.dev, b.s, b.elem()*len(q), 0); err != nil {
		return nil, err
	}
	if err := b.copyElems(b.queries.ptr(), q); err != nil {
		return nil, err
	}
	if err := b.scores.ensure(b.dev, b.s, 4*nq*n, 0); err != nil {
		return nil, err
	}
	if err := b.gemmScores(n, nq, dim, dm.data.ptr(), b.queries.ptr(), b.scores.ptr()); err != nil {
		return nil, err
	}
	if masked {
		if err := b.ensureOnes(nq); err != nil {
			return nil, err
		}
		if err := b.addBias(n, nq, dm.bias.ptr()); err != nil {
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

// ensureOnes makes the ones vector hold at least nq ones.
func (b *Backend) ensureOnes(nq int) error {
	if b.onesLen >= nq {
		return nil
	}
	if err := b.ones.ensure(b.dev, b.s, 4*nq, 0); err != nil {
		return err
	}
	ones := make([]float32, nq)
	for i := range ones {
		ones[i] = 1
	}
	if err := b.copyIn(b.ones.ptr(), ones); err != nil {
		return err
	}
	b.onesLen = nq
	return nil
}

// addBias queues S (column-major n×q, the scores) += bias (n×1) · onesᵀ
// (1×q), in fp32 whatever the storage. ensureOnes(nq) must have run.
func (b *Backend) addBias(n, nq int, bias gpu.DevicePtr) error {
	g := gpu.Gemm{TransA: gpu.OpN, TransB: gpu.OpN, M: n, N: nq, K: 1, LDA: n, LDB: 1, LDC: n}
	return b.blas.Sgemm(g, 1, bias, b.ones.ptr(), 1, b.scores.ptr())
}

// gemmScores queues S (nq×n, row-major fp32) = Q·Mᵀ for n stored rows at
// m and nq queries at q, both in the storage format: SGEMM for float32,
// GemmF16 (fp16 inputs, fp32 accumulation and output) for fp16.
func (b *Backend) gemmScores(n, nq, dim int, m, q, s gpu.DevicePtr) error {
	g := gpu.ScoresGemm(n, nq, dim)
	if b.opts.fp16 {
		return b.blas.GemmF16(g, 1, m, q, 0, s)
	}
	return b.blas.Sgemm(g, 1, m, q, 0, s)
}

var (
	_ index.Backend  = (*Backend)(nil)
	_ index.Releaser = (*Backend)(nil)
)
