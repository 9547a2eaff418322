package index

import (
	"context"
	"sync/atomic"

	"github.com/embedd/embedd/index/flat"
)

// Backend scores queries against a collection's matrix and returns the top
// k rows per query. The CPU backend (flat.Search) is the default; a GPU
// backend (package index/gpusearch) plugs in with WithBackend.
//
// Search has flat.Search's contract: for each of the len(queries)/m.Dim
// queries (row-major; not yet normalised: a cosine backend normalises them
// itself), the k best rows of m.Matrix under o.Metric that o.Skip does not
// skip, best first, equal scores by ascending row, fewer than k when fewer
// rows are left; L2 scores are squared distances. o.Workers is a hint a
// backend may ignore. Search may be called concurrently, for the same and
// for different collections, and must not keep m's slices after it returns.
type Backend interface {
	Search(ctx context.Context, m Matrix, queries []float32, k int, o flat.Options) ([][]flat.Hit, error)
	// Name says which backend runs, for logs and health ("cpu", "cuda:0").
	Name() string
}

// Releaser is implemented by backends that keep per-collection state (a
// device copy of the matrix): a Collection calls Release with its
// Matrix.Collection when it closes. Release must be safe to call
// concurrently with Search and more than once.
type Releaser interface {
	Release(collection uint64)
}

// Matrix is what a Backend searches: one snapshot's matrix plus what lets a
// backend keep a copy of it (on a device) in step cheaply.
//
// Within one (Collection, Generation) rows are only ever appended and never
// change: an upsert tombstones the old row and appends a new one, and a
// delete only sets a bit in the skip bitmap. So a backend that holds the
// first r rows of (Collection, Generation) holds them correctly and needs
// to copy only rows [r, Rows) when Rows > r. A snapshot taken earlier may
// have fewer rows than one already copied; its rows are a prefix. A new
// Generation (compaction) replaces every row.
type Matrix struct {
	flat.Matrix
	// Collection identifies the open Collection the matrix belongs to,
	// unique within the process and never reused (a reopened collection
	// gets a new one).
	Collection uint64
	// Generation is the snapshot's generation number.
	Generation uint64
	// Rows is the number of rows, len(Data)/Dim.
	Rows int
}

// collectionIDs hands out Matrix.Collection values.
var collectionIDs atomic.Uint64

// newCollectionID returns a process-unique, never-zero collection identity.
func newCollectionID() uint64 { return collectionIDs.Add(1) }

// CPUBackend is the default Backend: flat.Search on the calling goroutine
// and o.Workers goroutines. It holds nothing; its zero value is ready.
type CPUBackend struct{}

// Search runs flat.Search on m.Matrix.
func (CPUBackend) Search(ctx context.Context, m Matrix, queries []float32, k int, o flat.Options) ([][]flat.Hit, error) {
	return flat.Search(ctx, m.Matrix, queries, k, o)
}

// Name returns "cpu".
func (CPUBackend) Name() string { return "cpu" }
