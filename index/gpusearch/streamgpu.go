package gpusearch

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
)

// searchStreamed serves a search of a collection beyond the device budget
// without a resident copy: per query batch, the rows stream through the
// device in chunks of chunkRows rows (the last may be short). Chunk i+1 is
// converted (fp16) or copied into a pinned host buffer and copied to the
// device on the copy stream while chunk i is scored and selected on the
// compute stream: two pinned and two device slots, the copy of a slot
// waiting (event "computed") for the search that last read it, the search
// of a slot waiting (event "copied") for its copy. Each chunk returns its
// k best per query (global rows), merged on the host into the running k
// best (mergeTop: best first, ties by smaller row), so the answer is the
// resident search's. q holds the prepared queries, queries the caller's.
// Called with mu held.
func (b *Backend) searchStreamed(ctx context.Context, m index.Matrix, q, queries []float32, k int, o flat.Options) ([][]flat.Hit, error) {
	dim, n, es := m.Dim, m.Rows, b.elem()
	rows := min(chunkRows(dim, es, streamChunkBytes, b.budget), n)
	chunks := batches(n, rows)
	masked := o.Metric == flat.L2 || anySkipped(o.Skip, n)
	biasOff := alignUp(es*dim*rows, 256)
	for j := range 2 {
		if b.pinned[j] == nil || len(b.pinned[j].Bytes()) < biasOff+4*rows {
			if err := b.pinned[j].Close(); err != nil {
				return nil, err
			}
			b.pinned[j] = nil
			p, err := gpu.NewPinnedBuffer(b.dev, biasOff+4*rows)
			if err != nil {
				return nil, fmt.Errorf("embedd/index/gpusearch: streaming on %s: %w", b.name, err)
			}
			b.pinned[j] = p
		}
		if err := b.chunkDev[j].ensure(b.dev, b.s, es*dim*rows, 0); err != nil {
			return nil, fmt.Errorf("embedd/index/gpusearch: streaming on %s: %w", b.name, err)
		}
		if err := b.chunkBias[j].ensure(b.dev, b.s, 4*rows, 0); err != nil {
			return nil, fmt.Errorf("embedd/index/gpusearch: streaming on %s: %w", b.name, err)
		}
	}
	nq := len(q) / dim
	kmax := min(k, rows)
	// Results of two chunks are in flight: each gets half the staging.
	size := batchSize(nq, rows, kmax, dim, scratchBudget, stagingBytes/2)
	res := make([][]flat.Hit, nq)
	for _, bt := range batches(nq, size) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		best, err := b.streamBatch(m, o, q[bt[0]*dim:bt[1]*dim], k, chunks, biasOff, masked)
		if err != nil {
			return nil, fmt.Errorf("embedd/index/gpusearch: streamed search on %s: %w", b.name, err)
		}
		for i, hs := range best {
			res[bt[0]+i] = finish(hs, m.Matrix, queries[(bt[0]+i)*dim:(bt[0]+i+1)*dim], o)
		}
	}
	return res, nil
}

// streamBatch runs one query batch over every chunk and returns each
// query's k best (no padding), best first. Called with mu held.
func (b *Backend) streamBatch(m index.Matrix, o flat.Options, q []float32, k int, chunks [][2]int, biasOff int, masked bool) (_ [][]candidate, err error) {
	dim, es := m.Dim, b.elem()
	nq := len(q) / dim
	rows := chunks[0][1] - chunks[0][0]
	kmax := min(k, rows)
	defer func() {
		if err != nil {
			// Leave no copy or kernel in flight on the shared buffers.
			err = errors.Join(err, b.copyS.Synchronize(), b.s.Synchronize())
		}
	}()
	if err := b.queries.ensure(b.dev, b.s, es*len(q), 0); err != nil {
		return nil, err
	}
	if err := b.copyElems(b.queries.ptr(), q); err != nil {
		return nil, err
	}
	if err := b.scores.ensure(b.dev, b.s, 4*nq*rows, 0); err != nil {
		return nil, err
	}
	last := chunks[len(chunks)-1]
	scratch := max(gpu.TopKScratchBytes(nq, rows, kmax), gpu.TopKScratchBytes(nq, last[1]-last[0], min(k, last[1]-last[0])), 1)
	if err := b.scratch.ensure(b.dev, b.s, scratch, 0); err != nil {
		return nil, err
	}
	if err := b.outS.ensure(b.dev, b.s, 4*nq*kmax, 0); err != nil {
		return nil, err
	}
	if err := b.outI.ensure(b.dev, b.s, 4*nq*kmax, 0); err != nil {
		return nil, err
	}
	if masked {
		if err := b.ensureOnes(nq); err != nil {
			return nil, err
		}
	}
	// fill puts chunk i into slot i%2: on the host into the pinned
	// buffer, then to the device on the copy stream.
	fill := func(i int) error {
		j := i % 2
		lo, hi := chunks[i][0], chunks[i][1]
		c := hi - lo
		// The slot's previous copy (chunk i-2) has finished reading the
		// pinned buffer. An event never recorded is complete.
		if err := b.copied[j].Synchronize(); err != nil {
			return err
		}
		buf := b.pinned[j].Bytes()
		src := m.Data[lo*dim : hi*dim]
		if es == 2 {
			if err := toHalves(halfView(buf[:2*len(src)]), src); err != nil {
				return err
			}
		} else {
			copy(buf, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src)))
		}
		bias := unsafe.Slice((*float32)(unsafe.Pointer(&buf[biasOff])), c)
		if masked {
			for r := range bias {
				bias[r] = rowBias(o, m.Norms, lo+r)
			}
		}
		// The device slot is free once chunk i-2's search has run.
		if err := b.copyS.WaitEvent(b.computed[j]); err != nil {
			return err
		}
		if err := b.copyS.CopyHtoD(b.chunkDev[j].ptr(), buf[:es*dim*c]); err != nil {
			return err
		}
		if masked {
			if err := b.copyS.CopyHtoD(b.chunkBias[j].ptr(), buf[biasOff:biasOff+4*c]); err != nil {
				return err
			}
		}
		return b.copied[j].Record(b.copyS)
	}
	if err := fill(0); err != nil {
		return nil, err
	}
	staging := b.staging.Bytes()
	half := len(staging) / 2
	best := make([][]candidate, nq)
	for i, ch := range chunks {
		j := i % 2
		c := ch[1] - ch[0]
		kc := min(k, c)
		if err := b.s.WaitEvent(b.copied[j]); err != nil {
			return nil, err
		}
		if err := b.gemmScores(c, nq, dim, b.chunkDev[j].ptr(), b.queries.ptr(), b.scores.ptr()); err != nil {
			return nil, err
		}
		if masked {
			if err := b.addBias(c, nq, b.chunkBias[j].ptr()); err != nil {
				return nil, err
			}
		}
		if err := b.topk.Run(b.s, b.scores.ptr(), nq, c, kc, b.outS.ptr(), b.outI.ptr(), b.scratch.ptr()); err != nil {
			return nil, err
		}
		out := staging[j*half : (j+1)*half]
		sz := 4 * nq * kc
		if err := b.s.CopyDtoH(out[:sz], b.outS.ptr()); err != nil {
			return nil, err
		}
		if err := b.s.CopyDtoH(out[sz:2*sz], b.outI.ptr()); err != nil {
			return nil, err
		}
		if err := b.computed[j].Record(b.s); err != nil {
			return nil, err
		}
		// Overlap: the next chunk is prepared and copied while this one
		// is searched.
		if i+1 < len(chunks) {
			if err := fill(i + 1); err != nil {
				return nil, err
			}
		}
		if err := b.computed[j].Synchronize(); err != nil {
			return nil, err
		}
		scores := unsafe.Slice((*float32)(unsafe.Pointer(&out[0])), nq*kc)
		idx := unsafe.Slice((*int32)(unsafe.Pointer(&out[sz])), nq*kc)
		part := make([]candidate, kc)
		for qi := range best {
			for t := range part {
				part[t] = candidate{row: idx[qi*kc+t], score: scores[qi*kc+t]}
			}
			best[qi] = mergeTop(best[qi], chunkCandidates(part, ch[0]), k)
		}
	}
	return best, nil
}

// alignUp rounds n up to a multiple of a (a power of two).
func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }
