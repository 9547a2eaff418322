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
// then the CRC-32C of everything before it, little-endian. It is written
// and read a row at a time: no copy of the heaps is held.
const heapsMagic = "EJH1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeHeaps writes st, a join of rows rows and k, to path, atomically.
func writeHeaps(path string, st *flat.JoinState, rows, k int) error {
	f, err := createAtomic(path, nil)
	if err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	tmp := []byte(heapsMagic)
	tmp = binary.AppendUvarint(tmp, uint64(len(st.Done)))
	tmp = binary.AppendUvarint(tmp, uint64(rows))
	tmp = binary.AppendUvarint(tmp, uint64(k))
	bits := make([]byte, (len(st.Done)+7)/8)
	for b, done := range st.Done {
		if done {
			bits[b/8] |= 1 << (b % 8)
		}
	}
	w.Write(append(tmp, bits...))
	next := 0
	row := func(hs []flat.Hit) {
		tmp = binary.AppendUvarint(tmp[:0], uint64(len(hs)))
		for _, h := range hs {
			tmp = binary.AppendUvarint(tmp, uint64(h.Row))
			tmp = binary.LittleEndian.AppendUint32(tmp, math.Float32bits(h.Score))
		}
		w.Write(tmp)
	}
	err = st.Rows(func(r int, hs []flat.Hit) error {
		if r < next || r >= rows {
			return fmt.Errorf("row %d after row %d of %d", r, next-1, rows)
		}
		for ; next < r; next++ {
			row(nil)
		}
		row(hs)
		next++
		return nil
	})
	for ; err == nil && next < rows; next++ {
		row(nil)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		_, err = f.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
	}
	if err != nil {
		f.abort()
		return fmt.Errorf("embedd/jobs: writing %s: %w", path, err)
	}
	return f.commit()
}

// readHeaps opens path's state of a join of blocks blocks, rows rows and
// k, after checking its checksum; its Rows reads the file again, a row at
// a time. A missing file is a nil state (nothing done yet).
func readHeaps(path string, blocks, rows, k int) (*flat.JoinState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	defer f.Close()
	bad := func(what string) error {
		return fmt.Errorf("embedd/jobs: %s is damaged (%s): remove it to start the join over", path, what)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	size := st.Size() - 4
	crc := crc32.New(castagnoli)
	var sum [4]byte
	if size < int64(len(heapsMagic)) {
		return nil, bad("no header")
	}
	if _, err := io.CopyN(crc, f, size); err != nil {
		return nil, fmt.Errorf("embedd/jobs: %s: %w", path, err)
	}
	if _, err := io.ReadFull(f, sum[:]); err != nil || crc.Sum32() != binary.LittleEndian.Uint32(sum[:]) {
		return nil, bad("checksum")
	}
	// header reads the header of r (positioned at the start).
	header := func(r *bufio.Reader) ([]bool, error) {
		magic := make([]byte, len(heapsMagic))
		io.ReadFull(r, magic)
		nb, err1 := binary.ReadUvarint(r)
		nr, err2 := binary.ReadUvarint(r)
		nk, err3 := binary.ReadUvarint(r)
		if string(magic) != heapsMagic || errors.Join(err1, err2, err3) != nil {
			return nil, bad("no header")
		}
		if nb != uint64(blocks) || nr != uint64(rows) || nk != uint64(k) {
			return nil, fmt.Errorf("%w: %s holds a join of %d blocks, %d rows, k %d; this one has %d, %d, %d", ErrMismatch, path, nb, nr, nk, blocks, rows, k)
		}
		bits := make([]byte, (blocks+7)/8)
		if _, err := io.ReadFull(r, bits); err != nil {
			return nil, bad("short")
		}
		done := make([]bool, blocks)
		for i := range done {
			done[i] = bits[i/8]&(1<<(i%8)) != 0
		}
		return done, nil
	}
	f.Seek(0, io.SeekStart)
	done, err := header(bufio.NewReader(io.LimitReader(f, size)))
	if err != nil {
		return nil, err
	}
	return &flat.JoinState{Done: done, Rows: func(fn func(int, []flat.Hit) error) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("embedd/jobs: %w", err)
		}
		defer f.Close()
		r := bufio.NewReaderSize(io.LimitReader(f, size), 1<<20)
		if _, err := header(r); err != nil {
			return err
		}
		hs := make([]flat.Hit, 0, k)
		var b [4]byte
		for row := range rows {
			n, err := binary.ReadUvarint(r)
			if err != nil || n > uint64(k) {
				return bad(fmt.Sprintf("row %d", row))
			}
			hs = hs[:n]
			for i := range hs {
				p, err := binary.ReadUvarint(r)
				if _, err2 := io.ReadFull(r, b[:]); err != nil || err2 != nil || p > math.MaxInt32 {
					return bad(fmt.Sprintf("row %d", row))
				}
				hs[i] = flat.Hit{Row: int(p), Score: math.Float32frombits(binary.LittleEndian.Uint32(b[:]))}
			}
			if err := fn(row, hs); err != nil {
				return err
			}
		}
		if _, err := r.ReadByte(); err != io.EOF {
			return bad("data after the last row")
		}
		return nil
	}}, nil
}
