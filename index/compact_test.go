package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompactReclaimsAndKeepsOldSnapshots(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 8, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	all := ids(100, "id")
	for i, id := range all {
		r := rec(id, testVec(8, float32(i)))
		if i%2 == 0 {
			r.Metadata, r.MetadataJSON = fmt.Appendf(nil, `{"i":%d}`, i), true
		}
		mustUpsert(t, c, r)
	}
	var odd []string
	for i := 1; i < 100; i += 2 {
		odd = append(odd, all[i])
	}
	if n, err := c.Delete(ctx, odd); n != 50 || err != nil {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	for i := 0; i < 10; i += 2 {
		mustUpsert(t, c, Record{ID: all[i], Vector: testVec(8, float32(1000+i)), Metadata: []byte("raw")})
	}
	old, _ := c.Snapshot()
	oldGen := old.Generation()
	if st := c.Stats(); st.Rows != 105 || st.Live != 50 {
		t.Fatalf("before: %+v", st)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Rows != 50 || st.Live != 50 || st.Generation != oldGen+1 || st.Compactions != 1 {
		t.Fatalf("after: %+v", st)
	}
	for _, p := range generationFiles(dir, oldGen) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived compaction", p)
		}
	}
	// The old snapshot still reads its (now unlinked) files.
	if old.Len() != 105 || old.Live() != 50 {
		t.Fatalf("old snapshot: %d rows %d live", old.Len(), old.Live())
	}
	for r := range old.Len() {
		if !checkVec(old.Row(r)) {
			t.Fatalf("old snapshot row %d torn after compaction", r)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(c *Collection) {
		t.Helper()
		s, _ := c.Snapshot()
		defer s.Close()
		for i, id := range all {
			row, ok := s.Lookup(id)
			if ok != (i%2 == 0) {
				t.Fatalf("%s present %v", id, ok)
			}
			if !ok {
				continue
			}
			want := float32(i)
			meta, isJSON := s.Metadata(row)
			wantMeta := fmt.Sprintf(`{"i":%d}`, i)
			if i < 10 {
				want, wantMeta = float32(1000+i), "raw"
			}
			if s.Row(row)[0] != want || string(meta) != wantMeta || isJSON != (i >= 10) || s.Norms()[row] != sq(s.Row(row)) {
				t.Fatalf("%s: row %v meta %s json %v norm %v", id, s.Row(row), meta, isJSON, s.Norms()[row])
			}
		}
	}
	check(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check(c)
	// Nothing to reclaim: nothing happens.
	if err := c.Compact(ctx); err != nil || c.Stats().Generation != oldGen+1 {
		t.Fatalf("Compact with nothing deleted: %v, generation %d", err, c.Stats().Generation)
	}
}

// Writes made while compaction copies are replayed onto the new generation;
// the result matches a model, also after a crash and after a clean reopen.
func TestCompactWhileWriting(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const workers = 4
	models := make([]map[string]float32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		models[w] = map[string]float32{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 300 {
				id := fmt.Sprintf("w%d-%d", w, rng.IntN(40))
				if rng.IntN(3) == 0 {
					if _, err := c.Delete(ctx, []string{id}); err != nil {
						t.Error(err)
						return
					}
					delete(models[w], id)
					continue
				}
				v := float32(w*1000 + i)
				if err := c.Upsert(ctx, []Record{rec(id, testVec(4, v))}); err != nil {
					t.Error(err)
					return
				}
				models[w][id] = v
			}
		})
	}
	compactions := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-done:
			break loop
		default:
		}
		if err := c.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		compactions++
	}
	verify := func(c *Collection) {
		t.Helper()
		s, _ := c.Snapshot()
		defer s.Close()
		want := 0
		for _, m := range models {
			for id, v := range m {
				row, ok := s.Lookup(id)
				if !ok || s.Row(row)[0] != v {
					t.Fatalf("%s: present %v, want value %v", id, ok, v)
				}
				want++
			}
		}
		if s.Live() != want {
			t.Fatalf("%d live rows, model has %d", s.Live(), want)
		}
	}
	verify(c)
	t.Logf("%d compaction calls, %d did work, generation %d", compactions, c.Stats().Compactions, c.Stats().Generation)
	crashClose(t, c)
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	verify(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	verify(c)
}

func TestCompactCancelled(t *testing.T) {
	c := testCollection(t, 2, Dot)
	for i := range 10 {
		mustUpsert(t, c, rec(ids(10, "a")[i], testVec(2, 1)))
	}
	c.Delete(context.Background(), []string{"a1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Compact(ctx); err == nil {
		t.Fatal("Compact with a cancelled context succeeded")
	}
	if st := c.Stats(); st.Generation != 1 || st.Live != 9 {
		t.Fatalf("after a cancelled compaction: %+v", st)
	}
	ents, _ := os.ReadDir(c.Dir())
	for _, e := range ents {
		if e.Name() == "vectors-0000000000000002.f32" {
			t.Fatal("a cancelled compaction left its files")
		}
	}
	if err := c.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAutomaticCompaction is the probe: 20,000 upserts of one id
// (dimension 384) left 33.5 MB of vectors for one live row, because nothing
// called Compact. With the default thresholds the collection now compacts
// itself in the background.
func TestAutomaticCompaction(t *testing.T) {
	const dim, batches, perBatch = 384, 200, 100
	c := testCollection(t, dim, Cosine)
	v := testVec(dim, 1)
	recs := make([]Record, perBatch)
	for i := range recs {
		recs[i] = rec("one", v)
	}
	for range batches {
		mustUpsert(t, c, recs...)
	}
	// Compactions run while the writes go on; once they stop, what is
	// left dead is under the threshold (16 MiB: 10,922 rows).
	o := defaultOptions()
	for c.Stats().Compactions == 0 || o.needsCompaction(c.cur.Load(), dim) {
		time.Sleep(time.Millisecond)
	}
	st := c.Stats()
	if st.Live != 1 || st.Rows > 10923 || st.Generation == 1 {
		t.Fatalf("after the automatic compactions: %+v", st)
	}
	var size int64
	ents, _ := os.ReadDir(c.dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !strings.HasPrefix(e.Name(), "wal-") {
			size += fi.Size()
		}
	}
	if size > 20<<20 {
		t.Fatalf("data files take %d bytes for one live row (%d rows)", size, st.Rows)
	}
	if r, ok, err := c.Get("one"); err != nil || !ok || len(r.Vector) != dim {
		t.Fatalf("Get after compaction: %v %v", ok, err)
	}
}

func TestNeedsCompaction(t *testing.T) {
	o := defaultOptions()
	const dim = 384 // 1,536 bytes a row: 16 MiB is 10,923 rows
	for _, tc := range []struct {
		rows, live int
		want       bool
	}{
		{0, 0, false},
		{20000, 1, true},
		{20000, 10000, false},  // half dead, but 10,000 rows are 15.4 MB
		{30000, 15000, true},   // half dead, 23 MB
		{30000, 15001, false},  // under half
		{10000, 1, false},      // all but one dead, but only 15 MB
		{100000, 60000, false}, // 61 MB dead, but 40%
	} {
		got := o.needsCompaction(&state{rows: tc.rows, live: tc.live}, dim)
		if got != tc.want {
			t.Errorf("rows %d live %d: %v, want %v", tc.rows, tc.live, got, tc.want)
		}
	}
	if off := (options{compactRatio: 0}); off.needsCompaction(&state{rows: 100, live: 0}, dim) {
		t.Error("ratio 0 compacts")
	}
}
