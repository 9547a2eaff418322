package server

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/models/modelstest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

func vecQuery(v []float32) *embeddv1.Query {
	return &embeddv1.Query{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: v}}}
}

func TestIndexServiceEndToEnd(t *testing.T) {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	ts := startServer(t, cfg)
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	ctx := context.Background()

	// A vector collection and a text collection bound to model a.
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "vecs", Dimension: 3, Metric: embeddv1.Metric_METRIC_DOT}); err != nil {
		t.Fatal(err)
	}
	cr, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "docs", Model: "a"})
	if err != nil || cr.Collection.Dimension != 384 || cr.Collection.Metric != embeddv1.Metric_METRIC_COSINE {
		t.Fatalf("create with model: %v %v", cr, err)
	}
	if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "vecs", Records: []*embeddv1.Record{
		{Id: "x", Vector: []float32{1, 0, 0}, Metadata: []byte(`{"lang":"en"}`)},
		{Id: "y", Vector: []float32{0, 2, 0}, Metadata: []byte(`{"lang":"fr"}`)},
		{Id: "z", Vector: []float32{0.5, 0.5, 0}},
	}}); err != nil {
		t.Fatal(err)
	}
	sr, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "vecs", Queries: []*embeddv1.Query{vecQuery([]float32{1, 1, 0})}, K: 2, IncludeMetadata: true, IncludeVectors: true})
	if err != nil {
		t.Fatal(err)
	}
	hits := sr.Results[0].Hits
	if len(hits) != 2 || hits[0].Id != "y" || hits[0].Score != 2 || hits[1].Id != "x" || hits[1].Score != 1 ||
		string(hits[0].Metadata) != `{"lang":"fr"}` || fmt.Sprint(hits[0].Vector) != "[0 2 0]" {
		t.Fatalf("dot search: %v", hits)
	}
	sr, err = ix.Search(ctx, &embeddv1.SearchRequest{Collection: "vecs", Queries: []*embeddv1.Query{vecQuery([]float32{1, 1, 0})}, K: 10, Filter: map[string]string{"lang": "en"}})
	if err != nil || len(sr.Results[0].Hits) != 1 || sr.Results[0].Hits[0].Id != "x" {
		t.Fatalf("filtered search: %v %v", sr, err)
	}

	// Texts in, search by text: a document is its own nearest neighbour.
	docs := corpus[:10]
	var recs []*embeddv1.Record
	for i, d := range docs {
		recs = append(recs, &embeddv1.Record{Id: fmt.Sprintf("doc-%d", i), Text: d})
	}
	if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "docs", Records: recs}); err != nil {
		t.Fatal(err)
	}
	sr, err = ix.Search(ctx, &embeddv1.SearchRequest{Collection: "docs", Queries: []*embeddv1.Query{
		{Query: &embeddv1.Query_Text{Text: docs[3]}}, {Query: &embeddv1.Query_Text{Text: docs[7]}},
	}, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	for qi, want := range []string{"doc-3", "doc-7"} {
		top := sr.Results[qi].Hits[0]
		if top.Id != want || math.Abs(float64(top.Score)-1) > 1e-4 {
			t.Errorf("text query %d: top hit %s score %g, want %s at 1", qi, top.Id, top.Score, want)
		}
	}
	// The stored vector is the embedding of the text.
	emb, _ := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{docs[5]}})
	gr, err := ix.Get(ctx, &embeddv1.GetRequest{Collection: "docs", Ids: []string{"doc-5", "nope"}})
	if err != nil || len(gr.Records) != 1 || fmt.Sprint(gr.Missing) != "[nope]" || modelstest.Cosine(gr.Records[0].Vector, emb.Embeddings[0].Values) < 0.99999 {
		t.Fatalf("Get: %v %v", gr, err)
	}
	dr, err := ix.Delete(ctx, &embeddv1.DeleteRequest{Collection: "docs", Ids: []string{"doc-3", "ghost"}})
	if err != nil || dr.Deleted != 1 {
		t.Fatalf("Delete: %v %v", dr, err)
	}
	sr, _ = ix.Search(ctx, &embeddv1.SearchRequest{Collection: "docs", Queries: []*embeddv1.Query{{Query: &embeddv1.Query_Text{Text: docs[3]}}}, K: 10})
	for _, h := range sr.Results[0].Hits {
		if h.Id == "doc-3" {
			t.Error("deleted record still found")
		}
	}
	lr, err := ix.ListCollections(ctx, &embeddv1.ListCollectionsRequest{})
	if err != nil || len(lr.Collections) != 2 || lr.Collections[0].Name != "docs" || lr.Collections[0].Count != 9 || lr.Collections[1].Count != 3 {
		t.Fatalf("List: %v %v", lr, err)
	}
	if _, err := ix.DropCollection(ctx, &embeddv1.DropCollectionRequest{Name: "vecs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "vecs", Queries: []*embeddv1.Query{vecQuery([]float32{1, 1, 0})}, K: 1}); status.Code(err) != codes.NotFound {
		t.Errorf("search on a dropped collection: %v", err)
	}
}

func TestIndexServiceBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	ts := startServer(t, cfg)
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	ctx := context.Background()
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "c", Dimension: 2}); err != nil {
		t.Fatal(err)
	}
	up := func(v ...float32) error {
		_, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "ok", Vector: []float32{1, 1}}, {Id: "bad", Vector: v}}})
		return err
	}
	nan := float32(math.NaN())
	search := func(k uint32) error {
		_, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "c", Queries: []*embeddv1.Query{vecQuery([]float32{1, 0})}, K: k})
		return err
	}
	for _, c := range []struct {
		name string
		err  error
		code codes.Code
		want string
	}{
		{"wrong dimension", up(1, 2, 3), codes.InvalidArgument, "3 dimensions, want 2"},
		{"NaN", up(nan, 1), codes.InvalidArgument, "NaN"},
		{"Inf", up(float32(math.Inf(1)), 1), codes.InvalidArgument, "Inf"},
		{"zero under cosine", up(0, 0), codes.InvalidArgument, "zero"},
		{"k 0", search(0), codes.InvalidArgument, "k 0 is not in [1, 10000]"},
		{"k 10001", search(10001), codes.InvalidArgument, "k 10001 is not in [1, 10000]"},
		{"unknown collection", func() error {
			_, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "nope", Records: []*embeddv1.Record{{Id: "a", Vector: []float32{1, 1}}}})
			return err
		}(), codes.NotFound, "nope"},
		{"path trick", func() error {
			_, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "../etc", Dimension: 2})
			return err
		}(), codes.InvalidArgument, `collection name "../etc" does not match [a-z0-9_-]{1,64}`},
		{"upper case", func() error {
			_, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "Docs", Dimension: 2})
			return err
		}(), codes.InvalidArgument, "does not match"},
		{"too long name", func() error {
			_, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: strings.Repeat("a", 65), Dimension: 2})
			return err
		}(), codes.InvalidArgument, "does not match"},
		{"exists", func() error {
			_, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "c", Dimension: 2})
			return err
		}(), codes.AlreadyExists, "c"},
		{"no dimension", func() error {
			_, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "d"})
			return err
		}(), codes.InvalidArgument, "give a dimension or a model"},
		{"vector and text", func() error {
			_, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "a", Vector: []float32{1, 1}, Text: "t"}}})
			return err
		}(), codes.InvalidArgument, "records[0]: give a vector or a text, not both"},
		{"text into a collection of another width", func() error {
			_, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "a", Text: "hello"}}})
			return err
		}(), codes.InvalidArgument, "collection c has dimension 2 but model a gives 384"},
		{"bad metadata", func() error {
			_, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "a", Vector: []float32{1, 1}, Metadata: []byte("{not json")}}})
			return err
		}(), codes.InvalidArgument, "JSON"},
	} {
		st := status.Convert(c.err)
		if st.Code() != c.code || !strings.Contains(st.Message(), c.want) {
			t.Errorf("%s: got %v %q, want %v containing %q", c.name, st.Code(), st.Message(), c.code, c.want)
		}
	}
	// Nothing of a rejected batch was stored, not even its good record.
	gr, err := ix.Get(ctx, &embeddv1.GetRequest{Collection: "c", Ids: []string{"ok", "bad"}})
	if err != nil || len(gr.Records) != 0 {
		t.Errorf("records of rejected batches were stored: %v %v", gr, err)
	}
}

func TestCollectionsSurviveRestart(t *testing.T) {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	ctx := context.Background()
	first := startServer(t, cfg)
	ix := embeddv1.NewIndexServiceClient(first.conn)
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "keep", Dimension: 2, Metric: embeddv1.Metric_METRIC_L2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "keep", Records: []*embeddv1.Record{{Id: "p", Vector: []float32{3, 4}}, {Id: "q", Vector: []float32{0, 1}}}}); err != nil {
		t.Fatal(err)
	}
	first.stop()
	second := startServer(t, cfg)
	ix = embeddv1.NewIndexServiceClient(second.conn)
	gr, err := ix.Get(ctx, &embeddv1.GetRequest{Collection: "keep", Ids: []string{"p"}})
	if err != nil || len(gr.Records) != 1 || fmt.Sprint(gr.Records[0].Vector) != "[3 4]" {
		t.Fatalf("after restart: %v %v", gr, err)
	}
	sr, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "keep", Queries: []*embeddv1.Query{vecQuery([]float32{0, 0})}, K: 2})
	if err != nil || sr.Results[0].Hits[0].Id != "q" || sr.Results[0].Hits[0].Score != 1 || sr.Results[0].Hits[1].Score != 25 {
		t.Fatalf("L2 search after restart: %v %v", sr, err)
	}
}

// TestDamagedCollectionIsListedAndRefused: a collection whose files fail
// their checks at start is listed with the reason, its calls answer
// FAILED_PRECONDITION, and the other collections and the embedding
// service serve (issue 11.10).
func TestDamagedCollectionIsListedAndRefused(t *testing.T) {
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	ts := startServer(t, cfg)
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	ctx := context.Background()
	for _, name := range []string{"good", "bad"} {
		if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: name, Dimension: 2, Metric: embeddv1.Metric_METRIC_DOT}); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: name, Records: []*embeddv1.Record{{Id: "x", Vector: []float32{1, 2}}}}); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "bad", "CHECKPOINT"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, cfg)
	ix = embeddv1.NewIndexServiceClient(ts.conn)
	list, err := ix.ListCollections(ctx, &embeddv1.ListCollectionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Collections) != 2 || list.Collections[0].Name != "bad" || list.Collections[0].Unavailable == "" ||
		list.Collections[1].Name != "good" || list.Collections[1].Unavailable != "" || list.Collections[1].Count != 1 {
		t.Fatalf("ListCollections = %v; want bad (unavailable, with the reason) and good (1 record)", list.Collections)
	}
	_, err = ix.Search(ctx, &embeddv1.SearchRequest{Collection: "bad", K: 1, Queries: []*embeddv1.Query{vecQuery([]float32{1, 0})}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("search of the damaged collection: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "good", K: 1, Queries: []*embeddv1.Query{vecQuery([]float32{1, 0})}}); err != nil {
		t.Errorf("search of the good collection: %v", err)
	}
	if _, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"still serving"}}); err != nil {
		t.Errorf("embedding beside a damaged collection: %v", err)
	}
}
