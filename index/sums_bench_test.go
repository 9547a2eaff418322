package index

import (
	"fmt"
	"testing"
)

// openBenchDir writes 1M rows of dimension 16 with ids and JSON metadata,
// checkpointed, and returns the directory.
func openBenchDir(b *testing.B) string {
	b.Helper()
	const dim, n, batch = 16, 1_000_000, 10_000
	dir := b.TempDir()
	c, err := Create(dir, Spec{Dim: dim, Metric: Cosine}, WithCheckpointBytes(0))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]Record, batch)
	for i := 0; i < n; i += batch {
		for j := range recs {
			r := i + j
			recs[j] = Record{ID: fmt.Sprintf("r%07d", r), Vector: testVec(dim, float32(r%1000)/1000+0.001), Metadata: fmt.Appendf(nil, `{"n":%d}`, r%100), MetadataJSON: true}
		}
		mustUpsert(b, c, recs...)
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkOpen is Open and Close of a checkpointed 1M×16 collection: what
// the checksums of ids and metadata add to an open (the matrix is mapped,
// not read).
func BenchmarkOpen(b *testing.B) {
	dir := openBenchDir(b)
	for b.Loop() {
		c, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkVerify reads and checksums every data file of the same
// collection (b.SetBytes: the bytes read).
func BenchmarkVerify(b *testing.B) {
	dir := openBenchDir(b)
	rep, err := Verify(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(rep.Bytes)
	for b.Loop() {
		if _, err := Verify(dir); err != nil {
			b.Fatal(err)
		}
	}
}
