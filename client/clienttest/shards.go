package clienttest

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/embedd/embedd/client"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// CheckShardedSearch fails the test unless shards answer req exactly as
// whole, one server holding all their records, does: the same hits with
// the same scores in the same order, and no shard missing.
func CheckShardedSearch(t testing.TB, shards *client.Shards, whole *client.Client, req *embeddv1.SearchRequest) {
	t.Helper()
	ctx := context.Background()
	want, err := whole.Search(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := shards.Search(ctx, req, client.ShardedSearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Failed) != 0 {
		t.Fatalf("%s k=%d: failed shards %v", req.GetCollection(), req.GetK(), got.Failed)
	}
	for q := range want {
		if proto.Equal(got.Results[q], want[q]) {
			continue
		}
		g, w := got.Results[q].GetHits(), want[q].GetHits()
		for i := range min(len(g), len(w)) {
			if !proto.Equal(g[i], w[i]) {
				t.Fatalf("%s k=%d query %d: hit %d is %v over the shards, %v on one server", req.GetCollection(), req.GetK(), q, i, g[i], w[i])
			}
		}
		t.Fatalf("%s k=%d query %d: %d hits over the shards, %d on one server", req.GetCollection(), req.GetK(), q, len(g), len(w))
	}
}

// DeleteBestOfShard deletes, from the shards and from whole, the records
// of shard among whole's k best hits for query, and returns how many; the
// sharded Delete must report them all.
func DeleteBestOfShard(t testing.TB, shards *client.Shards, whole *client.Client, collection string, query *embeddv1.Query, k uint32, shard int) int {
	t.Helper()
	ctx := context.Background()
	res, err := whole.Search(ctx, &embeddv1.SearchRequest{Collection: collection, Queries: []*embeddv1.Query{query}, K: k})
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, h := range res[0].GetHits() {
		if client.ShardOf(h.GetId(), shards.Len()) == shard {
			gone = append(gone, h.GetId())
		}
	}
	if n, err := shards.Delete(ctx, collection, gone); err != nil || n != uint64(len(gone)) {
		t.Fatalf("sharded Delete of %d records: %d, %v", len(gone), n, err)
	}
	if _, err := whole.Delete(ctx, collection, gone); err != nil {
		t.Fatal(err)
	}
	return len(gone)
}
