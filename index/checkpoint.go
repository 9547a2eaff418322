package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
)

// checkpoint is the durable state of a collection, the CHECKPOINT file: the
// generation whose data files hold it, the last WAL seq they include, their
// logical lengths and the rows deleted as of seq.
type checkpoint struct {
	gen       uint64
	seq       uint64
	rows      int
	idsBytes  int64
	metaBytes int64
	deleted   []uint64 // bitmap, (rows+63)/64 words
	ndeleted  int
	// sums are the data files' CRC-32C up to the lengths above (see
	// fileSums); a version 1 CHECKPOINT has none (hasSums false).
	sums    [numDataFiles]uint32
	hasSums bool
}

func (c checkpoint) encode() []byte {
	b := make([]byte, checkpointFixedSize, checkpointFixedSize+8*len(c.deleted)+4*numDataFiles+4)
	copy(b, checkpointMagic)
	version := uint32(checkpointVersion1)
	if c.hasSums {
		version = checkpointVersion
	}
	binary.LittleEndian.PutUint32(b[8:], version)
	binary.LittleEndian.PutUint32(b[12:], 0) // flags
	binary.LittleEndian.PutUint64(b[16:], c.gen)
	binary.LittleEndian.PutUint64(b[24:], c.seq)
	binary.LittleEndian.PutUint64(b[32:], uint64(c.rows))
	binary.LittleEndian.PutUint64(b[40:], uint64(c.idsBytes))
	binary.LittleEndian.PutUint64(b[48:], uint64(c.metaBytes))
	binary.LittleEndian.PutUint64(b[56:], uint64(c.ndeleted))
	binary.LittleEndian.PutUint64(b[64:], uint64(len(c.deleted)))
	for _, w := range c.deleted {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	if c.hasSums {
		for _, sum := range c.sums {
			b = binary.LittleEndian.AppendUint32(b, sum)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCheckpoint(b []byte, path string) (checkpoint, error) {
	var c checkpoint
	if len(b) < checkpointFixedSize+4 {
		return c, corruptf("%s is %d bytes, too short", path, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return c, corruptf("%s: checksum mismatch", path)
	}
	if string(b[:8]) != checkpointMagic {
		return c, corruptf("%s: magic %q, want %q", path, b[:8], checkpointMagic)
	}
	v := binary.LittleEndian.Uint32(b[8:])
	if v != checkpointVersion1 && v != checkpointVersion {
		return c, corruptf("%s: format version %d, want %d or %d", path, v, checkpointVersion1, checkpointVersion)
	}
	c.hasSums = v == checkpointVersion
	sumBytes := uint64(0)
	if c.hasSums {
		sumBytes = 4 * numDataFiles
	}
	c.gen = binary.LittleEndian.Uint64(b[16:])
	c.seq = binary.LittleEndian.Uint64(b[24:])
	rows := binary.LittleEndian.Uint64(b[32:])
	c.idsBytes = int64(binary.LittleEndian.Uint64(b[40:]))
	c.metaBytes = int64(binary.LittleEndian.Uint64(b[48:]))
	nd := binary.LittleEndian.Uint64(b[56:])
	words := binary.LittleEndian.Uint64(b[64:])
	if rows >= noRow || words != (rows+63)/64 || uint64(len(body)) != checkpointFixedSize+8*words+sumBytes || nd > rows {
		return c, corruptf("%s: rows %d, %d bitmap words and %d bytes do not agree", path, rows, words, len(b))
	}
	c.rows = int(rows)
	c.ndeleted = int(nd)
	c.deleted = make([]uint64, words)
	count := 0
	for i := range c.deleted {
		w := binary.LittleEndian.Uint64(body[checkpointFixedSize+8*i:])
		c.deleted[i] = w
		count += bits.OnesCount64(w)
	}
	if count != c.ndeleted {
		return c, corruptf("%s: bitmap has %d rows deleted, header says %d", path, count, c.ndeleted)
	}
	if c.hasSums {
		for f := range c.sums {
			c.sums[f] = binary.LittleEndian.Uint32(body[checkpointFixedSize+8*words+4*uint64(f):])
		}
	}
	return c, nil
}

// readCheckpoint reads dir/CHECKPOINT.
func readCheckpoint(dir string) (checkpoint, error) {
	path := filepath.Join(dir, checkpointName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{}, corruptf("%s is missing", path)
	}
	if err != nil {
		return checkpoint{}, fmt.Errorf("embedd/index: %w", err)
	}
	return decodeCheckpoint(b, path)
}

// writeCheckpoint replaces dir/CHECKPOINT atomically. The data files it
// names must already be durable.
func writeCheckpoint(dir string, c checkpoint) error {
	return writeFileAtomic(dir, checkpointName, c.encode())
}
