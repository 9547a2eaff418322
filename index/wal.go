package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// walSegment names one WAL file: wal-<start>.log, whose first record (if
// any) has seq start.
type walSegment struct {
	path  string
	start uint64
}

func walPath(dir string, start uint64) string {
	return filepath.Join(dir, fmt.Sprintf("wal-%016x.log", start))
}

// listSegments returns dir's WAL segments, oldest first.
func listSegments(dir string) ([]walSegment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	var segs []walSegment
	for _, e := range ents {
		name := e.Name()
		hex, ok := strings.CutPrefix(name, "wal-")
		if !ok {
			continue
		}
		hex, ok = strings.CutSuffix(hex, ".log")
		if !ok || len(hex) != 16 {
			continue
		}
		start, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		segs = append(segs, walSegment{path: filepath.Join(dir, name), start: start})
	}
	slices.SortFunc(segs, func(a, b walSegment) int { return cmpUint64(a.start, b.start) })
	return segs, nil
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// removeSegmentsThrough removes the segments every record of which has seq
// at most seq (the next segment starts at or before seq+1).
func removeSegmentsThrough(dir string, seq uint64) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	var errs []error
	for i := 0; i+1 < len(segs) && segs[i+1].start <= seq+1; i++ {
		if err := os.Remove(segs[i].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("embedd/index: %w", err))
		}
	}
	return errors.Join(errs...)
}

func walHeader(start uint64) []byte {
	h := make([]byte, walHeaderSize)
	copy(h, walMagic)
	binary.LittleEndian.PutUint64(h[8:], start)
	binary.LittleEndian.PutUint32(h[16:], formatVersion)
	binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], castagnoli))
	return h
}

// walWriter appends records to one segment. It is owned by the committer
// goroutine once handed to it.
type walWriter struct {
	f     *os.File
	path  string
	start uint64
	size  int64
}

// createSegment creates dir's segment starting at seq start, its header
// durable (file and directory synced). The caller closes it.
func createSegment(dir string, start uint64) (*walWriter, error) {
	path := walPath(dir, start)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	w := &walWriter{f: f, path: path, start: start}
	err = w.write(walHeader(start))
	if err == nil {
		err = w.sync()
	}
	if err != nil {
		// A segment without its header in the middle of the log would
		// look like damage before later records.
		w.close()
		os.Remove(path)
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// walStep is the least a segment's reservation grows by.
const walStep = 1 << 20

// reserve makes sure the segment has blocks for its first need bytes
// (fallocate, keeping its size), so that appending them cannot fail for
// lack of space; alloc is what is reserved already. It returns the new
// reservation: at least need, growing by doubling (16 MiB at most at a
// time; just need when the disk has no room for more). A file system that cannot reserve gives math.MaxInt64 and no
// error: writes then take their chance.
func reserveSegment(f *os.File, path string, alloc, need int64) (int64, error) {
	if need <= alloc {
		return alloc, nil
	}
	n := max(need, min(2*alloc, alloc+16<<20), walStep)
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
	if errors.Is(err, unix.ENOSPC) && n > need {
		n = need // a nearly full disk may still hold this write
		err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return math.MaxInt64, nil
	}
	if err != nil {
		return alloc, fmt.Errorf("embedd/index: reserving %d bytes for %s: %w", n, path, err)
	}
	return n, nil
}

// openSegmentForAppend opens seg to append at end, cutting anything after it.
func openSegmentForAppend(seg walSegment, end int64) (*walWriter, error) {
	f, err := os.OpenFile(seg.path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	w := &walWriter{f: f, path: seg.path, start: seg.start, size: end}
	if err := f.Truncate(end); err != nil {
		w.close()
		return nil, fmt.Errorf("embedd/index: cutting %s at %d: %w", seg.path, end, err)
	}
	return w, nil
}

func (w *walWriter) write(b []byte) error {
	n, err := w.f.WriteAt(b, w.size)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("embedd/index: writing %s: %w", w.path, err)
	}
	return nil
}

func (w *walWriter) sync() error {
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("embedd/index: syncing %s: %w", w.path, err)
	}
	return nil
}

// close closes the file; nil-safe and idempotent.
func (w *walWriter) close() error {
	if w == nil || w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	return nil
}

// walDamage says where a segment stops being readable and why.
type walDamage struct {
	path   string
	off    int64
	reason string
	next   int64 // replaySalvage: offset of the next intact record in the file, 0 if none
	seq    bool  // the record checks but its seq is out of order (else its bytes do not check)
}

func (d *walDamage) Error() string {
	return fmt.Sprintf("WAL %s at offset %d: %s", d.path, d.off, d.reason) // always wrapped by corruptf
}

// walReader reads the records of one segment in order.
type walReader struct {
	f     *os.File
	br    *bufio.Reader
	path  string
	start uint64
	off   int64 // offset of the next record
	hdr   [walRecordHeaderSize]byte
	buf   []byte
}

// openWALReader opens seg and checks its header; a damaged header is a
// *walDamage at offset 0. The caller closes the reader.
func openWALReader(seg walSegment) (*walReader, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	r := &walReader{f: f, br: bufio.NewReaderSize(f, 1<<20), path: seg.path}
	h := make([]byte, walHeaderSize)
	if _, err := io.ReadFull(r.br, h); err != nil {
		return r, &walDamage{path: seg.path, reason: "segment header cut short"}
	}
	switch {
	case crc32.Checksum(h[:20], castagnoli) != binary.LittleEndian.Uint32(h[20:]):
		return r, &walDamage{path: seg.path, reason: "segment header checksum mismatch"}
	case string(h[:8]) != walMagic:
		return r, &walDamage{path: seg.path, reason: "not a WAL segment"}
	case binary.LittleEndian.Uint64(h[8:]) != seg.start:
		return r, &walDamage{path: seg.path, reason: "segment header names another start"}
	case binary.LittleEndian.Uint32(h[16:]) != formatVersion:
		return r, &walDamage{path: seg.path, reason: "unknown format version"}
	}
	r.start = seg.start
	r.off = walHeaderSize
	return r, nil
}

// next returns the next record's payload (valid until the next call), io.EOF
// at a clean end, or a *walDamage.
func (r *walReader) next() ([]byte, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return nil, &walDamage{path: r.path, off: r.off, reason: "record header cut short"}
		}
		return nil, fmt.Errorf("embedd/index: reading %s: %w", r.path, err)
	}
	n := binary.LittleEndian.Uint32(r.hdr[0:])
	sum := binary.LittleEndian.Uint32(r.hdr[4:])
	if n < walBatchHeaderSize || n > maxWALRecord {
		return nil, &walDamage{path: r.path, off: r.off, reason: fmt.Sprintf("record length %d is not in [%d, %d]", n, walBatchHeaderSize, maxWALRecord)}
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.br, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &walDamage{path: r.path, off: r.off, reason: "record cut short"}
		}
		return nil, fmt.Errorf("embedd/index: reading %s: %w", r.path, err)
	}
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, &walDamage{path: r.path, off: r.off, reason: "record checksum mismatch"}
	}
	r.off += walRecordHeaderSize + int64(n)
	return p, nil
}

// seek makes the record at off the next one.
func (r *walReader) seek(off int64) error {
	if _, err := r.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	r.br.Reset(r.f)
	r.off = off
	return nil
}

// nextIntact returns the offset and seq of the first intact record of the
// segment at path that starts after off and has a seq above after (offset
// 0: none): a length in range, a batch header that continues the log and a
// matching checksum. A torn write leaves no such record behind it; damage in
// the middle of the log does.
func nextIntact(path string, off int64, after uint64) (int64, uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("embedd/index: %w", err)
	}
	for o := off + 1; o+walRecordHeaderSize+walBatchHeaderSize <= int64(len(b)); o++ {
		n := int64(binary.LittleEndian.Uint32(b[o:]))
		if n < walBatchHeaderSize || n > maxWALRecord || o+walRecordHeaderSize+n > int64(len(b)) {
			continue
		}
		p := b[o+walRecordHeaderSize : o+walRecordHeaderSize+n]
		seq := binary.LittleEndian.Uint64(p)
		if seq <= after || binary.LittleEndian.Uint32(p[8:]) == 0 {
			continue
		}
		if crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(b[o+4:]) {
			return o, seq, nil
		}
	}
	return 0, 0, nil
}

func (r *walReader) close() error {
	if r == nil || r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// replayMode says what replayWAL does with damage.
type replayMode int

const (
	// replayRecover (a writer opening): damage that only a torn write can
	// have made, with no intact record after it in any segment, is a torn
	// tail: cut it and log. Damage followed by an intact record the
	// checkpoint does not cover is ErrCorrupt, and the files are kept.
	replayRecover replayMode = iota
	// replayReadOnly: stop at the first damage, changing nothing; a gap or
	// a vanished segment (a writer checkpointed meanwhile) is errRetry.
	replayReadOnly
	// replayStrict (compaction re-reading its own log): any damage is an
	// error.
	replayStrict
	// replayVerify (Verify): as replayRecover, but a torn tail is left as
	// it is (a writer may be appending to it), and a gap is errRetry (a
	// writer checkpointed meanwhile), as for replayReadOnly.
	replayVerify
	// replaySalvage (Repair): damage is skipped: replay resumes at the next
	// intact record after it, counting the seqs lost to it, and reports
	// every damage; the result has no tail, so the writer starts a new
	// segment. Nothing is cut or removed.
	replaySalvage
)

// errRetry tells a read-only opener that the writer moved the log on while
// it read: read the checkpoint again.
var errRetry = errors.New("embedd/index: the log moved on while opening; retry")

// replayResult is where replay stopped.
type replayResult struct {
	last        uint64      // seq of the last record read (applied or not), or after
	tail        walSegment  // last segment with a good header (start 0: none)
	tailEnd     int64       // end of its last good record
	tailRecords int         // records in it
	replayed    int         // records applied
	damaged     []walDamage // replaySalvage: each damage skipped
	lost        uint64      // replaySalvage: seqs missing between applied records
	backups     []string    // replaySalvage: copies of the damaged segments (see keepDamaged)
}

// replayWAL calls apply for every record in dir's segments with seq greater
// than after, in order. See replayMode for damage. apply's payload is valid
// only during the call.
func replayWAL(dir string, after uint64, mode replayMode, log *slog.Logger, apply func(seq uint64, payload []byte) error) (replayResult, error) {
	res := replayResult{last: after}
	segs, err := listSegments(dir)
	if err != nil {
		return res, err
	}
	var expect uint64 // next seq; 0 until the first record
	for i, seg := range segs {
		if i+1 < len(segs) && segs[i+1].start <= after+1 {
			continue // the checkpoint covers all of it
		}
		damage, err := replaySegment(seg, after, mode, &res, &expect, apply)
		if err != nil {
			return res, err
		}
		if damage == nil {
			continue
		}
		switch mode {
		case replayReadOnly:
			log.Debug("embedd/index: read-only replay stops at damaged WAL record", "file", damage.path, "offset", damage.off, "reason", damage.reason)
			return res, nil
		case replayStrict:
			return res, corruptf("%w", damage)
		}
		if mode == replayVerify && !damage.seq {
			// Beside a writer, the "damage" may be a record being written:
			// if it checks when read again, the log is fine up to here.
			if off, _, err := nextIntact(damage.path, damage.off-1, max(res.last, after)); err != nil || off == damage.off {
				return res, err
			}
		}
		// replayRecover: only a tail may be cut.
		if err := onlyTail(segs[i:], damage, max(res.last, after)); err != nil || mode == replayVerify {
			return res, err
		}
		log.Warn("embedd/index: cutting damaged WAL tail", "file", damage.path, "offset", damage.off, "reason", damage.reason, "last_seq", res.last)
		if damage.off == 0 {
			// The segment's own header is bad: it never held a record, and
			// the tail stays the previous segment.
			if err := os.Remove(seg.path); err != nil {
				return res, fmt.Errorf("embedd/index: %w", err)
			}
		} else if err := os.Truncate(seg.path, damage.off); err != nil {
			return res, fmt.Errorf("embedd/index: cutting %s: %w", seg.path, err)
		}
		for _, later := range segs[i+1:] {
			if err := os.Remove(later.path); err != nil {
				return res, fmt.Errorf("embedd/index: %w", err)
			}
		}
		return res, syncDir(dir)
	}
	if mode == replaySalvage && len(res.damaged) > 0 {
		res.tail = walSegment{}
	}
	return res, nil
}

// replaySegment replays seg (see replayWAL) and returns the damage that
// ended it, if any (under replaySalvage, nil: damage is skipped and
// recorded in res).
func replaySegment(seg walSegment, after uint64, mode replayMode, res *replayResult, expect *uint64, apply func(seq uint64, payload []byte) error) (*walDamage, error) {
	r, err := openWALReader(seg)
	defer r.close()
	var damage *walDamage
	if err != nil && !errors.As(err, &damage) {
		if mode == replayReadOnly && errors.Is(err, fs.ErrNotExist) {
			return nil, errRetry
		}
		return nil, err
	}
	if damage == nil {
		res.tail, res.tailEnd, res.tailRecords = seg, r.off, 0
	}
	first := true // the next record is the segment's first: its seq is seg.start
	for {
		if damage != nil {
			if mode != replaySalvage {
				return damage, nil
			}
			off, _, err := nextIntact(seg.path, damage.off, res.last)
			if err != nil {
				return nil, err
			}
			damage.next = off
			res.damaged = append(res.damaged, *damage)
			if off == 0 {
				return nil, nil // the rest of the segment is lost
			}
			if err := r.seek(off); err != nil {
				return nil, err
			}
			damage, first, *expect = nil, false, 0
		}
		start := r.off
		p, err := r.next()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			if !errors.As(err, &damage) {
				return nil, err
			}
			continue
		}
		seq := binary.LittleEndian.Uint64(p)
		switch {
		case first && seq != seg.start:
			damage = &walDamage{path: seg.path, off: start, reason: fmt.Sprintf("first record has seq %d, want the segment's start %d", seq, seg.start), seq: true}
		case *expect != 0 && seq != *expect:
			damage = &walDamage{path: seg.path, off: start, reason: fmt.Sprintf("record has seq %d, want %d", seq, *expect), seq: true}
		}
		if damage != nil {
			continue
		}
		first = false
		if seq > after {
			if seq != res.last+1 {
				switch mode {
				case replayReadOnly, replayVerify:
					return nil, errRetry
				case replaySalvage:
					res.lost += seq - res.last - 1 // seq > res.last: nextIntact saw to it
				default:
					return nil, corruptf("WAL %s: records %d to %d are missing (checkpoint has %d)", seg.path, res.last+1, seq-1, after)
				}
			}
			if err := apply(seq, p); err != nil {
				return nil, err
			}
			res.replayed++
		}
		res.last = max(res.last, seq)
		*expect = seq + 1
		res.tailEnd = r.off
		res.tailRecords++
	}
}

// onlyTail checks that damage, in segs[0], is a torn tail: no later segment
// holds a record, and no intact record with seq above last follows it in
// its own segment. Otherwise the damage is in the middle of the log, and
// cutting it would drop acknowledged writes: ErrCorrupt, saying where.
func onlyTail(segs []walSegment, damage *walDamage, last uint64) error {
	for _, later := range segs[1:] {
		if n, err := segmentHasRecord(later); err != nil {
			return err
		} else if n {
			return corruptf("%w, and later segments hold records: the log is kept as it is; repair the collection to salvage its intact records", damage)
		}
	}
	off, seq, err := nextIntact(damage.path, damage.off, last)
	if err != nil {
		return err
	}
	if off != 0 {
		return corruptf("%w, and an intact record (seq %d) follows at offset %d, so it is not a torn write: the log is kept as it is; repair the collection to salvage its intact records", damage, seq, off)
	}
	return nil
}

// segmentHasRecord reports whether seg has at least one good record.
func segmentHasRecord(seg walSegment) (bool, error) {
	r, err := openWALReader(seg)
	defer r.close()
	var damage *walDamage
	if errors.As(err, &damage) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = r.next()
	if err == io.EOF || errors.As(err, &damage) {
		return false, nil
	}
	return err == nil, err
}
