package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/client/clienttest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// TestShardOf pins the documented hash (64-bit FNV-1a modulo n): data
// written by one version must stay findable by the next.
func TestShardOf(t *testing.T) {
	// FNV-1a 64 of "" is 0xcbf29ce484222325, of "a" 0xaf63dc4c8601ec8c.
	for _, c := range []struct {
		id   string
		n    int
		want int
	}{
		{"", 1, 0}, {"", 7, int(uint64(0xcbf29ce484222325) % 7)}, {"a", 3, int(uint64(0xaf63dc4c8601ec8c) % 3)},
		{"a", 1000, int(uint64(0xaf63dc4c8601ec8c) % 1000)},
	} {
		if got := client.ShardOf(c.id, c.n); got != c.want {
			t.Errorf("ShardOf(%q, %d) = %d, want %d", c.id, c.n, got, c.want)
		}
	}
	counts := make([]int, 3)
	for i := range 3000 {
		counts[client.ShardOf(fmt.Sprint("doc-", i), 3)]++
	}
	for i, n := range counts {
		if n < 800 {
			t.Errorf("shard %d got %d of 3000 ids: the hash does not spread", i, n)
		}
	}
}

// shardedSetup is one collection on three fake shards and the same
// records on one fake server.
type shardedSetup struct {
	shards *client.Shards
	whole  *client.Client
}

func newShardedSetup(t *testing.T, metric embeddv1.Metric, records []*embeddv1.Record) shardedSetup {
	t.Helper()
	ctx := context.Background()
	var targets []string
	for range 3 {
		targets = append(targets, clienttest.Start(t, clienttest.Config{}).Addr())
	}
	shards, err := client.DialShards(ctx, targets, client.WithRetryPolicy(fastRetries))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards.Close() })
	whole := dial(t, clienttest.Start(t, clienttest.Config{}).Addr())
	create := &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 4, Metric: metric}
	for i := range shards.Len() {
		if _, err := shards.Shard(i).CreateCollection(ctx, create); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := whole.CreateCollection(ctx, create); err != nil {
		t.Fatal(err)
	}
	req := &embeddv1.UpsertRequest{Collection: "docs", Records: records}
	if n, err := shards.Upsert(ctx, req); err != nil || n != uint64(len(records)) {
		t.Fatalf("sharded Upsert = %d, %v; want %d", n, err, len(records))
	}
	if _, err := whole.Upsert(ctx, req); err != nil {
		t.Fatal(err)
	}
	return shardedSetup{shards: shards, whole: whole}
}

// randomRecords returns n records; every fifth repeats an earlier vector,
// so that equal scores span shards and the tie order (by id) is tested.
func randomRecords(n int) []*embeddv1.Record {
	r := rand.New(rand.NewPCG(1, 2))
	recs := make([]*embeddv1.Record, n)
	for i := range recs {
		v := []float32{r.Float32() - 0.5, r.Float32() - 0.5, r.Float32() - 0.5, r.Float32() - 0.5}
		if i%5 == 4 {
			v = recs[r.IntN(i)].GetVector()
		}
		recs[i] = &embeddv1.Record{Id: fmt.Sprintf("id-%04d", i), Vector: v}
	}
	return recs
}

// TestShardsSearchIsExact: the merged answer of three shards equals one
// server's, for every metric, for k below, near and above the record
// count, also after deleting records of one shard.
func TestShardsSearchIsExact(t *testing.T) {
	recs := randomRecords(600)
	for _, metric := range []embeddv1.Metric{embeddv1.Metric_METRIC_COSINE, embeddv1.Metric_METRIC_DOT, embeddv1.Metric_METRIC_L2} {
		t.Run(metric.String(), func(t *testing.T) {
			s := newShardedSetup(t, metric, recs)
			var queries []*embeddv1.Query
			for _, r := range recs[:8] {
				queries = append(queries, &embeddv1.Query{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: r.GetVector()}}})
			}
			check := func(k uint32) {
				t.Helper()
				clienttest.CheckShardedSearch(t, s.shards, s.whole, &embeddv1.SearchRequest{Collection: "docs", Queries: queries, K: k})
			}
			for _, k := range []uint32{1, 10, 599, 1000} {
				check(k)
			}
			if n := clienttest.DeleteBestOfShard(t, s.shards, s.whole, "docs", queries[0], 50, 1); n == 0 {
				t.Fatal("no record of shard 1 among the best 50")
			}
			for _, k := range []uint32{1, 10, 1000} {
				check(k)
			}
		})
	}
}

// TestShardsSearchMissingShard: a shard that does not answer fails the
// search, unless partial results are accepted; then the others' merged
// hits come back and the missing shard is named.
func TestShardsSearchMissingShard(t *testing.T) {
	ctx := context.Background()
	live := clienttest.Start(t, clienttest.Config{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close() // nothing listens there now
	shards, err := client.DialShards(ctx, []string{live.Addr(), dead}, client.WithRetryPolicy(fastRetries))
	if err != nil {
		t.Fatal(err)
	}
	defer shards.Close()
	if _, err := shards.Shard(0).CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 4}); err != nil {
		t.Fatal(err)
	}
	recs := randomRecords(40)
	var mine []*embeddv1.Record
	for _, r := range recs {
		if client.ShardOf(r.GetId(), 2) == 0 {
			mine = append(mine, r)
		}
	}
	if _, err := shards.Shard(0).Upsert(ctx, &embeddv1.UpsertRequest{Collection: "docs", Records: mine}); err != nil {
		t.Fatal(err)
	}
	req := &embeddv1.SearchRequest{Collection: "docs", K: 5,
		Queries: []*embeddv1.Query{{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: recs[0].GetVector()}}}}}

	_, err = shards.Search(ctx, req, client.ShardedSearchOptions{})
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), "shard 1 ("+dead+")") {
		t.Errorf("error %q does not name the missing shard", err)
	}

	got, err := shards.Search(ctx, req, client.ShardedSearchOptions{AllowPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Failed) != 1 || got.Failed[0].Shard != 1 || got.Failed[0].Target != dead {
		t.Errorf("Failed = %v, want shard 1 (%s)", got.Failed, dead)
	}
	want, err := shards.Shard(0).Search(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Results[0], want[0]) || len(want[0].GetHits()) != 5 {
		t.Errorf("partial result %v, want shard 0's %v", got.Results[0], want[0])
	}

	// With every shard gone, partial results are no answer.
	allDead, err := client.DialShards(ctx, []string{dead}, client.WithRetryPolicy(fastRetries))
	if err != nil {
		t.Fatal(err)
	}
	defer allDead.Close()
	_, err = allDead.Search(ctx, req, client.ShardedSearchOptions{AllowPartial: true})
	wantCode(t, err, codes.Unavailable)
}

// TestShardsMetricMismatch: shards that disagree on the collection's
// metric are a configuration error, named before any search runs.
func TestShardsMetricMismatch(t *testing.T) {
	ctx := context.Background()
	a, b := clienttest.Start(t, clienttest.Config{}), clienttest.Start(t, clienttest.Config{})
	shards, err := client.DialShards(ctx, []string{a.Addr(), b.Addr()}, client.WithRetryPolicy(fastRetries))
	if err != nil {
		t.Fatal(err)
	}
	defer shards.Close()
	for i, m := range []embeddv1.Metric{embeddv1.Metric_METRIC_DOT, embeddv1.Metric_METRIC_L2} {
		if _, err := shards.Shard(i).CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 4, Metric: m}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = shards.Search(ctx, &embeddv1.SearchRequest{Collection: "docs", K: 1,
		Queries: []*embeddv1.Query{{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: []float32{1, 0, 0, 0}}}}}}, client.ShardedSearchOptions{})
	if err == nil || !strings.Contains(err.Error(), "shard 1") || !strings.Contains(err.Error(), "METRIC_L2") {
		t.Errorf("error %v, want one naming shard 1 and its metric", err)
	}
}

// TestDialDNSRoundRobin: a dns: target balances calls over every address
// the name resolves to (gRPC's default, pick_first, would use one).
func TestDialDNSRoundRobin(t *testing.T) {
	var servers []*clienttest.Server
	var addrs []string
	for range 3 {
		s := clienttest.Start(t, clienttest.Config{})
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	dns := clienttest.NewDNS(addrs...)
	defer dns.Close()
	c := dial(t, "dns:///embedd-grpc.test:50051", client.WithDialOptions(dns.DialOption()), client.WithBlock())
	all := func() bool {
		for _, s := range servers {
			if s.Calls("ListModels") == 0 {
				return false
			}
		}
		return true
	}
	// Connections come up one by one; until they all have, calls go to
	// those that are up.
	for calls := 0; !all(); calls++ {
		if calls == 3000 {
			t.Fatalf("after 3000 calls, a server has got none: %d, %d, %d", servers[0].Calls("ListModels"), servers[1].Calls("ListModels"), servers[2].Calls("ListModels"))
		}
		if _, err := c.ListModels(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
