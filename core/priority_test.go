package core

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/embedd/embedd/models"
)

// TestBulkNeverOverloadsInteractive fills the bulk lane of a tiny queue
// from many goroutines while interactive calls run: every interactive
// call succeeds (the lanes have separate bounds), some bulk calls are
// refused as Overloaded, and a bulk vector equals the interactive one.
func TestBulkNeverOverloadsInteractive(t *testing.T) {
	c := open(t, Config{CacheBytes: -1, MaxTextsPerRequest: 4, Models: []ModelConfig{{
		Config: models.Config{ID: models.DefaultModelID, Path: "x"}, QueueSize: 4, MaxBatchSize: 2, BulkMaxBatchSize: 1}}})
	ctx := context.Background()
	long := strings.Repeat("word ", 120)
	texts := func(tag string) []string {
		return []string{long + tag + "1", long + tag + "2", long + tag + "3", long + tag + "4"}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for i := range 8 {
		wg.Go(func() {
			_, err := c.EmbedBulk(ctx, "", texts(fmt.Sprint("b", i)), models.Options{})
			if e := AsError(err); e != nil && e.Kind == Overloaded {
				mu.Lock()
				refused++
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	for i := range 3 {
		if _, err := c.Embed(ctx, "", texts(fmt.Sprint("i", i)), models.Options{}); err != nil {
			t.Errorf("interactive call %d beside bulk work: %v", i, err)
		}
	}
	wg.Wait()
	if refused == 0 {
		t.Error("8 concurrent 4-text bulk calls into a bulk lane of 4 were all accepted")
	}
	bulk, err := c.EmbedBulk(ctx, "", []string{"Hello, world"}, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := c.Embed(ctx, "", []string{"Hello, world"}, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bulk.Vectors[0], inter.Vectors[0]) {
		t.Error("the bulk lane's vector differs from the interactive one")
	}
}

// TestBulkWorkDoesNotFillTheCache: bulk texts are served from the cache
// when there, but never added to it, so a batch job's distinct texts do not
// evict what interactive callers repeat.
func TestBulkWorkDoesNotFillTheCache(t *testing.T) {
	c := open(t, Config{})
	ctx := context.Background()
	if _, err := c.EmbedBulk(ctx, "", []string{"bulk only"}, models.Options{}); err != nil {
		t.Fatal(err)
	}
	if st := c.CacheStats(); st.Bytes != 0 {
		t.Fatalf("bulk work filled the cache: %+v", st)
	}
	if _, err := c.Embed(ctx, "", []string{"interactive"}, models.Options{}); err != nil {
		t.Fatal(err)
	}
	before := c.CacheStats()
	if _, err := c.EmbedBulk(ctx, "", []string{"interactive"}, models.Options{}); err != nil {
		t.Fatal(err)
	}
	if after := c.CacheStats(); after.Hits != before.Hits+1 || after.Bytes != before.Bytes {
		t.Fatalf("bulk work on a cached text: %+v then %+v; want one hit and no new entry", before, after)
	}
}
