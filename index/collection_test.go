package index

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCollectionUpsertGetDeleteReopen(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustUpsert(t, c, rec("a", testVec(4, 1)), Record{ID: "b", Vector: testVec(4, 2), Metadata: []byte(`{"lang": "en"}`), MetadataJSON: true})
	mustUpsert(t, c, Record{ID: "c", Vector: testVec(4, 3), Metadata: []byte{0, 1, 2}})
	// Replace a, delete b.
	mustUpsert(t, c, rec("a", testVec(4, 10)))
	n, err := c.Delete(ctx, []string{"b", "nope"})
	if err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1, nil", n, err)
	}
	check := func(c *Collection) {
		t.Helper()
		r, ok, err := c.Get("a")
		if err != nil || !ok || !slices.Equal(r.Vector, testVec(4, 10)) {
			t.Fatalf("Get(a) = %v, %v, %v", r, ok, err)
		}
		if _, ok, _ := c.Get("b"); ok {
			t.Fatal("b is still there after Delete")
		}
		r, ok, _ = c.Get("c")
		if !ok || string(r.Metadata) != "\x00\x01\x02" || r.MetadataJSON {
			t.Fatalf("Get(c) = %+v", r)
		}
		st := c.Stats()
		if st.Live != 2 || st.Rows != 4 {
			t.Fatalf("Stats = %+v, want 2 live of 4 rows", st)
		}
	}
	check(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := c.Upsert(ctx, []Record{rec("x", testVec(4, 1))}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Upsert after Close = %v, want ErrClosed", err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check(c)
	if c.Dim() != 4 || c.Metric() != Dot || c.Dir() != dir || c.ReadOnly() {
		t.Fatalf("Dim, Metric, Dir, ReadOnly = %d %v %s %v", c.Dim(), c.Metric(), c.Dir(), c.ReadOnly())
	}
}

func TestNilCollectionIsSafe(t *testing.T) {
	var c *Collection
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := c.Upsert(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	var s *Snapshot
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestValidationRejectsWholeBatch(t *testing.T) {
	c := testCollection(t, 3, Cosine)
	ctx := context.Background()
	good := rec("ok", []float32{1, 0, 0})
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name string
		r    Record
		want string
	}{
		{"dimension", rec("x", []float32{1, 2}), "record 1 (id \"x\"): vector has 2 dimensions, want 3"},
		{"nan", rec("x", []float32{1, nan, 0}), "vector component 1 is NaN"},
		{"inf", rec("x", []float32{inf, 0, 0}), "vector component 0 is +Inf"},
		{"zero under cosine", rec("x", []float32{0, 0, 0}), "zero vector under the cosine metric"},
		{"empty id", rec("", []float32{1, 0, 0}), "record 1: id is empty"},
		{"long id", rec(strings.Repeat("x", 257), []float32{1, 0, 0}), "is 257 bytes, over 256"},
		{"bad utf-8", rec("a\xffb", []float32{1, 0, 0}), "is not valid UTF-8"},
		{"bad json", Record{ID: "x", Vector: []float32{1, 0, 0}, Metadata: []byte(`{"a":`), MetadataJSON: true}, "metadata is not a valid JSON object"},
		{"json array", Record{ID: "x", Vector: []float32{1, 0, 0}, Metadata: []byte(`[1]`), MetadataJSON: true}, "metadata is not a valid JSON object"},
		{"empty json", Record{ID: "x", Vector: []float32{1, 0, 0}, MetadataJSON: true}, "metadata is not a valid JSON object"},
		{"huge metadata", Record{ID: "x", Vector: []float32{1, 0, 0}, Metadata: make([]byte, MaxMetadataBytes+1)}, "over 1048576"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Upsert(ctx, []Record{good, tc.r})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Upsert = %v, want ErrInvalid containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "embedd/index: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if _, ok, _ := c.Get("ok"); ok {
				t.Fatal("the valid record of a rejected batch was stored")
			}
		})
	}
	if _, err := c.Delete(ctx, []string{"fine", ""}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Delete with an empty id = %v", err)
	}
	if st := c.Stats(); st.Rows != 0 || st.Seq != 0 {
		t.Fatalf("Stats after rejected batches = %+v", st)
	}
}

func TestCreateValidation(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir, Spec{Dim: 0, Metric: Cosine}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dim 0: %v", err)
	}
	if _, err := Create(dir, Spec{Dim: MaxDim + 1, Metric: Cosine}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dim too large: %v", err)
	}
	if _, err := Create(dir, Spec{Dim: 3}); !errors.Is(err, ErrInvalid) {
		t.Errorf("the zero metric: %v, want ErrInvalid (it is no metric)", err)
	}
	if _, err := Create(dir, Spec{Dim: 3, Metric: Metric(9)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad metric: %v", err)
	}
	c, err := Create(dir, Spec{Dim: 3, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Create(dir, Spec{Dim: 3, Metric: L2}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of an empty directory = %v, want ErrNotFound", err)
	}
}

func TestCosineStoresUnitVectors(t *testing.T) {
	c := testCollection(t, 2, Cosine)
	mustUpsert(t, c, rec("a", []float32{3, 4}))
	r, _, _ := c.Get("a")
	if math.Abs(float64(r.Vector[0])-0.6) > 1e-6 || math.Abs(float64(r.Vector[1])-0.8) > 1e-6 {
		t.Fatalf("stored %v, want [0.6 0.8]", r.Vector)
	}
}

func TestOneWriterPerDirectory(t *testing.T) {
	c := testCollection(t, 2, Dot)
	if _, err := Open(c.Dir()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	ro, err := OpenReadOnly(c.Dir())
	if err != nil {
		t.Fatalf("OpenReadOnly beside a writer: %v", err)
	}
	defer ro.Close()
	if err := ro.Upsert(context.Background(), []Record{rec("a", testVec(2, 1))}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Upsert = %v", err)
	}
	if err := ro.Checkpoint(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Checkpoint = %v", err)
	}
}

func TestReadOnlySeesWALWithoutWriting(t *testing.T) {
	c := testCollection(t, 4, L2)
	for i := range 50 {
		mustUpsert(t, c, Record{ID: ids(50, "id")[i], Vector: testVec(4, float32(i)), Metadata: []byte(`{"i":1}`), MetadataJSON: true})
	}
	if _, err := c.Delete(context.Background(), []string{"id3"}); err != nil {
		t.Fatal(err)
	}
	before := dirSnapshot(t, c.Dir())
	ro, err := OpenReadOnly(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if after := dirSnapshot(t, c.Dir()); !slices.Equal(before, after) {
		t.Fatalf("OpenReadOnly changed the directory:\n%v\n%v", before, after)
	}
	s, err := ro.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Live() != 49 || s.Len() != 50 {
		t.Fatalf("read-only sees %d live of %d", s.Live(), s.Len())
	}
	for i := range 50 {
		row, ok := s.Lookup(ids(50, "id")[i])
		if i == 3 {
			if ok {
				t.Fatal("deleted id3 is visible read-only")
			}
			continue
		}
		if !ok || s.Row(row)[0] != float32(i) || s.Norms()[row] == 0 {
			t.Fatalf("id%d: row %d ok %v", i, row, ok)
		}
	}
	// Later writes are not followed.
	mustUpsert(t, c, rec("new", testVec(4, 1)))
	if _, ok, _ := ro.Get("new"); ok {
		t.Fatal("read-only collection followed a later write")
	}
}

// dirSnapshot lists dir's files with sizes and modification times.
func dirSnapshot(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+" "+info.ModTime().String()+" "+string(rune(info.Size())))
	}
	return out
}

func TestCheckpointBoundsReplay(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 8, Metric: Dot}, WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustUpsert(t, c, rec(ids(20, "k")[i], testVec(8, float32(i))))
	}
	if err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ := listSegments(dir)
	if len(segs) != 1 || segs[0].start != 21 {
		t.Fatalf("segments after checkpoint = %v, want one starting at 21", segs)
	}
	mustUpsert(t, c, rec("after", testVec(8, 99)))
	crashClose(t, c)
	ck, err := readCheckpoint(dir)
	if err != nil || ck.seq != 20 || ck.rows != 20 {
		t.Fatalf("checkpoint = %+v, %v", ck, err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, ok, _ := c.Get("after"); !ok || r.Vector[0] != 99 {
		t.Fatal("the write after the checkpoint was not replayed")
	}
	if st := c.Stats(); st.Seq != 21 || st.Live != 21 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestBackgroundCheckpoint(t *testing.T) {
	c := testCollection(t, 64, Dot, WithCheckpointBytes(16<<10))
	for i := range 200 {
		mustUpsert(t, c, rec(ids(200, "k")[i], testVec(64, float32(i))))
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint after 50 KB of WAL with a 16 KiB threshold")
		}
		time.Sleep(5 * time.Millisecond)
	}
	segs, _ := listSegments(c.Dir())
	var total int64
	for _, s := range segs {
		st, _ := os.Stat(s.path)
		total += st.Size()
	}
	if total > 80<<10 {
		t.Fatalf("WAL is %d bytes after checkpoints", total)
	}
}

func TestCloseAnswersWaitingWriters(t *testing.T) {
	c, err := Create(t.TempDir(), Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			errs <- c.Upsert(context.Background(), []Record{rec(ids(16, "w")[i], testVec(4, 1))})
		}()
	}
	time.Sleep(time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 16 {
		if err := <-errs; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	}
}

func TestStrayFilesRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 2, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stray := []string{"vectors-0000000000000009.f32", "ids-0000000000000009.dat", ".CHECKPOINT.tmp123"}
	for _, name := range stray {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range stray {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s survived Open", name)
		}
	}
}

func TestUpsertContextCancelled(t *testing.T) {
	c := testCollection(t, 2, Dot)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Upsert(ctx, []Record{rec("a", testVec(2, 1))}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Upsert with a cancelled context = %v", err)
	}
}
