package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// writeCrashed makes a collection with n single-record batches k0..k(n-1)
// that only the WAL holds (no checkpoint since creation), and returns its
// directory and the WAL segment.
func writeCrashed(t *testing.T, n int) (string, walSegment) {
	t.Helper()
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 4, Metric: Dot}, WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		mustUpsert(t, c, rec(ids(n, "k")[i], testVec(4, float32(i))))
	}
	crashClose(t, c)
	segs, err := listSegments(dir)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments = %v, %v", segs, err)
	}
	return dir, segs[0]
}

// recordOffsets returns where each record of seg starts, and its end.
func recordOffsets(t *testing.T, seg walSegment) ([]int64, int64) {
	t.Helper()
	r, err := openWALReader(seg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var offs []int64
	for {
		off := r.off
		if _, err := r.next(); err == io.EOF {
			return offs, off
		} else if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
}

func TestWALRecordsRoundTrip(t *testing.T) {
	dir, seg := writeCrashed(t, 5)
	offs, end := recordOffsets(t, seg)
	if len(offs) != 5 || offs[0] != walHeaderSize {
		t.Fatalf("record offsets %v", offs)
	}
	var seqs []uint64
	res, err := replayWAL(dir, 0, replayStrict, nil, func(seq uint64, p []byte) error {
		s, ops, err := decodeBatch(p, 4, nil)
		if err != nil || s != seq || len(ops) != 1 || ops[0].kind != walOpUpsert {
			t.Fatalf("batch %d: %d ops, %v", seq, len(ops), err)
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil || len(seqs) != 5 || seqs[4] != 5 || res.last != 5 || res.tailEnd != end {
		t.Fatalf("replay: %v, %+v, %v", seqs, res, err)
	}
	// Records at or below the checkpoint are skipped.
	seqs = nil
	replayWAL(dir, 3, replayStrict, nil, func(seq uint64, p []byte) error { seqs = append(seqs, seq); return nil })
	if len(seqs) != 2 || seqs[0] != 4 {
		t.Fatalf("replay after 3 applied %v", seqs)
	}
}

func TestWALDamagedTailIsCut(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64, end int64)
		kept   int // records that survive
	}{
		{"cut mid-payload", func(t *testing.T, p string, offs []int64, end int64) { truncate(t, p, end-5) }, 9},
		{"cut mid-header", func(t *testing.T, p string, offs []int64, end int64) { truncate(t, p, offs[9]+3) }, 9},
		{"flipped payload byte", func(t *testing.T, p string, offs []int64, end int64) { flip(t, p, end-2) }, 9},
		{"flipped length of the last record", func(t *testing.T, p string, offs []int64, end int64) { flip(t, p, offs[9]+1) }, 9},
		{"garbage after the end", func(t *testing.T, p string, offs []int64, end int64) {
			appendBytes(t, p, []byte("\x07\x00\x00\x00garbage"))
		}, 10},
		{"zeroes after the end", func(t *testing.T, p string, offs []int64, end int64) { appendBytes(t, p, make([]byte, 4096)) }, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, seg := writeCrashed(t, 10)
			offs, end := recordOffsets(t, seg)
			tc.damage(t, seg.path, offs, end)
			var lb logBuffer
			c, err := Open(dir, WithLogger(lb.logger()))
			if err != nil {
				t.Fatal(err)
			}
			if !lb.contains("cutting damaged WAL tail") {
				t.Errorf("no log line for the cut; log:\n%s", lb.String())
			}
			for i, id := range ids(10, "k") {
				r, ok, _ := c.Get(id)
				if ok != (i < tc.kept) || (ok && r.Vector[0] != float32(i)) {
					t.Fatalf("%s: present %v (%v), want present iff < %d", id, ok, r.Vector, tc.kept)
				}
			}
			want := end
			if tc.kept < 10 {
				want = offs[tc.kept]
			}
			if st, _ := os.Stat(seg.path); st.Size() != want {
				t.Fatalf("segment is %d bytes after the cut, want %d", st.Size(), want)
			}
			// Appending after the cut works, and survives another crash.
			mustUpsert(t, c, rec("after", testVec(4, 50)))
			crashClose(t, c)
			c, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if r, ok, _ := c.Get("after"); !ok || r.Vector[0] != 50 {
				t.Fatal("write after the cut is lost")
			}
			if st := c.Stats(); st.Seq != uint64(tc.kept)+1 {
				t.Fatalf("seq %d after recovery and one write, want %d", st.Seq, tc.kept+1)
			}
		})
	}
}

func TestWALDamageBeforeLaterRecordsIsCorrupt(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 4, Metric: Dot}, WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustUpsert(t, c, rec(ids(10, "k")[i], testVec(4, float32(i))))
	}
	c.mu.Lock()
	if err := c.rotateLocked(); err != nil {
		t.Fatal(err)
	}
	c.mu.Unlock()
	for i := 5; i < 10; i++ {
		mustUpsert(t, c, rec(ids(10, "k")[i], testVec(4, float32(i))))
	}
	crashClose(t, c)
	segs, _ := listSegments(dir)
	if len(segs) != 2 || segs[1].start != 6 {
		t.Fatalf("segments %v", segs)
	}
	offs, _ := recordOffsets(t, segs[0])
	flip(t, segs[0].path, offs[2]+walRecordHeaderSize+3)
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "later segments hold records") {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	// A read-only opener gets the consistent prefix before the damage.
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if st := ro.Stats(); st.Seq != 2 || st.Live != 2 {
		t.Fatalf("read-only after damage at record 3: %+v", st)
	}
}

func TestWALBadSegmentHeaderAtTail(t *testing.T) {
	dir, _ := writeCrashed(t, 3)
	// A rotation that crashed before its header was written.
	if err := os.WriteFile(walPath(dir, 4), []byte("EMBD"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lb logBuffer
	c, err := Open(dir, WithLogger(lb.logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !lb.contains("segment header cut short") {
		t.Errorf("log: %s", lb.String())
	}
	if _, err := os.Stat(walPath(dir, 4)); !os.IsNotExist(err) {
		t.Error("the segment with a bad header survived")
	}
	if st := c.Stats(); st.Seq != 3 {
		t.Fatalf("seq %d", st.Seq)
	}
	mustUpsert(t, c, rec("x", testVec(4, 1)))
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func TestUpsertAfterRecoveryKeepsContext(t *testing.T) {
	dir, _ := writeCrashed(t, 2)
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Delete(context.Background(), []string{"k0"}); n != 1 || err != nil {
		t.Fatalf("Delete = %d, %v", n, err)
	}
}

// TestWALDamageInTheMiddleRefusesToOpen: one flipped byte at offset 4000 of
// a WAL of 100 records, followed by intact records, is not a torn tail:
// Open refuses, says where, and keeps the file as it is (it used to cut
// every record after it with only a warning). Repair then salvages every
// intact record.
func TestWALDamageInTheMiddleRefusesToOpen(t *testing.T) {
	const n, at = 100, 4000
	dir, seg := writeCrashed(t, n)
	offs, end := recordOffsets(t, seg)
	if end <= at+200 {
		t.Fatalf("WAL is %d bytes; the test wants records well after offset %d", end, at)
	}
	hit := 0 // the record holding byte at
	for i, off := range offs {
		if off <= at {
			hit = i
		}
	}
	flip(t, seg.path, at)
	before, err := os.ReadFile(seg.path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	want := fmt.Sprintf("WAL %s at offset %d", seg.path, offs[hit])
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not a torn write") {
		t.Fatalf("Open = %v, want ErrCorrupt naming %q", err, want)
	}
	if after, _ := os.ReadFile(seg.path); !bytes.Equal(after, before) {
		t.Fatal("the refused WAL was changed")
	}
	// A second Open refuses the same way: nothing was cut the first time.
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("second Open = %v", err)
	}
	if _, err := Verify(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Verify = %v, want ErrCorrupt naming %q", err, want)
	}

	rep, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damage) != 1 || rep.Damage[0].File != seg.path || rep.Damage[0].Offset != offs[hit] || rep.Damage[0].Resume != offs[hit+1] {
		t.Fatalf("damage %+v, want one at %d resuming at %d", rep.Damage, offs[hit], offs[hit+1])
	}
	if rep.Replayed != n-1 || rep.Lost != 1 || rep.Seq != n || len(rep.Backups) != 1 {
		t.Fatalf("report %+v, want %d replayed, 1 lost, seq %d, one backup", rep, n-1, n)
	}
	if b, err := os.ReadFile(rep.Backups[0]); err != nil || !bytes.Equal(b, before) {
		t.Fatalf("backup %s: %v (equal %v)", rep.Backups[0], err, bytes.Equal(b, before))
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids(n, "k") {
		r, ok, _ := c.Get(id)
		if ok != (i != hit) || (ok && r.Vector[0] != float32(i)) {
			t.Fatalf("%s after repair: present %v (%v), want all but k%d", id, ok, r.Vector, hit)
		}
	}
	// Writes go on after the repair and survive a crash.
	mustUpsert(t, c, rec("after", testVec(4, 7)))
	crashClose(t, c)
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, ok, _ := c.Get("after"); !ok || r.Vector[0] != 7 || c.Stats().Seq != n+1 || c.Stats().Live != n {
		t.Fatalf("after repair and a crash: %v %v %+v", r, ok, c.Stats())
	}
}

func TestRepairWithoutDamageChangesNothing(t *testing.T) {
	dir, _ := writeCrashed(t, 5)
	rep, err := Repair(dir)
	if err != nil || len(rep.Damage) != 0 || rep.Replayed != 5 || rep.Lost != 0 || rep.Seq != 5 || rep.Backups != nil {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Stats(); st.Live != 5 || st.Seq != 5 {
		t.Fatalf("after Repair: %+v", st)
	}
	if _, err := Repair(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open collection = %v, want ErrLocked", err)
	}
}

// TestWALDamagedHeaderBeforeRecords: a flipped byte in a segment's header
// used to remove the whole segment, records and all; with intact records
// after it, Open refuses and Repair keeps them.
func TestWALDamagedHeaderBeforeRecords(t *testing.T) {
	dir, seg := writeCrashed(t, 3)
	flip(t, seg.path, 10)
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "segment header checksum mismatch") {
		t.Fatalf("Open = %v, want ErrCorrupt for the header", err)
	}
	rep, err := Repair(dir)
	if err != nil || rep.Replayed != 3 || rep.Seq != 3 || len(rep.Damage) != 1 || rep.Damage[0].Resume != walHeaderSize {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Stats(); st.Live != 3 {
		t.Fatalf("after Repair: %+v", st)
	}
}
