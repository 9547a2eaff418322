package core

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

// TestBatchingKeepsResults: however the batcher packs a request (small
// budgets, few rows), every vector equals the one computed alone, in the
// request's order.
func TestBatchingKeepsResults(t *testing.T) {
	ctx := context.Background()
	alone := open(t, Config{CacheBytes: -1})
	want := make([][]float32, len(modelstest.SampleTexts))
	for i, s := range modelstest.SampleTexts {
		res, err := alone.Embed(ctx, "", []string{s}, models.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Vectors[0]
	}
	for _, budget := range []int{256, 600, 100000} {
		c := open(t, Config{CacheBytes: -1, Models: []ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "x"}, MaxBatchTokens: budget, MaxBatchSize: 3}}})
		res, err := c.Embed(ctx, "", modelstest.SampleTexts, models.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range modelstest.SampleTexts {
			if cs := modelstest.Cosine(res.Vectors[i], want[i]); cs < 0.99999 {
				t.Errorf("budget %d, text %d: cosine to the unbatched vector %.7f < 0.99999", budget, i, cs)
			}
		}
	}
}

func TestEmbedErrors(t *testing.T) {
	c := open(t, Config{MaxTextsPerRequest: 4, MaxTextBytes: 2000, Models: []ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "x"}, QueueSize: 4}}})
	ctx := context.Background()
	long := strings.Repeat("word ", 300)
	for _, tc := range []struct {
		name  string
		model string
		texts []string
		o     models.Options
		kind  Kind
		field string
		msg   string
	}{
		{"empty list", "", nil, models.Options{}, InvalidArgument, "texts", "the list is empty"},
		{"too many", "", []string{"a", "b", "c", "d", "e"}, models.Options{}, InvalidArgument, "texts", "5 texts is over the limit of 4"},
		{"too long", "", []string{"a", strings.Repeat("x", 2001)}, models.Options{}, InvalidArgument, "texts[1]", "2001 bytes is over the limit of 2000"},
		{"invalid utf-8", "", []string{"fine", "bad \xff"}, models.Options{}, InvalidArgument, "texts[1]", "is not valid UTF-8"},
		{"reject over-long", "", []string{"ok", long}, models.Options{Truncate: models.Reject}, InvalidArgument, "texts[1]", "302 tokens, over model minilm-l6-random's limit of 256"},
		{"dimensions", "", []string{"x"}, models.Options{Dimensions: 385}, InvalidArgument, "dimensions", "dimensions 385 is not in [1, 384]"},
		{"unknown model", "nope", []string{"x"}, models.Options{}, NotFound, "model", `model "nope" is not loaded`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Embed(ctx, tc.model, tc.texts, tc.o)
			e := AsError(err)
			if e == nil || e.Kind != tc.kind || e.Field != tc.field || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("got %#v, want kind %v field %q message containing %q", e, tc.kind, tc.field, tc.msg)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Embed(cctx, "", []string{"a"}, models.Options{}); AsError(err).Kind != Canceled {
		t.Errorf("cancelled context: got %v, want Canceled", err)
	}
}

// TestOverloadedCarriesRetryHint fills a one-text queue while the worker is
// busy: the next request is refused at once as Overloaded with a hint.
func TestOverloadedCarriesRetryHint(t *testing.T) {
	c := open(t, Config{CacheBytes: -1, MaxTextsPerRequest: 1, Models: []ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "x"}, QueueSize: 1, MaxBatchSize: 1}}})
	ctx := context.Background()
	long := strings.Repeat("word ", 250)
	var wg sync.WaitGroup
	var overloaded *Error
	var mu sync.Mutex
	for i := range 16 { // some of 16 concurrent single-text requests find the queue full
		wg.Go(func() {
			_, err := c.Embed(ctx, "", []string{long + string(rune('a'+i))}, models.Options{})
			if e := AsError(err); e != nil && e.Kind == Overloaded {
				mu.Lock()
				overloaded = e
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if overloaded == nil {
		t.Fatal("16 concurrent requests into a queue of 1 were all accepted")
	}
	if overloaded.RetryAfter < 50*time.Millisecond || !strings.Contains(overloaded.Msg, "retry after") {
		t.Errorf("overloaded error %q has RetryAfter %v; want ≥ 50ms, said in the message", overloaded.Msg, overloaded.RetryAfter)
	}
}

func TestCacheServesRepeats(t *testing.T) {
	c := open(t, Config{})
	ctx := context.Background()
	a, err := c.Embed(ctx, "", []string{"cached text"}, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Embed(ctx, "", []string{"cached text"}, models.Options{Dimensions: 16, Normalize: models.NormalizeOn})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.CacheStats(); st.Hits != 1 || st.Misses != 1 {
		t.Errorf("cache stats %+v; want 1 hit and 1 miss", st)
	}
	if cs := modelstest.Cosine(b.Vectors[0], a.Vectors[0][:16]); cs < 0.99999 || len(b.Vectors[0]) != 16 {
		t.Errorf("cached vector with dimensions 16: %d components, cosine %g to the prefix", len(b.Vectors[0]), cs)
	}
}

func TestClosedCoreIsUnavailable(t *testing.T) {
	c := open(t, Config{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Embed(context.Background(), "", []string{"after close"}, models.Options{})
	if AsError(err).Kind != Unavailable {
		t.Fatalf("Embed after Close: %v, want Unavailable", err)
	}
}

func TestCollectionsThroughTheCore(t *testing.T) {
	c := open(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	if _, err := c.Upsert(ctx, "docs", []Record{{ID: "a", Text: "x"}}, EmbedSpec{}); AsError(err).Kind != NotFound {
		t.Fatalf("upsert into a missing collection: %v, want NotFound", err)
	}
	info, err := c.CreateCollection("docs", index.Spec{Metric: index.Cosine, Model: models.DefaultModelID})
	if err != nil || info.Dim != 384 {
		t.Fatalf("create with a model: %+v, %v; want dimension 384", info, err)
	}
	if _, err := c.CreateCollection("docs", index.Spec{Dim: 4, Metric: index.Dot}); AsError(err).Kind != AlreadyExists {
		t.Fatalf("create twice: %v, want AlreadyExists", err)
	}
	if _, err := c.CreateCollection("big", index.Spec{Dim: 385, Metric: index.Cosine, Model: models.DefaultModelID}); AsError(err).Field != "dimension" {
		t.Fatalf("dimension over the model's: %v, want an error on dimension", err)
	}
	recs := make([]Record, len(modelstest.SampleTexts))
	for i, s := range modelstest.SampleTexts {
		recs[i] = Record{ID: string(rune('a' + i)), Text: s + " (doc)", Metadata: []byte(`{"n":` + string(rune('0'+i%2)) + `}`)}
	}
	recs[2].Text = "an empty text is no text" // "" means "no text"
	if _, err := c.Upsert(ctx, "docs", append(recs, Record{ID: "z"}), EmbedSpec{}); AsError(err).Field != "records[8]" {
		t.Fatalf("record without vector or text: %v, want an error on records[8]", err)
	}
	if n, err := c.Upsert(ctx, "docs", recs, EmbedSpec{}); err != nil || n != len(recs) {
		t.Fatalf("upsert: %d, %v", n, err)
	}
	res, err := c.Search(ctx, SearchRequest{Collection: "docs", K: 3, Vectors: true, Filter: map[string]string{"n": "1"},
		Queries: []Query{{Text: modelstest.SampleTexts[1] + " (doc)"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0]) != 3 || res[0][0].ID != "b" || res[0][0].Score < 0.9999 {
		t.Fatalf("search for document b's own text under filter n=1: %+v", res[0])
	}
	got, missing, err := c.Get("docs", []string{"b", "nope"})
	if err != nil || len(got) != 1 || len(missing) != 1 || missing[0] != "nope" {
		t.Fatalf("Get: %v, %v, %v", got, missing, err)
	}
	if cs := modelstest.Cosine(res[0][0].Vector, got[0].Vector); cs < 0.999999 {
		t.Errorf("the hit's vector is not the stored one (cosine %g)", cs)
	}
	if n, err := c.Delete(ctx, "docs", []string{"b", "nope"}); err != nil || n != 1 {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if err := c.DropCollection("docs"); err != nil {
		t.Fatal(err)
	}
	if list, err := c.ListCollections(); err != nil || len(list) != 0 {
		t.Fatalf("after drop: %v, %v", list, err)
	}
	noData := open(t, Config{})
	if _, err := noData.ListCollections(); AsError(err).Kind != Unavailable {
		t.Errorf("collections without a data dir: %v, want Unavailable", err)
	}
}

func TestAsErrorNilAndWrapped(t *testing.T) {
	if AsError(nil) != nil || fail(nil) != nil {
		t.Fatal("nil error became non-nil")
	}
	e := Errorf(InvalidArgument, "k", "0 is not in [1, 10000]")
	wrapped := errors.Join(errors.New("context"), e)
	if got := AsError(wrapped); got != e {
		t.Fatalf("AsError of a wrapped *Error = %v, want the *Error itself", got)
	}
	for err, want := range map[error]Kind{
		index.ErrInvalid: InvalidArgument, index.ErrNotFound: NotFound, index.ErrExists: AlreadyExists,
		index.ErrUnavailable: FailedPrecondition, index.ErrCorrupt: FailedPrecondition, index.ErrLocked: FailedPrecondition,
		fmt.Errorf("embedd/index: /data/docs: %w", index.ErrNoSpace): NoSpace, index.ErrClosed: Unavailable,
		context.DeadlineExceeded: DeadlineExceeded, errors.New("boom"): Internal,
	} {
		if got := AsError(err); got.Kind != want {
			t.Errorf("AsError(%v).Kind = %v, want %v", err, got.Kind, want)
		}
	}
}

func TestNoTracerRecordsAndAllocatesNothing(t *testing.T) {
	c := open(t, Config{})
	ctx := context.Background()
	if got, span := c.startSpan(ctx, "x"); got != ctx || span.IsRecording() {
		t.Error("startSpan without a tracer changed the context or records")
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, span := c.startSpan(ctx, "x")
		if span.IsRecording() {
			span.SetAttributes(attrTexts.Int(1))
		}
		endSpan(span, nil)
	})
	if allocs != 0 {
		t.Errorf("span helpers without a tracer allocate %v times", allocs)
	}
}

// TestOnlyConfiguredModelsAreServed: a given registry may hold models the
// config does not list; the core neither lists nor runs them.
func TestOnlyConfiguredModelsAreServed(t *testing.T) {
	reg := testReg
	if skipReason == "" {
		var err error
		reg, err = models.OpenRegistry(models.RegistryConfig{Models: []models.Config{
			{ID: "one", Path: models.DefaultRegistryConfig().Models[0].Path},
			{ID: "two", Path: models.DefaultRegistryConfig().Models[0].Path},
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
	}
	c := open(t, Config{Models: []ModelConfig{{Config: models.Config{ID: "one", Path: "x"}}}}, WithRegistry(reg))
	if ms := c.Models(); len(ms) != 1 || ms[0].ID != "one" || !ms[0].Default {
		t.Fatalf("Models() = %+v; want only the configured default \"one\"", ms)
	}
	_, err := c.Embed(context.Background(), "two", []string{"x"}, models.Options{})
	if e := AsError(err); e == nil || e.Kind != NotFound || e.Field != "model" {
		t.Fatalf("Embed on an unconfigured model: %v, want NotFound on model", err)
	}
}

// TestCollectionsWrittenElsewhereAreServed: a collection another process
// wrote into the data dir (embedd import) while the core runs is listed and
// served without a restart (issue 12.3).
func TestCollectionsWrittenElsewhereAreServed(t *testing.T) {
	data := t.TempDir()
	c := open(t, Config{DataDir: data})
	col, err := index.Create(filepath.Join(data, "imported"), index.Spec{Dim: 2, Metric: index.Dot})
	if err != nil {
		t.Fatal(err)
	}
	if err := col.Upsert(context.Background(), []index.Record{{ID: "a", Vector: []float32{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := col.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(context.Background(), SearchRequest{Collection: "imported", K: 1, Queries: []Query{{Vector: []float32{1, 0}}}})
	if err != nil || len(res[0]) != 1 || res[0][0].ID != "a" {
		t.Fatalf("search of a collection imported while running: %v, %v", res, err)
	}
	list, err := c.ListCollections()
	if err != nil || len(list) != 1 || list[0].Name != "imported" || list[0].Live != 1 {
		t.Fatalf("ListCollections = %+v, %v", list, err)
	}
}

// TestCacheOffStaysOff: "cache_bytes": -1 turns the cache off however many
// times the defaults are applied (the server applies them, then Open).
func TestCacheOffStaysOff(t *testing.T) {
	cfg := Config{CacheBytes: -1}.Defaults().Defaults()
	if cfg.CacheBytes != -1 {
		t.Fatalf("-1 after Defaults twice: %d", cfg.CacheBytes)
	}
	c := open(t, cfg)
	for range 2 {
		if _, err := c.Embed(context.Background(), "", []string{"same text"}, models.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.CacheStats(); st.Hits != 0 || st.Bytes != 0 {
		t.Fatalf("cache off, yet %+v", st)
	}
}
