package index

import (
	"hash/crc32"
)

// The data files of a generation, as fileSums and dataViews index them.
const (
	fileVectors = iota
	fileNorms   // l2 collections only
	fileIDs
	fileMeta
	numDataFiles
)

// dataViews are a generation's data files as mapped, each cut at one
// checkpoint's logical length (header included; nil for a file the
// collection does not have). The bytes never change while the generation is
// referenced: rows are only appended past them.
type dataViews [numDataFiles][]byte

// fileSums are the CRC-32C (Castagnoli) of each data file's first n bytes.
// A checkpoint records them for its lengths (see doc.go); since data files
// are only appended to, the next checkpoint extends them with the bytes
// written since instead of reading the files again.
type fileSums struct {
	crc [numDataFiles]uint32
	n   [numDataFiles]int64
}

// extend brings the sums up to views' lengths.
func (s *fileSums) extend(views dataViews) {
	for f, b := range views {
		if int64(len(b)) > s.n[f] {
			s.crc[f] = crc32.Update(s.crc[f], castagnoli, b[s.n[f]:])
			s.n[f] = int64(len(b))
		}
	}
}

// lengths are the logical lengths of ck's data files, header included
// (zero for a file the collection does not have).
func (ck checkpoint) lengths(dim int, l2 bool) [numDataFiles]int64 {
	var n [numDataFiles]int64
	n[fileVectors] = fileHeaderSize + int64(ck.rows)*int64(dim)*4
	if l2 {
		n[fileNorms] = fileHeaderSize + int64(ck.rows)*4
	}
	n[fileIDs], n[fileMeta] = ck.idsBytes, ck.metaBytes
	return n
}

// viewsLocked returns g's data files cut at its writer's current lengths,
// the ones checkpointLocked records. The caller holds Collection.mu, or
// owns g alone (as stateLocked).
func (g *generation) viewsLocked() dataViews {
	var v dataViews
	n := g.checkpointLocked(0).lengths(g.dim, g.mat.norms != nil)
	v[fileVectors] = g.mat.vecs.bytes()[:n[fileVectors]]
	if g.mat.norms != nil {
		v[fileNorms] = g.mat.norms.bytes()[:n[fileNorms]]
	}
	v[fileIDs] = g.ids.file.bytes()[:n[fileIDs]]
	v[fileMeta] = g.meta.file.bytes()[:n[fileMeta]]
	return v
}

// sumLocked extends g's sums to views (taken with ck) and records them in
// ck. The caller holds Collection.ckptMu, or owns g alone.
func (g *generation) sumLocked(ck *checkpoint, views dataViews) {
	g.sums.extend(views)
	ck.sums, ck.hasSums = g.sums.crc, true
}

// checkSums compares the files of g that opening reads anyway (ids, meta,
// norms: small next to the matrix) with the sums ck recorded, and takes
// ck's sums as g's. The matrix is left to Verify: reading it all would turn
// an open that maps it (240 ms at 1M×384) into one that reads 1.5 GB.
func (g *generation) checkSums(ck checkpoint, views dataViews) error {
	if !ck.hasSums {
		return nil // written before checksums; the next checkpoint adds them
	}
	for _, f := range []int{fileNorms, fileIDs, fileMeta} {
		if views[f] == nil {
			continue
		}
		if got := crc32.Checksum(views[f], castagnoli); got != ck.sums[f] {
			return sumMismatch(g.filePath(f), int64(len(views[f])), got, ck.sums[f])
		}
	}
	g.sums.crc = ck.sums
	for f, b := range views {
		g.sums.n[f] = int64(len(b))
	}
	return nil
}

// filePath is the path of data file f of g.
func (g *generation) filePath(f int) string { return generationFiles(g.dir, g.id)[f] }

// sumMismatch is the error for a data file whose first n bytes do not have
// the checksum CHECKPOINT recorded.
func sumMismatch(path string, n int64, got, want uint32) error {
	return corruptf("%s: checksum of its first %d bytes is %08x, CHECKPOINT recorded %08x", path, n, got, want)
}
