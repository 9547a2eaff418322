package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent upserts, deletes and compactions while readers check every
// snapshot: each row it exposes is whole (components agree, metadata
// matches), each batch is there whole or not at all, each live id has
// exactly one live row, and a snapshot does not change while writes go on.
func TestSnapshotsStayConsistentUnderWrites(t *testing.T) {
	const dim = 16
	c := testCollection(t, dim, Dot, WithCheckpointBytes(64<<10))
	dur := 1500 * time.Millisecond
	if testing.Short() {
		dur = 300 * time.Millisecond
	}
	ctx := context.Background()
	var batchSize sync.Map // value → records in its batch
	var next atomic.Int64
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + rng.IntN(4)
				v := float32(next.Add(1))
				batchSize.Store(v, n)
				recs := make([]Record, n)
				for i, k := range rng.Perm(50)[:n] {
					recs[i] = Record{ID: fmt.Sprintf("w%d-%d", w, k), Vector: testVec(dim, v), Metadata: fmt.Appendf(nil, `{"v":%d}`, int(v)), MetadataJSON: true}
				}
				if err := c.Upsert(ctx, recs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Go(func() {
		rng := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Delete(ctx, []string{fmt.Sprintf("w%d-%d", rng.IntN(3), rng.IntN(50))}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	writers.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if err := c.Compact(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var checked atomic.Int64
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := c.Snapshot()
				if err != nil {
					t.Error(err)
					return
				}
				before := fingerprint(s)
				checkSnapshot(t, s, &batchSize)
				if _, err := c.Search(ctx, [][]float32{testVec(dim, 1)}, 5, SearchOptions{Filter: map[string]string{"v": "3"}}); err != nil {
					t.Error(err)
				}
				if after := fingerprint(s); after != before {
					t.Errorf("a snapshot changed under writes: %s → %s", before, after)
				}
				s.Close()
				checked.Add(1)
				time.Sleep(200 * time.Microsecond) // leave the 2 cores some time for the writers
			}
		})
	}
	time.Sleep(dur)
	close(stop)
	writers.Wait()
	readers.Wait()
	st := c.Stats()
	t.Logf("%d snapshots checked; %d batches, %d compactions, %d checkpoints, %d writes per fsync",
		checked.Load(), st.Seq, st.Compactions, st.Checkpoints, st.WALRecords/max(st.WALSyncs, 1))
	if checked.Load() == 0 || st.Compactions == 0 {
		t.Fatalf("the test did not exercise readers (%d) or compaction (%d)", checked.Load(), st.Compactions)
	}
}

func checkSnapshot(t *testing.T, s *Snapshot, batchSize *sync.Map) {
	t.Helper()
	rowsOf := map[float32]int{}
	liveByID := map[string]int{}
	live := 0
	for r := range s.Len() {
		row := s.Row(r)
		meta, _ := s.Metadata(r)
		if !checkVec(row) || string(meta) != fmt.Sprintf(`{"v":%d}`, int(row[0])) {
			t.Errorf("row %d is torn: %v %s", r, row, meta)
			return
		}
		rowsOf[row[0]]++
		if !s.Deleted(r) {
			live++
			if prev, dup := liveByID[s.ID(r)]; dup {
				t.Errorf("id %s is live in rows %d and %d", s.ID(r), prev, r)
				return
			}
			liveByID[s.ID(r)] = r
			if got, ok := s.Lookup(s.ID(r)); !ok || got != r {
				t.Errorf("Lookup(%s) = %d, %v; the live row is %d", s.ID(r), got, ok, r)
				return
			}
		}
	}
	if live != s.Live() {
		t.Errorf("%d live rows, Live() = %d", live, s.Live())
	}
	if batchSize == nil || s.Generation() > 1 {
		return // compaction drops a batch's deleted rows: counts no longer add up
	}
	for v, n := range rowsOf {
		want, _ := batchSize.Load(v)
		if n != want.(int) {
			t.Errorf("batch %v: %d rows visible, the batch has %d", v, n, want)
		}
	}
}

// fingerprint sums what a snapshot shows.
func fingerprint(s *Snapshot) string {
	var sum float64
	live := 0
	for r := range s.LiveRows() {
		sum += float64(s.Row(r)[0])
		live++
	}
	return fmt.Sprintf("len %d live %d/%d sum %g seq %d", s.Len(), live, s.Live(), sum, s.Seq())
}

func TestSnapshotIsolation(t *testing.T) {
	c := testCollection(t, 4, L2)
	ctx := context.Background()
	mustUpsert(t, c, rec("a", testVec(4, 1)), Record{ID: "b", Vector: testVec(4, 2), Metadata: []byte(`{"x":1}`), MetadataJSON: true})
	s1, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	mustUpsert(t, c, rec("a", testVec(4, 10)), rec("c", testVec(4, 3)))
	c.Delete(ctx, []string{"b"})
	s2, _ := c.Snapshot()
	defer s2.Close()

	if s1.Len() != 2 || s1.Live() != 2 || s1.Seq() != 1 {
		t.Fatalf("s1: len %d live %d seq %d", s1.Len(), s1.Live(), s1.Seq())
	}
	if r, ok := s1.Lookup("a"); !ok || s1.Row(r)[0] != 1 {
		t.Fatal("s1 sees the later upsert of a")
	}
	if _, ok := s1.Lookup("b"); !ok {
		t.Fatal("s1 sees the later delete of b")
	}
	if _, ok := s1.Lookup("c"); ok {
		t.Fatal("s1 sees c")
	}
	if r, ok := s2.Lookup("a"); !ok || s2.Row(r)[0] != 10 {
		t.Fatal("s2 misses the upsert of a")
	}
	if _, ok := s2.Lookup("b"); ok {
		t.Fatal("s2 sees deleted b")
	}
	if s2.Live() != 2 || s2.Len() != 4 || !s2.Deleted(0) || !s2.Deleted(1) {
		t.Fatalf("s2: len %d live %d", s2.Len(), s2.Live())
	}
	if bm := s2.DeletedBitmap(); len(bm) != 1 || bm[0] != 0b11 {
		t.Fatalf("DeletedBitmap = %b", bm)
	}
	if bm := s1.DeletedBitmap(); len(bm) != 1 || bm[0] != 0 {
		t.Fatalf("s1 DeletedBitmap = %b", bm)
	}
	var live []string
	for r := range s2.LiveRows() {
		live = append(live, s2.ID(r))
	}
	if !slices.Equal(live, []string{"a", "c"}) {
		t.Fatalf("s2 live rows %v", live)
	}
	// L2 norms are stored.
	if n := s2.Norms(); len(n) != 4 || n[2] != sq(testVec(4, 10)) {
		t.Fatalf("norms %v", n)
	}
	if len(s2.Data()) != 4*4 || s2.Dim() != 4 || s2.Metric() != L2 {
		t.Fatal("Data, Dim or Metric wrong")
	}
	m, isJSON := s1.Metadata(1)
	if string(m) != `{"x":1}` || !isJSON {
		t.Fatalf("metadata %s %v", m, isJSON)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func sq(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return float32(s)
}

func TestSnapshotOutlivesCollection(t *testing.T) {
	c, err := Create(t.TempDir(), Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, c, rec("a", testVec(4, 5)))
	s, _ := c.Snapshot()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(); err == nil {
		t.Fatal("Snapshot after Close succeeded")
	}
	if r, ok := s.Lookup("a"); !ok || s.Row(r)[0] != 5 {
		t.Fatal("snapshot unreadable after the collection closed")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
