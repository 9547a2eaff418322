package jobs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/embedd/embedd/index/flat"
)

// A self-join's top k is resumed from pairs/heaps.bin, its state (every
// row's best partners so far and the blocks done), written under a
// temporary name and renamed at each checkpoint; a shard of the join
// leaves its share there for Merge. The file: "EJH1"; uvarints blocks,
// rows, k; the done blocks as a bitmap of ceil(blocks/8) bytes; per row a
// uvarint count and that many (uvarint row, little-endian float32 score);
// then the CRC-32C of everything before it, little-endian.
const heapsMagic = "EJH1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeHeaps writes st (a join of k) to path, atomically.
func writeHeaps(path string, st *flat.JoinState, k int) error {
	f, err := createAtomic(path, nil)
	if err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var tmp []byte
	tmp = append(tmp, heapsMagic...)
	tmp = binary.AppendUvarint(tmp, uint64(len(st.Done)))
	tmp = binary.AppendUvarint(tmp, uint64(len(st.Hits)))
	tmp = binary.AppendUvarint(tmp, uint64(k))
	bits := make([]byte, (len(st.Done)+7)/8)
	for b, done := range st.Done {
		if done {
			bits[b/8] |= 1 << (b % 8)
		}
	}
	tmp = append(tmp, bits...)
	w.Write(tmp)
	for _, hs := range st.Hits {
		tmp = binary.AppendUvarint(tmp[:0], uint64(len(hs)))
		for _, h := range hs {
			tmp = binary.AppendUvarint(tmp, uint64(h.Row))
			tmp = binary.LittleEndian.AppendUint32(tmp, math.Float32bits(h.Score))
		}
		w.Write(tmp)
	}
	err = w.Flush()
	if err == nil {
		_, err = f.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
	}
	if err != nil {
		f.abort()
		return fmt.Errorf("embedd/jobs: writing %s: %w", path, err)
	}
	return f.commit()
}

// readHeaps reads path's state of a join of blocks blocks, rows rows and
// k; a missing file is a nil state (nothing done yet).
func readHeaps(path string, blocks, rows, k int) (*flat.JoinState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	bad := func(what string) error {
		return fmt.Errorf("embedd/jobs: %s is damaged (%s): remove it to start the join over", path, what)
	}
	if len(b) < len(heapsMagic)+4 || string(b[:len(heapsMagic)]) != heapsMagic {
		return nil, bad("no header")
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, bad("checksum")
	}
	p := body[len(heapsMagic):]
	uv := func() uint64 {
		x, n := binary.Uvarint(p)
		if n <= 0 {
			p = nil
			return math.MaxUint64
		}
		p = p[n:]
		return x
	}
	nb, nr, nk := uv(), uv(), uv()
	if nb != uint64(blocks) || nr != uint64(rows) || nk != uint64(k) {
		return nil, fmt.Errorf("%w: %s holds a join of %d blocks, %d rows, k %d; this one has %d, %d, %d", ErrMismatch, path, nb, nr, nk, blocks, rows, k)
	}
	nbits := (blocks + 7) / 8
	if len(p) < nbits {
		return nil, bad("short")
	}
	st := &flat.JoinState{Done: make([]bool, blocks), Hits: make([][]flat.Hit, rows)}
	for i := range blocks {
		st.Done[i] = p[i/8]&(1<<(i%8)) != 0
	}
	p = p[nbits:]
	for r := range rows {
		n := uv()
		if n > uint64(k) {
			return nil, bad(fmt.Sprintf("row %d", r))
		}
		hs := make([]flat.Hit, n)
		for i := range hs {
			hs[i].Row = int(uv())
			if len(p) < 4 {
				return nil, bad(fmt.Sprintf("row %d", r))
			}
			hs[i].Score = math.Float32frombits(binary.LittleEndian.Uint32(p))
			p = p[4:]
		}
		st.Hits[r] = hs
	}
	if len(p) != 0 {
		return nil, bad("data after the last row")
	}
	return st, nil
}
