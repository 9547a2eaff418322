package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// sumsCollection makes an l2 collection (so it has all four data files)
// whose checksums were extended over several checkpoints, and closes it.
func sumsCollection(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 4, Metric: L2}, WithCheckpointBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for i := range 50 {
			mustUpsert(t, c, Record{ID: fmt.Sprint(i), Vector: testVec(4, float32(round*100+i)), Metadata: fmt.Appendf(nil, `{"r":%d}`, round), MetadataJSON: true})
		}
		if err := c.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerifyChecksIncrementalSums(t *testing.T) {
	dir := sumsCollection(t)
	rep, err := Verify(dir)
	if err != nil || len(rep.Files) != 4 || rep.NoChecksums || rep.Bytes <= 150*4*4 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	// Compaction writes a new generation with its own sums.
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, c, rec("after", testVec(4, 9)))
	if err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Verify works beside the open writer.
	if _, err := Verify(dir); err != nil {
		t.Fatalf("Verify beside a writer after compaction: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatal(err)
	}
}

// TestFlippedDataBytesAreFound: a flipped byte in a data file was served
// (a wrong id, wrong metadata, a wrong score). Open now finds it in the
// files it reads (ids, meta, norms); Verify finds it in any, the matrix too.
func TestFlippedDataBytesAreFound(t *testing.T) {
	for _, f := range []int{fileVectors, fileNorms, fileIDs, fileMeta} {
		dir := sumsCollection(t)
		ck, err := readCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := generationFiles(dir, ck.gen)[f]
		flip(t, path, ck.lengths(4, true)[f]-3)
		_, err = Verify(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("Verify after a flip in %s: %v", path, err)
		}
		c, err := Open(dir)
		if f == fileVectors {
			// Open maps the matrix without reading it: Verify's job.
			if err != nil {
				t.Errorf("Open after a flip in the matrix: %v", err)
			}
			c.Close()
			continue
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open after a flip in %s: %v, want ErrCorrupt naming it", path, err)
			c.Close()
		}
	}
}

// TestCheckpointVersion1StillOpens: a CHECKPOINT written before checksums
// opens, Verify says it has none, and the next checkpoint adds them.
func TestCheckpointVersion1StillOpens(t *testing.T) {
	dir := sumsCollection(t)
	ck, err := readCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck.hasSums = false
	if err := writeCheckpoint(dir, ck); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dir + "/" + checkpointName); b[8] != checkpointVersion1 {
		t.Fatalf("rewritten CHECKPOINT has version %d", b[8])
	}
	if rep, err := Verify(dir); err != nil || !rep.NoChecksums {
		t.Fatalf("Verify of a version 1 CHECKPOINT = %+v, %v", rep, err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, c, rec("new", testVec(4, 1)))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir); err != nil || rep.NoChecksums {
		t.Fatalf("Verify after the next checkpoint = %+v, %v", rep, err)
	}
}

// TestVerifyBesideBusyWriter: Verify reads while a writer appends,
// checkpoints and compacts; records being written and files being replaced
// must not read as damage.
func TestVerifyBesideBusyWriter(t *testing.T) {
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: 8, Metric: L2}, WithCheckpointBytes(16<<10), WithAutoCompact(0.3, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := c.Upsert(ctx, []Record{rec(fmt.Sprint(i%50), testVec(8, float32(i)))}); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Until the writer has compacted (rotating the WAL, replacing
	// CHECKPOINT and the data files) a good number of times.
	for n := 0; c.Stats().Compactions < 50; n++ {
		if _, err := Verify(dir); err != nil {
			t.Fatalf("Verify %d beside a writer: %v (stats %+v)", n, err, c.Stats())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
