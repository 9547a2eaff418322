package index

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/embedd/embedd/index/flat"
)

// recordingBackend runs flat.Search and records what it was given.
type recordingBackend struct {
	mu       sync.Mutex // guards seen and released
	seen     []Matrix
	released []uint64
}

func (b *recordingBackend) Search(ctx context.Context, m Matrix, q []float32, k int, o flat.Options) ([][]flat.Hit, error) {
	b.mu.Lock()
	b.seen = append(b.seen, m)
	b.mu.Unlock()
	return flat.Search(ctx, m.Matrix, q, k, o)
}

func (b *recordingBackend) Name() string { return "recording" }

func (b *recordingBackend) Release(id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.released = append(b.released, id)
}

func TestSearchGoesThroughBackend(t *testing.T) {
	b := &recordingBackend{}
	c, err := Create(t.TempDir(), Spec{Dim: 2, Metric: Dot}, WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	search := func() Matrix {
		t.Helper()
		if _, err := c.Search(ctx, [][]float32{{1, 0}}, 1, SearchOptions{}); err != nil {
			t.Fatal(err)
		}
		return b.seen[len(b.seen)-1]
	}
	mustUpsert(t, c, rec("a", []float32{1, 0}), rec("b", []float32{0, 1}))
	m1 := search()
	mustUpsert(t, c, rec("a", []float32{2, 0})) // tombstone + append
	m2 := search()
	if m1.Collection == 0 || m2.Collection != m1.Collection {
		t.Fatalf("collection ids %d, %d: want equal and non-zero", m1.Collection, m2.Collection)
	}
	if m1.Rows != 2 || m2.Rows != 3 || m2.Generation != m1.Generation {
		t.Fatalf("rows %d→%d gen %d→%d: want 2→3 in one generation", m1.Rows, m2.Rows, m1.Generation, m2.Generation)
	}
	if !slices.Equal(m2.Data[:4], m1.Data[:4]) || len(m2.Data) != 3*2 {
		t.Fatalf("appended matrix %v does not extend %v", m2.Data, m1.Data)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	m3 := search()
	if m3.Generation == m2.Generation || m3.Collection != m1.Collection || m3.Rows != 2 {
		t.Fatalf("after compaction: %+v", m3)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.released, []uint64{m1.Collection}) {
		t.Fatalf("released %v, want [%d]", b.released, m1.Collection)
	}
	c2 := testCollection(t, 2, Dot, WithBackend(b))
	mustUpsert(t, c2, rec("a", []float32{1, 0}))
	if m := search2(t, c2, b); m.Collection == m1.Collection {
		t.Fatalf("second collection reuses id %d", m.Collection)
	}
}

func search2(t *testing.T, c *Collection, b *recordingBackend) Matrix {
	t.Helper()
	if _, err := c.Search(context.Background(), [][]float32{{1, 0}}, 1, SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	return b.seen[len(b.seen)-1]
}

func TestDefaultBackendIsCPU(t *testing.T) {
	if got := buildOptions(nil).backend.Name(); got != "cpu" {
		t.Fatalf("default backend %q", got)
	}
	if got := buildOptions([]Option{WithBackend(nil)}).backend.Name(); got != "cpu" {
		t.Fatalf("WithBackend(nil) gives %q", got)
	}
}
