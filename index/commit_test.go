package index

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// N concurrent writers of one small record each share fsyncs: the committer
// takes everything that queued while it was syncing.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	c := testCollection(t, 16, Dot)
	const writers, each = 64, 25
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := c.Upsert(context.Background(), []Record{rec(id, testVec(16, float32(i)))}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	st := c.Stats()
	t.Logf("%d acknowledged writes, %d fsyncs: %.1f writes per fsync", st.WALRecords, st.WALSyncs, float64(st.WALRecords)/float64(st.WALSyncs))
	if st.WALRecords != writers*each || st.Live != writers*each {
		t.Fatalf("Stats = %+v, want %d records", st, writers*each)
	}
	if st.WALSyncs*4 > st.WALRecords {
		t.Fatalf("%d fsyncs for %d writes: group commit is not grouping", st.WALSyncs, st.WALRecords)
	}
}

// A failed WAL write is sticky: the writer gets the error, later writes
// fail, and readers keep the last published state.
func TestCommitterFailureIsSticky(t *testing.T) {
	c := testCollection(t, 2, Dot)
	mustUpsert(t, c, rec("a", testVec(2, 1)))
	// Break the segment under the committer: close its file.
	c.mu.Lock()
	if err := c.drainLocked(); err != nil {
		t.Fatal(err)
	}
	c.wal.w.f.Close()
	c.mu.Unlock()
	if err := c.Upsert(context.Background(), []Record{rec("b", testVec(2, 2))}); err == nil {
		t.Fatal("Upsert succeeded on a closed WAL file")
	}
	if err := c.Upsert(context.Background(), []Record{rec("c", testVec(2, 3))}); err == nil {
		t.Fatal("a later Upsert succeeded after a WAL failure")
	}
	if _, ok, _ := c.Get("b"); ok {
		t.Fatal("a write whose WAL record failed became visible")
	}
	if _, ok, _ := c.Get("a"); !ok {
		t.Fatal("the earlier write vanished")
	}
}

func BenchmarkUpsertParallel(b *testing.B) {
	c := testCollection(b, 384, Cosine)
	v := testVec(384, 1)
	var n atomic.Int64
	b.SetParallelism(16) // 16 writers per core
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("id%d", n.Add(1))
			if err := c.Upsert(context.Background(), []Record{rec(id, v)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := c.Stats()
	b.ReportMetric(float64(st.WALSyncs)/float64(b.N), "fsyncs/op")
	b.ReportMetric(float64(st.WALRecords)/float64(st.WALSyncs), "writes/fsync")
}

func BenchmarkUpsertSerial(b *testing.B) {
	c := testCollection(b, 384, Cosine)
	v := testVec(384, 1)
	for i := range b.N {
		if err := c.Upsert(context.Background(), []Record{rec(fmt.Sprintf("id%d", i), v)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.Stats().WALSyncs)/float64(b.N), "fsyncs/op")
}

// TestCloseClosesEveryFile: the committer closed the segment it started
// with, not the one current at Close, so every collection closed after a
// checkpoint (a rotation) left a WAL file open until the garbage collector
// found it (and a file system with it could not be unmounted).
func TestCloseClosesEveryFile(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 2, Metric: Dot}, WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustUpsert(t, c, rec(fmt.Sprint(i), []float32{1, 0}))
		if err := c.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, dir) {
			t.Errorf("fd %s is still open on %s", e.Name(), l)
		}
	}
}
