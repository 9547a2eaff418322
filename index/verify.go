package index

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
)

// VerifyReport says what Verify read.
type VerifyReport struct {
	// Files are the data files checked, Bytes how many bytes of them were
	// read (the WAL not counted).
	Files []string
	Bytes int64
	// NoChecksums says CHECKPOINT predates data-file checksums: only the
	// files' headers and lengths could be checked. The collection's next
	// checkpoint adds them.
	NoChecksums bool
}

// Verify checks the collection in dir without writing anything, beside a
// running writer too: the manifest, CHECKPOINT (its own checksum), every
// data file's header and its checksum up to the checkpointed length (the
// matrix included, which Open maps without reading), and the write-ahead
// log's records (damage before intact records fails as Open would; a torn
// tail does not). Any problem is an error wrapping ErrCorrupt that names
// the file (and offset, for the WAL).
func Verify(dir string) (VerifyReport, error) {
	man, err := readManifest(dir)
	if err != nil {
		return VerifyReport{}, err
	}
	// A writer's checkpoint or compaction may remove the files or WAL
	// segments of the checkpoint read first (a segment gone between listing
	// and reading reads as a gap in the sequence); then read it again.
	// Damage is what is found on verifyReads consecutive reads of an
	// unchanged CHECKPOINT: real damage stays where it is, a race with the
	// writer does not repeat.
	const verifyReads = 4
	sameDamage := 0
	for attempt := 0; ; attempt++ {
		rep, ck, err := verifyOnce(dir, man)
		if attempt < 50 {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errRetry) {
				continue
			}
			if errors.Is(err, ErrCorrupt) {
				if now, cerr := readCheckpoint(dir); cerr == nil && (now.seq != ck.seq || now.gen != ck.gen) {
					continue
				}
				if sameDamage++; sameDamage < verifyReads {
					continue
				}
			}
		}
		return rep, err
	}
}

// verifyOnce checks dir against the CHECKPOINT it reads, which it returns.
func verifyOnce(dir string, man manifest) (VerifyReport, checkpoint, error) {
	var rep VerifyReport
	ck, err := readCheckpoint(dir)
	if err != nil {
		return rep, ck, err
	}
	rep.NoChecksums = !ck.hasSums
	lengths := ck.lengths(man.Dim, man.Metric == L2)
	magics := [numDataFiles]string{vectorsMagic, normsMagic, idsMagic, metaMagic}
	dims := [numDataFiles]int{man.Dim, 1, 0, 0}
	for f, path := range generationFiles(dir, ck.gen) {
		if lengths[f] == 0 {
			continue // no norms file
		}
		if err := verifyFile(path, magics[f], dims[f], ck, lengths[f], ck.sums[f]); err != nil {
			return rep, ck, err
		}
		rep.Files = append(rep.Files, path)
		rep.Bytes += lengths[f]
	}
	_, err = replayWAL(dir, ck.seq, replayVerify, slog.New(slog.DiscardHandler), func(uint64, []byte) error { return nil })
	return rep, ck, err
}

// verifyFile checks the data file at path: its header, that it holds
// length bytes, and (when ck has sums) their checksum.
func verifyFile(path, magic string, dim int, ck checkpoint, length int64, sum uint32) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	defer f.Close()
	h := make([]byte, fileHeaderSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return corruptf("%s: header: %v", path, err)
	}
	if err := checkHeader(h, magic, dim, ck.gen, path); err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	crc.Write(h)
	n, err := io.CopyN(crc, f, length-fileHeaderSize)
	if err == io.EOF {
		return corruptf("%s is %d bytes, CHECKPOINT says %d", path, fileHeaderSize+n, length)
	}
	if err != nil {
		return fmt.Errorf("embedd/index: reading %s: %w", path, err)
	}
	if ck.hasSums && crc.Sum32() != sum {
		return sumMismatch(path, length, crc.Sum32(), sum)
	}
	return nil
}
